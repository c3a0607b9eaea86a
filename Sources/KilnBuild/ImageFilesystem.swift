import KilnCore
import KilnLayers

/// What an image's root file system holds after its layers, without unpacking it: each path's
/// kind, mode, owner and where its bytes can be read. The builder asks it whether a destination
/// is a directory, follows symlinks the way a copy into the image would, reads `/etc/passwd`
/// for `--chown=name`, and lists what `COPY --from` takes.
struct ImageFilesystem {
    struct Node {
        enum Kind: Equatable {
            case directory
            case file
            case symlink(String)
            case other
        }
        var kind: Kind
        var mode: UInt32
        var uid: Int
        var gid: Int
        var content: Content?
        /// A regular file's size, when the layer's member index gave it.
        var size: Int64?
        /// The modification time the layer gave it.
        var modifiedSeconds: Int64 = 0
        var modifiedNanoseconds = 0
        /// `TarMember.xattrDigest` and `.special`.
        var xattrDigest = ""
        var special = ""
    }

    /// Where a regular file's bytes are.
    enum Content: Hashable {
        /// A member of a (compressed) tar blob.
        case member(blob: String, path: String)
        /// A layer entry kiln wrote (a context file or bytes).
        case source(LayerEntry.FileSource)
    }

    /// Paths without a leading `/`; the root (`""`) is always a directory.
    private(set) var nodes: [String: Node] = [:]

    init() {}

    /// Every path the image holds (the root excepted).
    var nodePaths: Dictionary<String, Node>.Keys { nodes.keys }

    func node(_ path: String) -> Node? {
        path.isEmpty ? Node(kind: .directory, mode: 0o755, uid: 0, gid: 0) : nodes[path]
    }

    /// Applies a layer blob: whiteouts (`.wh.NAME`, `.wh..wh..opq`) first, then its members.
    /// - Parameter index: where the blob's member index is kept (see `MemberIndex`).
    mutating func apply(layerBlob blob: String, index: String) throws(LayerError) {
        let members = try MemberIndex.members(ofBlobAt: blob, index: index)
        for member in members {
            let name = FilePaths.lastComponent(of: "/" + member.path)
            let parent = Self.parent(of: member.path)
            if name == ".wh..wh..opq" {
                removeChildren(of: parent)
            } else if name.hasPrefix(".wh.") {
                remove(Self.join(parent, String(name.dropFirst(4))))
            }
        }
        nodes.reserveCapacity(nodes.count + members.count)
        for member in members {
            let name = FilePaths.lastComponent(of: "/" + member.path)
            if member.path.isEmpty || name.hasPrefix(".wh.") { continue }
            var node = Node(kind: .other, mode: member.mode, uid: member.uid, gid: member.gid)
            node.modifiedSeconds = member.modifiedSeconds
            node.modifiedNanoseconds = member.modifiedNanoseconds
            node.xattrDigest = member.xattrDigest
            node.special = member.special
            switch member.kind {
            case .directory: node.kind = .directory
            case .regularFile(let size):
                node.kind = .file
                node.content = .member(blob: blob, path: member.path)
                node.size = size
            case .symlink(let target): node.kind = .symlink(target)
            case .hardLink(let target):
                guard let linked = nodes[target] else { continue }
                node = linked
            case .other: node.kind = .other
            }
            if let existing = nodes[member.path], existing.kind == .directory, node.kind != .directory {
                removeChildren(of: member.path)
            }
            nodes[member.path] = node
        }
    }

    /// Applies entries kiln wrote into a layer.
    /// A hard link takes the node its target has at that point of the layer (as extracting it
    /// would: a target removed by an earlier entry of the layer is no longer there to link).
    mutating func apply(entries: [LayerEntry]) {
        nodes.reserveCapacity(nodes.count + entries.count)
        for entry in entries {
            let path = entry.path.description
            var node = Node(kind: .directory, mode: entry.mode, uid: entry.uid, gid: entry.gid)
            switch entry.content {
            case .directory: node.kind = .directory
            case .regularFile(let source):
                node.kind = .file
                node.content = .source(source)
            case .symlink(let target): node.kind = .symlink(target)
            case .hardLink(let target):
                guard let linked = nodes[target.description] else { continue }
                node = linked
            case .special: node.kind = .other
            }
            if let existing = nodes[path], existing.kind == .directory, node.kind != .directory {
                removeChildren(of: path)
            }
            nodes[path] = node
        }
    }

    private mutating func remove(_ path: String) {
        nodes[path] = nil
        removeChildren(of: path)
    }

    private mutating func removeChildren(of directory: String) {
        let prefix = directory.isEmpty ? "" : directory + "/"
        for key in nodes.keys where key.hasPrefix(prefix) && key != directory { nodes[key] = nil }
    }

    /// The paths directly or indirectly below `directory`, sorted.
    func descendants(of directory: String) -> [String] {
        let prefix = directory.isEmpty ? "" : directory + "/"
        return nodes.keys.filter { $0.hasPrefix(prefix) && $0 != directory }.sorted()
    }

    /// Resolves `path` inside the image the way a process chrooted to it would: symlinks are
    /// followed (absolute targets from the image root), `..` stops at the root. The last
    /// component is followed only when `followLast`.
    func resolve(_ path: String, followLast: Bool = true) -> String {
        var pending = path.split(separator: "/").map(String.init).reversed() as [String]
        var resolved = [String]()
        var hops = 0
        while let component = pending.popLast() {
            if component == "." || component.isEmpty { continue }
            if component == ".." {
                _ = resolved.popLast()
                continue
            }
            let candidate = (resolved + [component]).joined(separator: "/")
            if case .symlink(let target)? = nodes[candidate]?.kind, followLast || !pending.isEmpty, hops < 64 {
                hops += 1
                if target.hasPrefix("/") { resolved.removeAll() }
                pending += target.split(separator: "/").map(String.init).reversed()
                continue
            }
            resolved.append(component)
        }
        return resolved.joined(separator: "/")
    }

    func isDirectory(_ path: String) -> Bool { node(resolve(path))?.kind == .directory }

    /// A file's bytes (after following symlinks), or nil when there is no such regular file.
    func read(_ path: String, limit: Int = 4 << 20) throws -> [UInt8]? {
        guard let node = node(resolve(path)), node.kind == .file, let content = node.content else { return nil }
        switch content {
        case .source(.bytes(let bytes)): return bytes
        case .source(.file(let path)): return try ReadableFile.readAll(path: path, limit: limit)
        case .member(let blob, let member):
            let reader = try LayerReader(path: blob)
            while let next = try reader.next() {
                if next.path == member { return try reader.readData(limit: limit) }
            }
            return nil
        }
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[..<slash])
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.isEmpty ? name : directory + "/" + name
    }
}
