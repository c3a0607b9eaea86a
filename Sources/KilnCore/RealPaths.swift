#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `realpath(3)` for many paths below the same folders, remembering what each folder resolved
/// to: a path then costs one `lstat` of its last component instead of a `readlink` per component.
/// At thousands of processors, resolving each `registry.yaml`, context and Dockerfile afresh was
/// tens of thousands of `readlink`s. Meant for one pass over a tree that does not change under
/// it (what it remembers is never checked again); not for sharing between threads.
package final class RealPaths {
    private var resolved: [String: String] = [:]

    package init() {}

    /// What the absolute, clean `path` names with every symlink resolved; nil when some
    /// component does not exist (as `realpath` fails).
    package func resolve(_ path: String) -> String? {
        if path == "/" { return "/" }
        if let known = resolved[path] { return known }
        let name = FilePaths.lastComponent(of: path)
        guard path.hasPrefix("/"), name != ".", name != "..", !name.isEmpty else { return FilePaths.realPath(path) }
        guard let realParent = resolve(FilePaths.directory(of: path)) else { return nil }
        let candidate = FilePaths.join(realParent, name)
        var info = stat()
        guard lstat(candidate, &info) == 0 else { return nil }
        let result = (info.st_mode & S_IFMT) == S_IFLNK ? FilePaths.realPath(candidate) : candidate
        if let result { resolved[path] = result }
        return result
    }
}
