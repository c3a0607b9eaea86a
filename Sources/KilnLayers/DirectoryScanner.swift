import CArchive
import KilnCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Lists a directory tree on disk as layer entries.
///
/// What is kept: names, permission bits, symlink targets and which files are hard links of each
/// other. What is dropped, because it differs between machines and checkouts: times, owners
/// (unless asked for), extended attributes (unless asked for) and the order the file system
/// lists names in. Special files stop the scan with an error naming them.
package struct DirectoryScanner: Sendable {
    /// Where the tree goes in the image, e.g. `app` for `--prefix /app`; nil puts it at the root.
    package var prefix: LayerPath?
    /// Keep the files' numeric owners instead of `0:0`.
    package var preserveOwnership = false
    /// Copy `user.*`, `security.*` and other extended attributes into the layer.
    package var includeXattrs = false

    package init(prefix: LayerPath? = nil) { self.prefix = prefix }

    /// The entries for everything below `root` (not `root` itself, whose place `prefix` takes).
    /// - Throws: `LayerError.unreadable` for a directory that cannot be listed, `.specialFile`
    ///   for a device, FIFO or socket, `.nonUTF8Name` for a name that is not UTF-8.
    package func entries(under root: String) throws(LayerError) -> [LayerEntry] {
        var info = stat()
        guard stat(root, &info) == 0 else { throw .unreadable(path: root, FileError("read", path: root)) }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw .unreadable(path: root, FileError("read directory", path: root, code: ENOTDIR))
        }
        var found = [Found]()
        try walk(directory: root, relative: nil, into: &found)
        return linkHardLinks(found)
    }

    private struct Found {
        var entry: LayerEntry
        var inode: Inode?
    }

    private struct Inode: Hashable {
        var device: UInt64
        var number: UInt64
    }

    private func walk(directory: String, relative: String?, into found: inout [Found]) throws(LayerError) {
        for name in try Self.names(in: directory) {
            let diskPath = directory + "/" + name
            let inImage = relative.map { $0 + "/" + name } ?? name
            var info = stat()
            guard lstat(diskPath, &info) == 0 else {
                throw .unreadable(path: diskPath, FileError("stat", path: diskPath))
            }
            let path: LayerPath
            if let prefix { path = try prefix.appending(inImage) } else { path = try LayerPath(inImage) }
            let mode = UInt32(info.st_mode & 0o7777)
            let uid = preserveOwnership ? Int(info.st_uid) : 0
            let gid = preserveOwnership ? Int(info.st_gid) : 0
            let xattrs = includeXattrs ? try Self.xattrs(of: diskPath) : [:]
            let kind = FileKind(mode: info.st_mode)
            switch kind {
            case .directory:
                found.append(
                    Found(
                        entry: LayerEntry(
                            path: path, content: .directory, mode: mode, uid: uid, gid: gid, xattrs: xattrs)))
                try walk(directory: diskPath, relative: inImage, into: &found)
            case .regular:
                let entry = LayerEntry(
                    path: path, content: .regularFile(.file(path: diskPath)), mode: mode, uid: uid, gid: gid,
                    xattrs: xattrs)
                let inode = info.st_nlink > 1 ? Inode(device: UInt64(info.st_dev), number: UInt64(info.st_ino)) : nil
                found.append(Found(entry: entry, inode: inode))
            case .symlink:
                let target = try Self.linkTarget(diskPath)
                found.append(
                    Found(
                        entry: LayerEntry(
                            path: path, content: .symlink(target: target), mode: 0o777, uid: uid, gid: gid)))
            default:
                throw .specialFile(path: diskPath, kind: kind.name)
            }
        }
    }

    /// Files that share an inode become one regular file and hard links to it; which of them
    /// keeps the bytes is settled by `LayerPlan` (the first by path).
    private func linkHardLinks(_ found: [Found]) -> [LayerEntry] {
        var firstByInode = [Inode: LayerPath]()
        for item in found {
            guard let inode = item.inode else { continue }
            if let existing = firstByInode[inode], existing < item.entry.path { continue }
            firstByInode[inode] = item.entry.path
        }
        return found.map { item in
            guard let inode = item.inode, let first = firstByInode[inode], first != item.entry.path else {
                return item.entry
            }
            var entry = item.entry
            entry.content = .hardLink(target: first)
            return entry
        }
    }

    /// Directory names as raw bytes, refusing names that are not UTF-8 (tar and OCI need text).
    package static func names(in directory: String) throws(LayerError) -> [String] {
        guard let handle = opendir(directory) else {
            throw .unreadable(path: directory, FileError("list directory", path: directory))
        }
        defer { closedir(handle) }
        var names = [String]()
        while let entry = readdir(handle) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if bytes == [0x2e] || bytes == [0x2e, 0x2e] { continue }
            guard let name = String(validating: bytes, as: UTF8.self) else {
                throw .nonUTF8Name(inDirectory: directory)
            }
            names.append(name)
        }
        return names
    }

    package static func linkTarget(_ path: String) throws(LayerError) -> String {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = buffer.withUnsafeMutableBufferPointer { pointer in
            pointer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: pointer.count) {
                readlink(path, $0, pointer.count)
            }
        }
        guard count >= 0 else { throw .unreadable(path: path, FileError("read link", path: path)) }
        guard let target = String(validating: buffer[..<count], as: UTF8.self) else {
            throw .nonUTF8Name(inDirectory: FilePaths.directory(of: path))
        }
        return target
    }

    package static func xattrs(of path: String) throws(LayerError) -> [String: [UInt8]] {
        let size = llistxattr(path, nil, 0)
        guard size > 0 else { return [:] }
        var list = [CChar](repeating: 0, count: size)
        let listed = llistxattr(path, &list, size)
        guard listed >= 0 else { throw .unreadable(path: path, FileError("list extended attributes of", path: path)) }
        var result = [String: [UInt8]]()
        for rawName in list[..<listed].split(separator: 0) {
            let name = String(decoding: rawName.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let valueSize = lgetxattr(path, name, nil, 0)
            guard valueSize >= 0 else { continue }
            var value = [UInt8](repeating: 0, count: valueSize)
            let read = lgetxattr(path, name, &value, valueSize)
            if read >= 0 { result[name] = Array(value[..<read]) }
        }
        return result
    }
}
