import KilnCore
import KilnLayers
import KilnOCI
import KilnStore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a `RUN` step changed in its working container's root directory, as the entries of the
/// step's layer: what container engines call the naive diff, against kiln's own model of the file
/// system the step ran on (`ImageFilesystem`, from the lower layers' member indexes).
///
/// - A path that is not below, or is of another kind, mode or owner, or (not a directory) has
///   another size or link target, or whose inode changed after the step began (its change time
///   is past the `Watermark`), is in the layer. The change time is what a step cannot put back:
///   a file rewritten with its old size and modification time (`tar -x`, `cp -p`, `touch -r`)
///   still shows.
/// - A directory is in the layer when it changed as above, or when anything below it is; a
///   directory's own times change whenever a name in it comes or goes, which is not a change of
///   the image, as in every engine's diff.
/// - A path below that is gone becomes a whiteout (`.wh.NAME`) in its directory.
/// - Files that share an inode become one file and hard links to it; sockets are left out (a tar
///   cannot hold one). Extended attributes kept: `security.capability` and `user.*`, as
///   buildah's layers keep them.
///
/// Like every engine's diff it trusts the clock: a change time set while the system clock stood
/// behind the watermark hides a content-only change.
package enum ContainerChanges {
    /// A change time before which nothing the step did can be stamped: taken after the lower
    /// layers are unpacked, and the step starts a clock tick and more after it.
    package struct Watermark: Sendable {
        var seconds: Int
        var nanoseconds: Int

        /// Stamps a file in `folder` (outside the root, on the same file system), reads its
        /// change time, and waits long enough that the coarse clock the file system stamps with
        /// has moved on.
        package static func take(in folder: String) throws(FileError) -> Watermark {
            let path = folder + "/watermark"
            let file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard file >= 0 else { throw FileError("create", path: path) }
            defer {
                close(file)
                unlink(path)
            }
            var byte: UInt8 = 0
            _ = write(file, &byte, 1)
            var info = stat()
            guard fstat(file, &info) == 0 else { throw FileError("stat", path: path) }
            usleep(25_000)
            return Watermark(seconds: info.st_ctim.tv_sec, nanoseconds: info.st_ctim.tv_nsec)
        }

        func isBefore(_ time: timespec) -> Bool {
            time.tv_sec > seconds || (time.tv_sec == seconds && time.tv_nsec > nanoseconds)
        }
    }

    /// The entries of the layer of what changed in the root directory at `root` since `mark`,
    /// against the file system `lowerLayers` (blobs in `store`, with their member indexes) make.
    /// - Throws: `LayerError` for what cannot be read or named in a layer (a name that is not
    ///   UTF-8).
    package static func entries(
        in root: String, lowerLayers: [Descriptor], store: ContentStore, since mark: Watermark
    ) throws(LayerError) -> [LayerEntry] {
        var lower = ImageFilesystem()
        for layer in lowerLayers {
            try lower.apply(layerBlob: store.blobPath(layer.digest), index: store.memberIndexPath(layer.digest))
        }
        return try entries(in: root, lower: lower, since: mark)
    }

    static func entries(in root: String, lower: ImageFilesystem, since mark: Watermark) throws(LayerError)
        -> [LayerEntry]
    {
        removeMountStubs(in: root, lower: lower)
        var children = [String: [String]]()
        for path in lower.nodePaths {
            children[ImageFilesystem.parent(of: path), default: []].append(FilePaths.lastComponent(of: "/" + path))
        }
        var walk = Walk(root: root, lower: lower, lowerChildren: children, mark: mark)
        _ = try walk.visit(directory: "")
        return walk.entries
    }

    /// What a container runtime makes in a step's root to mount over, deepest first: buildah's
    /// `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/run/.containerenv` and
    /// `/run/secrets`, runc's `/dev`, `/proc` and `/sys`, and `/etc` and `/run` when they had to be
    /// made for them.
    static let mountStubs = [
        "etc/hosts", "etc/hostname", "etc/resolv.conf", "run/.containerenv", "run/secrets", "dev", "proc", "sys",
        "run", "etc",
    ]

    /// Removes from the root the runtime's mount stubs that the lower layers did not hold and that
    /// are still stubs (an empty file, an empty directory), as BuildKit does after a step: the
    /// step's layer holds only what the step wrote. A step cannot write through a stub (its
    /// writes went to what was mounted on it); a symlink in the way is the step's and is kept.
    static func removeMountStubs(in root: String, lower: ImageFilesystem) {
        guard let top = try? RootDirectory(path: root).directory("", create: false) else { return }
        for stub in mountStubs where lower.node(stub) == nil {
            let parentPath = ImageFilesystem.parent(of: stub)
            let name = FilePaths.lastComponent(of: "/" + stub)
            guard let parent = parentPath.isEmpty ? top : try? top.open(parentPath),
                let info = parent.status(name)
            else { continue }
            let kind = info.st_mode & S_IFMT
            let isStub: Bool =
                switch kind {
                case S_IFREG: info.st_size == 0
                case S_IFDIR: (try? parent.open(name).names().isEmpty) ?? false
                default: false
                }
            if isStub { try? parent.remove(name) }
        }
    }

    /// The mount stubs among a layer's `members` (buildah's own export of a step) to leave out:
    /// those the lower layers did not hold that are still stubs (an empty file, or a directory
    /// with nothing kept below it).
    static func stubMembers(of members: [TarFilter.Member], lower: ImageFilesystem) -> Set<String> {
        var dropped = Set<String>()
        let byName = Dictionary(members.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
        for stub in mountStubs where lower.node(stub) == nil {
            guard let member = byName[stub] else { continue }
            let isStub: Bool
            switch member.type {
            case UInt8(ascii: "0"), 0: isStub = member.size == 0
            case UInt8(ascii: "5"):
                isStub = !members.contains { $0.name.hasPrefix(stub + "/") && !dropped.contains($0.name) }
            default: isStub = false
            }
            if isStub { dropped.insert(stub) }
        }
        return dropped
    }

    /// Stamps every path of `entries` in the root with the layer's time (`epoch`), so the tree
    /// on disk is again exactly its layers: the next step's diff compares it with them.
    package static func settle(_ entries: [LayerEntry], in root: RootDirectory, epoch: Int64) throws(FileError) {
        var parent: (path: String, directory: RootDirectory.Directory)?
        // Deepest first: stamping a path does not change its parent's times, but creating
        // nothing here either, the order only keeps the parent cache warm.
        for entry in entries.reversed() {
            let path = entry.path.description
            let name = FilePaths.lastComponent(of: "/" + path)
            if name.hasPrefix(".wh.") { continue }
            let parentPath = ImageFilesystem.parent(of: path)
            if parent?.path != parentPath { parent = (parentPath, try root.directory(parentPath, create: false)) }
            try parent!.directory.setTimes(name, seconds: epoch)
        }
    }

    private struct Inode: Hashable {
        var device: UInt64
        var number: UInt64
    }

    private struct Walk {
        let root: String
        let lower: ImageFilesystem
        let lowerChildren: [String: [String]]
        let mark: Watermark
        var entries = [LayerEntry]()
        var firstLink = [Inode: LayerPath]()

        /// Adds what changed in the directory at `relative` (and below); true when anything did.
        mutating func visit(directory relative: String) throws(LayerError) -> Bool {
            let directory = relative.isEmpty ? root : root + "/" + relative
            let names = try DirectoryScanner.names(in: directory)
            var changedBelow = false
            for name in names {
                let path = relative.isEmpty ? name : relative + "/" + name
                let disk = directory + "/" + name
                var info = stat()
                guard lstat(disk, &info) == 0 else { throw .unreadable(path: disk, FileError("stat", path: disk)) }
                let node = lower.node(path)
                let kind = FileKind(mode: info.st_mode)
                let changed = isChanged(info, kind: kind, disk: disk, lower: node)
                if kind == .directory {
                    let below = try visit(directory: path)
                    if changed || below {
                        entries.append(try entry(path, disk: disk, info: info, content: .directory))
                        changedBelow = true
                    }
                    continue
                }
                guard changed, let content = try content(of: path, disk: disk, info: info, kind: kind) else {
                    continue
                }
                entries.append(try entry(path, disk: disk, info: info, content: content))
                changedBelow = true
            }
            // What was below and is gone. A directory that replaced a non-directory had nothing.
            if lower.node(relative)?.kind == .directory, let before = lowerChildren[relative] {
                let present = Set(names)
                for name in before where !present.contains(name) {
                    let whiteout = try LayerPath(relative.isEmpty ? ".wh." + name : relative + "/.wh." + name)
                    entries.append(.file(whiteout, .bytes([]), mode: 0))
                    changedBelow = true
                }
            }
            return changedBelow
        }

        func isChanged(_ info: stat, kind: FileKind, disk: String, lower node: ImageFilesystem.Node?) -> Bool {
            guard let node else { return true }
            let sameKind =
                switch node.kind {
                case .directory: kind == .directory
                case .file: kind == .regular
                case .symlink: kind == .symlink
                case .other: kind != .directory && kind != .regular && kind != .symlink
                }
            guard sameKind, Int(info.st_uid) == node.uid, Int(info.st_gid) == node.gid else { return true }
            if kind != .symlink && UInt32(info.st_mode & 0o7777) != node.mode & 0o7777 { return true }
            if kind == .directory { return false }
            if mark.isBefore(info.st_ctim) { return true }
            if kind == .regular, let size = node.size, size != Int64(info.st_size) { return true }
            if case .symlink(let target) = node.kind, (try? DirectoryScanner.linkTarget(disk)) != target { return true }
            return false
        }

        mutating func content(of path: String, disk: String, info: stat, kind: FileKind) throws(LayerError)
            -> LayerEntry.Content?
        {
            switch kind {
            case .regular:
                if info.st_nlink > 1 {
                    let inode = Inode(device: UInt64(info.st_dev), number: UInt64(info.st_ino))
                    if let first = firstLink[inode] { return .hardLink(target: first) }
                    firstLink[inode] = try LayerPath(path)
                }
                return .regularFile(.file(path: disk))
            case .symlink:
                return .symlink(target: try DirectoryScanner.linkTarget(disk))
            case .fifo:
                return .special(LayerEntry.SpecialFile(kind: .fifo))
            case .characterDevice:
                return .special(LayerEntry.SpecialFile(kind: .characterDevice, device: UInt64(info.st_rdev)))
            case .blockDevice:
                return .special(LayerEntry.SpecialFile(kind: .blockDevice, device: UInt64(info.st_rdev)))
            case .socket, .unknown, .directory:
                return nil
            }
        }

        func entry(_ path: String, disk: String, info: stat, content: LayerEntry.Content) throws(LayerError)
            -> LayerEntry
        {
            var xattrs = [String: [UInt8]]()
            if case .symlink = content {
            } else {
                xattrs = try DirectoryScanner.xattrs(of: disk).filter {
                    $0.key == "security.capability" || $0.key.hasPrefix("user.")
                }
            }
            return LayerEntry(
                path: try LayerPath(path), content: content, mode: UInt32(info.st_mode & 0o7777),
                uid: Int(info.st_uid), gid: Int(info.st_gid), xattrs: xattrs)
        }
    }
}
