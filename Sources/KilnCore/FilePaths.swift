#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Small path and directory helpers over POSIX calls, so kiln's file handling does not depend on
/// Foundation's platform differences.
package enum FilePaths {
    /// The directory part of a path (`.` when there is none).
    package static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// The last component of a path.
    package static func lastComponent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// Joins two path parts with one slash.
    package static func join(_ base: String, _ component: String) -> String {
        if base.isEmpty { return component }
        if base.hasSuffix("/") { return base + component }
        return base + "/" + component
    }

    /// Creates a directory and its missing parents.
    /// - Throws: `FileError` when a component cannot be created or is not a directory.
    package static func makeDirectories(_ path: String, permissions: mode_t = 0o755) throws(FileError) {
        if isDirectory(path) { return }
        let parent = directory(of: path)
        if parent != path && parent != "." && parent != "/" { try makeDirectories(parent, permissions: permissions) }
        if mkdir(path, permissions) != 0 && errno != EEXIST { throw FileError("create directory", path: path) }
        guard isDirectory(path) else { throw FileError("create directory", path: path, code: ENOTDIR) }
    }

    /// Whether `path` names a directory (following symlinks).
    package static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Whether anything exists at `path` (not following a final symlink).
    package static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// The size of a regular file, or nil when it does not exist.
    package static func fileSize(_ path: String) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int64(info.st_size)
    }

    /// Flushes a directory's entries to disk, so a rename inside it survives a crash.
    /// Best effort: some file systems refuse to `fsync` a directory.
    package static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    /// The names in a directory, without `.` and `..`, in no particular order.
    /// - Throws: `FileError` when the directory cannot be read.
    package static func contents(of path: String) throws(FileError) -> [String] {
        try entries(of: path).map(\.name)
    }

    /// The entries of a directory, without `.` and `..`, in no particular order, each with its
    /// kind as the directory itself records it (`d_type`; not following symlinks), or nil where
    /// the file system does not say, so a walk needs an `lstat` only for those.
    /// - Throws: `FileError` when the directory cannot be read.
    package static func entries(of path: String) throws(FileError) -> [(name: String, kind: FileKind?)] {
        guard let dir = opendir(path) else { throw FileError("list directory", path: path) }
        defer { closedir(dir) }
        var entries = [(name: String, kind: FileKind?)]()
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            guard name != "." && name != ".." else { continue }
            entries.append((name, FileKind(directoryType: entry.pointee.d_type)))
        }
        return entries
    }

    /// Removes a file or an empty directory; missing is not an error.
    package static func remove(_ path: String) {
        if unlink(path) != 0 && errno == EISDIR { rmdir(path) }
    }

    /// Removes `path` and, for a directory, everything below it (symlinks are removed, never
    /// followed). Best effort: what cannot be removed stays.
    package static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            for name in (try? contents(of: path)) ?? [] { removeTree(join(path, name)) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// Copies a file's bytes to `destination` atomically, keeping nothing of the source's metadata.
    package static func copyFile(from source: String, to destination: String) throws(FileError) {
        let reader = try ReadableFile(path: source)
        let writer = try AtomicFileWriter(destination: destination)
        do {
            try reader.forEachChunk { chunk in try writer.write(chunk) }
        } catch let error as FileError {
            throw error
        } catch {
            throw FileError("read", path: source, code: EIO)  // the body throws only FileError
        }
        try writer.commit()
    }

    /// The absolute form of a path, relative to the current directory when it is relative.
    package static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        guard let pointer = getcwd(nil, 0) else { return path }
        defer { free(pointer) }
        let cwd = String(cString: pointer)
        return path == "." ? cwd : join(cwd, path)
    }

    /// `path` with `.`, `..` and repeated slashes folded away, lexically (symlinks untouched).
    package static func clean(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var parts = [Substring]()
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == "..", let last = parts.last, last != ".." {
                parts.removeLast()
                continue
            }
            if part == "..", absolute { continue }
            parts.append(part)
        }
        let joined = parts.joined(separator: "/")
        return absolute ? "/" + joined : (joined.isEmpty ? "." : joined)
    }

    /// The path with every symlink resolved (`realpath(3)`), or nil when it does not exist.
    package static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// One path the kernel looks at while resolving another (`resolution(of:)`).
    package enum ResolutionStep: Equatable, Sendable {
        /// A directory passed through, by inode.
        case directory(String, inode: UInt64)
        /// A symlink followed (its own path, as `lstat` sees it).
        case link(String)
        /// The last component, or a component that is missing or no directory (resolution
        /// stops there).
        case end(String)
    }

    /// Every path resolving the absolute `path` passes through, as the kernel walks it: each
    /// directory on the way, each symlink followed (its target walked in turn, from `/` when
    /// absolute), and the last path reached. A change to any of them can change what `path`
    /// names. nil after 40 links (`ELOOP`).
    package static func resolution(of path: String) -> [ResolutionStep]? {
        var steps = [ResolutionStep]()
        var pending = path.split(separator: "/").map(String.init).reversed() as [String]
        var current = ""
        var links = 0
        while let component = pending.popLast() {
            if component == "." { continue }
            if component == ".." {
                current = directory(of: current.isEmpty ? "/" : current)
                if current == "/" { current = "" }
                continue
            }
            let candidate = current + "/" + component
            var info = stat()
            guard lstat(candidate, &info) == 0 else {
                steps.append(.end(candidate))
                return steps
            }
            switch FileKind(mode: info.st_mode) {
            case .symlink:
                links += 1
                guard links <= 40, let target = try? readLink(candidate) else { return nil }
                steps.append(.link(candidate))
                pending.append(contentsOf: target.split(separator: "/").map(String.init).reversed())
                if target.hasPrefix("/") { current = "" }
            case .directory where !pending.isEmpty:
                steps.append(.directory(candidate, inode: UInt64(info.st_ino)))
                current = candidate
            default:
                steps.append(.end(candidate))
                if !pending.isEmpty { return steps }
                current = candidate
            }
        }
        return steps
    }

    /// A symlink's target.
    static func readLink(_ path: String) throws(FileError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { throw FileError("read link", path: path) }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `path` relative to `root` when it is below it (as a repository shows its files), else
    /// `path` unchanged.
    package static func relative(_ path: String, to root: String) -> String {
        let root = root.hasSuffix("/") && root != "/" ? String(root.dropLast()) : root
        if path == root { return "." }
        guard path.hasPrefix(root == "/" ? "/" : root + "/") else { return path }
        return String(path.dropFirst(root == "/" ? 1 : root.count + 1))
    }

    /// Whether `path` is `root` or below it (both absolute and clean).
    package static func isInside(_ path: String, root: String) -> Bool {
        path == root || path.hasPrefix(root == "/" ? "/" : root + "/")
    }
}
