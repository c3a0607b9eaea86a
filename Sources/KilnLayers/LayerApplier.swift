import CArchive
import KilnCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Unpacks a layer blob onto a root directory the way a container engine applies a changeset
/// (OCI image spec, "Applying Changesets"): its whiteouts first remove what lower layers put
/// there (`.wh.NAME`, and `.wh..wh..opq` for a directory's whole former content), then every
/// member is created with its permission bits, numeric owner, modification time and extended
/// attributes. This is the order `ImageFilesystem` applies a layer in, so the tree on disk is
/// the one kiln's model of the image describes.
///
/// Every path is resolved inside the root (`RootDirectory`): a member cannot be written outside
/// it, whatever symlinks the layers plant. An entry replaces whatever is at its path, but a
/// directory that meets a directory keeps its contents.
package enum LayerApplier {
    /// Applies the layer blob at `blob`, whose members (from its member index) are `members`,
    /// onto `root`.
    /// - Parameter hashing: also take each regular file's content digest (and what executing it
    ///   opens, `FileSummary`) while writing it.
    /// - Returns: the summary of each regular file, by member path, when `hashing`.
    /// - Throws: `LayerError.unpack` naming the member that could not be written, or `.archive`
    ///   for a blob that does not read as a tar stream.
    package static func apply(blob: String, members: [TarMember], to root: RootDirectory, hashing: Bool)
        throws(LayerError) -> [String: FileSummary]
    {
        var parents = ParentCache(root: root)
        for member in members {
            let name = FilePaths.lastComponent(of: "/" + member.path)
            guard name.hasPrefix(".wh.") else { continue }
            let parentPath = Self.parent(of: member.path)
            // A whiteout whose directory is not there has nothing to remove.
            guard let parent = try? parents.directory(parentPath, create: false) else { continue }
            do {
                if name == ".wh..wh..opq" {
                    for child in try parent.names() { try parent.remove(child) }
                } else {
                    try parent.remove(String(name.dropFirst(4)))
                }
            } catch {
                throw .unpack(member: member.path, error)
            }
            parents.forget()
        }

        let reader = try LayerReader(path: blob)
        var digests = [String: FileSummary]()
        // Directory times are set last: creating what is inside a directory changes its time.
        var directoryTimes = [(path: String, seconds: Int64, nanoseconds: Int)]()
        while let member = try reader.next() {
            let name = FilePaths.lastComponent(of: "/" + member.path)
            if member.path.isEmpty || name.hasPrefix(".wh.") { continue }
            let details = reader.details()
            do {
                let parent = try parents.directory(Self.parent(of: member.path), create: true)
                let existing = parent.status(name)
                let isDirectory = existing.map { ($0.st_mode & S_IFMT) == S_IFDIR } ?? false
                if case .directory = member.kind, isDirectory {
                    // A directory meeting a directory keeps its contents; only its metadata changes.
                } else if existing != nil {
                    try parent.remove(name)
                    if isDirectory { parents.forget() }
                }
                switch member.kind {
                case .directory:
                    try parent.makeDirectory(name)
                    try setMetadata(of: name, in: parent, member: member, details: details, times: false)
                    directoryTimes.append((member.path, details.modifiedSeconds, details.modifiedNanoseconds))
                case .regularFile:
                    let file = try parent.createFile(name)
                    defer { close(file) }
                    let sink = FileSink(descriptor: file, path: member.path, hashing: hashing)
                    do {
                        try reader.readData(into: sink)
                    } catch {
                        // The sink's own failure names the file; a read failure is the blob's.
                        if let failure = sink.failure { throw failure }
                        throw error
                    }
                    if let summary = sink.summary { digests[member.path] = summary.finalize() }
                    try setMetadata(of: file, path: member.path, member: member, details: details)
                case .symlink(let target):
                    try parent.makeSymlink(name, target: target)
                    try parent.setOwner(name, uid: member.uid, gid: member.gid)
                    try parent.setTimes(
                        name, seconds: details.modifiedSeconds, nanoseconds: details.modifiedNanoseconds)
                case .hardLink(let target):
                    let targetParent = try root.directory(Self.parent(of: target), create: false)
                    try parent.makeHardLink(name, to: FilePaths.lastComponent(of: "/" + target), in: targetParent)
                    if hashing, let digest = digests[target] { digests[member.path] = digest }
                case .other:
                    // Sockets cannot be made from a tar member; FIFOs and devices can.
                    guard let special = details.special else { continue }
                    try parent.makeSpecialFile(name, special)
                    try setMetadata(of: name, in: parent, member: member, details: details, times: true)
                }
            } catch let error as LayerError {
                throw error
            } catch let error as FileError {
                throw .unpack(member: member.path, error)
            } catch {
                throw .unpack(member: member.path, FileError("write", path: "/" + member.path, code: EIO))
            }
        }
        // Deepest first, so setting a directory's time does not disturb its parent's.
        for entry in directoryTimes.reversed() {
            do {
                let parent = try parents.directory(Self.parent(of: entry.path), create: false)
                try parent.setTimes(
                    FilePaths.lastComponent(of: "/" + entry.path), seconds: entry.seconds,
                    nanoseconds: entry.nanoseconds)
            } catch {
                throw .unpack(member: entry.path, error)
            }
        }
        return digests
    }

    private static func setMetadata(
        of name: String, in parent: RootDirectory.Directory, member: TarMember, details: MemberDetails, times: Bool
    ) throws(FileError) {
        try parent.setOwner(name, uid: member.uid, gid: member.gid)
        // After the owner: changing it clears set-user-ID and set-group-ID bits.
        try parent.setMode(name, member.mode)
        if !details.xattrs.isEmpty {
            let file = openat(parent.descriptor, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            if file >= 0 {
                defer { close(file) }
                try setXattrs(details.xattrs, on: file, path: member.path)
            }
        }
        if times {
            try parent.setTimes(name, seconds: details.modifiedSeconds, nanoseconds: details.modifiedNanoseconds)
        }
    }

    private static func setMetadata(of file: Int32, path: String, member: TarMember, details: MemberDetails)
        throws(FileError)
    {
        guard fchown(file, uid_t(member.uid), gid_t(member.gid)) == 0 else {
            throw FileError("change the owner of", path: "/" + path)
        }
        guard fchmod(file, mode_t(member.mode & 0o7777)) == 0 else {
            throw FileError("change the mode of", path: "/" + path)
        }
        try setXattrs(details.xattrs, on: file, path: path)
        let time = timespec(tv_sec: time_t(details.modifiedSeconds), tv_nsec: details.modifiedNanoseconds)
        guard futimens(file, [time, time]) == 0 else { throw FileError("set the times of", path: "/" + path) }
    }

    /// Extended attributes the file system does not support are left out, as container engines
    /// leave them; `security.capability` must hold.
    private static func setXattrs(_ xattrs: [String: [UInt8]], on file: Int32, path: String) throws(FileError) {
        for (name, value) in xattrs.sorted(by: { $0.key < $1.key }) {
            let status = value.withUnsafeBytes { fsetxattr(file, name, $0.baseAddress, $0.count, 0) }
            if status != 0 && (name == "security.capability" || (errno != ENOTSUP && errno != EPERM)) {
                throw FileError("set the extended attribute \(name) of", path: "/" + path)
            }
        }
    }

    private static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[..<slash])
    }

    /// The directory the last member went into, kept open for the next: a layer's members come
    /// grouped by directory. Forgotten whenever something is removed.
    private struct ParentCache {
        let root: RootDirectory
        var last: (path: String, directory: RootDirectory.Directory)?

        init(root: RootDirectory) { self.root = root }

        mutating func directory(_ path: String, create: Bool) throws(FileError) -> RootDirectory.Directory {
            if let last, last.path == path { return last.directory }
            let directory = try root.directory(path, create: create)
            last = (path, directory)
            return directory
        }

        mutating func forget() { last = nil }
    }

    /// Writes a member's bytes to an open file, summing them up when asked.
    private final class FileSink: ByteSink {
        let descriptor: Int32
        let path: String
        let summary: SummarySink?
        var failure: FileError?

        init(descriptor: Int32, path: String, hashing: Bool) {
            self.descriptor = descriptor
            self.path = path
            summary = hashing ? SummarySink() : nil
        }

        func write(_ bytes: UnsafeRawBufferPointer) throws(FileError) {
            try summary?.write(bytes)
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    let error = FileError("write", path: "/" + path)
                    failure = error
                    throw error
                }
                offset += written
            }
        }
    }
}
