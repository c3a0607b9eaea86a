import CArchive
import KilnCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A directory on disk that holds an image's root file system (a working container's rootfs),
/// where every path is resolved the way a process chrooted there would resolve it: symlinks are
/// followed inside the root (absolute targets from the root), `..` stops at the root. A layer or
/// a step that plants `etc -> /` or `../../x` cannot make kiln touch anything outside it.
///
/// Every operation works on an open directory and the last component's name (`*at` calls that
/// never follow a final symlink). Nothing else may change the tree while one is at work: the
/// container is not running then.
package final class RootDirectory {
    /// The directory's path on disk.
    package let path: String
    private let descriptor: Int32

    /// Opens the root directory at `path`.
    /// - Throws: `FileError` when it is not a directory that can be opened.
    package init(path: String) throws(FileError) {
        self.path = path
        descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileError("open directory", path: path) }
    }

    deinit { close(descriptor) }

    /// A directory inside the root, open for `*at` calls on the names in it.
    package final class Directory {
        /// Its path inside the image, for messages.
        package let imagePath: String
        let descriptor: Int32

        init(descriptor: Int32, imagePath: String) {
            self.descriptor = descriptor
            self.imagePath = imagePath
        }

        deinit { close(descriptor) }

        func display(_ name: String) -> String { imagePath.isEmpty ? "/" + name : "/\(imagePath)/\(name)" }

        /// What is at `name` (a symlink itself, not its target), or nil when nothing is.
        package func status(_ name: String) -> stat? {
            var info = stat()
            return fstatat(descriptor, name, &info, AT_SYMLINK_NOFOLLOW) == 0 ? info : nil
        }

        /// Removes `name` and, for a directory, everything below it; symlinks are removed, never
        /// followed. Missing is not an error.
        package func remove(_ name: String) throws(FileError) {
            guard let info = status(name) else { return }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                let child = try open(name)
                for entry in try child.names() { try child.remove(entry) }
                guard unlinkat(descriptor, name, AT_REMOVEDIR) == 0 || errno == ENOENT else {
                    throw FileError("remove directory", path: display(name))
                }
            } else if unlinkat(descriptor, name, 0) != 0 && errno != ENOENT {
                throw FileError("remove", path: display(name))
            }
        }

        /// The directory `name` in this one (never through a symlink).
        package func open(_ name: String) throws(FileError) -> Directory {
            let child = openat(descriptor, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard child >= 0 else { throw FileError("open directory", path: display(name)) }
            let path = imagePath.isEmpty ? name : imagePath + "/" + name
            return Directory(descriptor: child, imagePath: path)
        }

        /// The names in this directory, without `.` and `..`.
        package func names() throws(FileError) -> [String] {
            let copy = dup(descriptor)
            guard copy >= 0, let handle = fdopendir(copy) else {
                if copy >= 0 { close(copy) }
                throw FileError("list directory", path: display(""))
            }
            defer { closedir(handle) }
            rewinddir(handle)
            var names = [String]()
            while let entry = readdir(handle) {
                let bytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
                if bytes == [0x2e] || bytes == [0x2e, 0x2e] { continue }
                names.append(String(decoding: bytes, as: UTF8.self))
            }
            return names
        }

        /// The target of the symlink `name`.
        package func linkTarget(_ name: String) throws(FileError) -> String {
            var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = buffer.withUnsafeMutableBufferPointer { pointer in
                pointer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: pointer.count) {
                    readlinkat(descriptor, name, $0, pointer.count)
                }
            }
            guard count >= 0 else { throw FileError("read link", path: display(name)) }
            return String(decoding: buffer[..<count], as: UTF8.self)
        }

        /// Creates the directory `name` (mode `0700` until `setOwner`/`setMode` say otherwise);
        /// one already there is kept.
        package func makeDirectory(_ name: String) throws(FileError) {
            guard mkdirat(descriptor, name, 0o700) == 0 || errno == EEXIST else {
                throw FileError("create directory", path: display(name))
            }
        }

        /// Creates the regular file `name`, which must not exist, for writing.
        package func createFile(_ name: String) throws(FileError) -> Int32 {
            let file = openat(descriptor, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard file >= 0 else { throw FileError("create", path: display(name)) }
            return file
        }

        package func makeSymlink(_ name: String, target: String) throws(FileError) {
            guard symlinkat(target, descriptor, name) == 0 else {
                throw FileError("create symlink", path: display(name))
            }
        }

        /// Makes `name` a hard link of `target` in `directory` (the target itself, not where a
        /// symlink there points).
        package func makeHardLink(_ name: String, to target: String, in directory: Directory) throws(FileError) {
            guard linkat(directory.descriptor, target, descriptor, name, 0) == 0 else {
                throw FileError(
                    "link", path: display(name),
                    reason: "to \(directory.display(target)): \(String(cString: strerror(errno)))")
            }
        }

        package func makeSpecialFile(_ name: String, _ special: LayerEntry.SpecialFile) throws(FileError) {
            let type: mode_t =
                switch special.kind {
                case .fifo: S_IFIFO
                case .characterDevice: S_IFCHR
                case .blockDevice: S_IFBLK
                }
            let device = kiln_makedev(special.major, special.minor)
            guard mknodat(descriptor, name, type | 0o600, device) == 0 else {
                throw FileError("create device node", path: display(name))
            }
        }

        /// Sets the numeric owner of `name` (a symlink itself, not its target).
        package func setOwner(_ name: String, uid: Int, gid: Int) throws(FileError) {
            guard fchownat(descriptor, name, uid_t(uid), gid_t(gid), AT_SYMLINK_NOFOLLOW) == 0 else {
                throw FileError("change the owner of", path: display(name))
            }
        }

        /// Sets the permission bits of `name`, which is not a symlink (symlinks have none).
        package func setMode(_ name: String, _ mode: UInt32) throws(FileError) {
            guard fchmodat(descriptor, name, mode_t(mode & 0o7777), 0) == 0 else {
                throw FileError("change the mode of", path: display(name))
            }
        }

        /// Sets the access and modification times of `name` (a symlink itself, not its target).
        package func setTimes(_ name: String, seconds: Int64, nanoseconds: Int = 0) throws(FileError) {
            let time = timespec(tv_sec: time_t(seconds), tv_nsec: nanoseconds)
            let times = [time, time]
            guard utimensat(descriptor, name, times, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw FileError("set the times of", path: display(name))
            }
        }
    }

    /// The directory at `path` (an image path), with symlinks on the way followed inside the
    /// root. Missing directories are created (`0755`, `0:0`, as container engines create the
    /// parents a layer leaves out) when `create`.
    /// - Throws: `FileError` when a component is not a directory, or is missing and not `create`.
    package func directory(_ path: String, create: Bool) throws(FileError) -> Directory {
        let start = dup(descriptor)
        guard start >= 0 else { throw FileError("open directory", path: self.path) }
        // The directories along the resolved path, the root first: `..` pops one.
        var stack = [(descriptor: start, name: "")]
        defer { for entry in stack { close(entry.descriptor) } }
        var pending = path.split(separator: "/").reversed().map(String.init)
        var hops = 0
        var created = 0
        func resolvedPath() -> String { stack.dropFirst().map(\.name).joined(separator: "/") }
        while let component = pending.popLast() {
            if component == "." { continue }
            if component == ".." {
                if stack.count > 1 { close(stack.removeLast().descriptor) }
                continue
            }
            let current = stack[stack.count - 1].descriptor
            let child = openat(current, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if child >= 0 {
                stack.append((child, component))
                continue
            }
            let failure = errno
            let shown = "/" + (resolvedPath().isEmpty ? component : resolvedPath() + "/" + component)
            var info = stat()
            if fstatat(current, component, &info, AT_SYMLINK_NOFOLLOW) == 0 {
                guard (info.st_mode & S_IFMT) == S_IFLNK else {
                    throw FileError("open directory", path: shown, code: ENOTDIR)
                }
                hops += 1
                guard hops <= 40 else { throw FileError("resolve", path: shown, code: ELOOP) }
                let parent = Directory(descriptor: dup(current), imagePath: resolvedPath())
                let target = try parent.linkTarget(component)
                if target.hasPrefix("/") {
                    while stack.count > 1 { close(stack.removeLast().descriptor) }
                }
                pending += target.split(separator: "/").reversed().map(String.init)
                continue
            }
            guard failure == ENOENT, create, created < 4096 else {
                throw FileError("open directory", path: shown, code: failure)
            }
            guard mkdirat(current, component, 0o755) == 0 || errno == EEXIST else {
                throw FileError("create directory", path: shown)
            }
            created += 1
            pending.append(component)
        }
        let last = stack.removeLast()
        let resolved = resolvedPath()
        return Directory(
            descriptor: last.descriptor, imagePath: resolved.isEmpty ? last.name : resolved + "/" + last.name)
    }
}
