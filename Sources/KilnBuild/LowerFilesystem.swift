import KilnCore
import KilnLayers
import KilnOCI
import KilnStore

/// The file system a `RUN` step runs on, read from the image's layer blobs in the store (never
/// unpacked), and each path's state as a short text a later build can compare.
///
/// A state covers what the step could have seen: for an entry, the path it resolves to (so a
/// changed symlink anywhere on the way shows) and that node's kind, mode, owner and content
/// digest or link target, or `missing`; for a listing, the names in the directory; for a tree,
/// every path below the directory with its state.
package struct LowerFilesystem {
    private var filesystem = ImageFilesystem()
    private let store: ContentStore
    /// Content digests of the regular files of each blob, by member path, read on first need.
    private var digests: [String: [String: Digest]] = [:]
    /// Names in each directory, built on first need.
    private var children: [String: [String]]?

    package init(layers: [Descriptor], store: ContentStore) throws(LayerError) {
        try self.init(layerDigests: layers.map(\.digest), store: store)
    }

    package init(layerDigests: [Digest], store: ContentStore) throws(LayerError) {
        self.store = store
        for layer in layerDigests {
            try filesystem.apply(layerBlob: store.blobPath(layer), index: store.memberIndexPath(layer))
        }
    }

    /// Builds what reading `layers` needs and keeps in the store (each blob's member index and
    /// content digests), so a read set recorded after a step finds it ready: run while the
    /// step runs, it takes that work off the step's critical path.
    package static func prepare(layers: [Descriptor], store: ContentStore) throws(LayerError) {
        _ = try LowerFilesystem(layers: layers, store: store)
        for layer in layers { _ = try digests(ofBlobAt: store.blobPath(layer.digest)) }
    }

    /// The state of `touch` in this file system.
    package mutating func state(of touch: RunTrace.Touch) throws(LayerError) -> String {
        switch touch.access {
        case .entry:
            return try entryState(touch.path)
        case .listing:
            let resolved = filesystem.resolve(touch.path)
            guard filesystem.node(resolved)?.kind == .directory else { return "not a directory" }
            let names = directoryChildren()[resolved] ?? []
            return "names " + Digest.sha256(of: Array(names.joined(separator: "\n").utf8)).hex
        case .tree:
            let resolved = filesystem.resolve(touch.path, followLast: false)
            guard let node = filesystem.node(resolved) else { return "missing" }
            guard node.kind == .directory else { return try entryState(touch.path) }
            let hasher = SHA256Hasher()
            hasher.update(Array(try nodeState(node, at: resolved).utf8))
            // Everything below, depth first in name order, through the directory index (a walk
            // of the subtree, not of the whole image per removed directory).
            let children = directoryChildren()
            var pending = (children[resolved] ?? []).reversed().map { ImageFilesystem.join(resolved, $0) }
            while let path = pending.popLast() {
                guard let below = filesystem.node(path) else { continue }
                hasher.update(Array("\n\(path) \(try nodeState(below, at: path))".utf8))
                if below.kind == .directory {
                    pending += (children[path] ?? []).reversed().map { ImageFilesystem.join(path, $0) }
                }
            }
            return "tree " + hasher.finalize().hex
        }
    }

    /// Where `path` leads (every symlink followed) and what is there.
    private mutating func entryState(_ path: String) throws(LayerError) -> String {
        let unfollowed = filesystem.resolve(path, followLast: false)
        let resolved = filesystem.resolve(path)
        var text = ""
        if let node = filesystem.node(unfollowed), case .symlink(let target) = node.kind {
            text = "link \(target) → /\(resolved): "
        } else if unfollowed != RunTrace.normalize(path).dropFirst() {
            text = "at /\(resolved): "
        }
        guard let node = filesystem.node(resolved) else { return text + "missing" }
        return text + (try nodeState(node, at: resolved))
    }

    private mutating func nodeState(_ node: ImageFilesystem.Node, at path: String) throws(LayerError) -> String {
        let owner = "\(String(node.mode, radix: 8)) \(node.uid):\(node.gid)"
        switch node.kind {
        case .directory: return "dir \(owner)"
        case .symlink(let target): return "symlink \(owner) \(target)"
        case .other: return "other \(owner)"
        case .file:
            return "file \(owner) \(try contentDigest(node.content)?.hex ?? "?")"
        }
    }

    private mutating func contentDigest(_ content: ImageFilesystem.Content?) throws(LayerError) -> Digest? {
        switch content {
        case .member(let blob, let member):
            if digests[blob] == nil { digests[blob] = try Self.digests(ofBlobAt: blob) }
            return digests[blob]?[member]
        case .source(.bytes(let bytes)):
            return Digest.sha256(of: bytes)
        case .source(.file(let path)):
            do throws(FileError) {
                return try Digest.sha256(ofFileAt: path).digest
            } catch {
                throw .output(error)
            }
        case nil:
            return nil
        }
    }

    private mutating func directoryChildren() -> [String: [String]] {
        if let children { return children }
        var built = [String: [String]]()
        for path in filesystem.nodePaths {
            built[ImageFilesystem.parent(of: path), default: []].append(FilePaths.lastComponent(of: "/" + path))
        }
        for key in built.keys { built[key]?.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) } }
        children = built
        return built
    }

    /// Every regular file's content digest in a layer blob, by member path: one pass over the
    /// blob, kept next to its member index so it is read once per store.
    static func digests(ofBlobAt blob: String) throws(LayerError) -> [String: Digest] {
        if let bytes = try? ReadableFile.readAll(path: digestsPath(ofBlobAt: blob), limit: 256 << 20),
            let parsed = parse(bytes)
        {
            return parsed
        }
        let reader = try LayerReader(path: blob)
        var digests = [String: Digest]()
        while let member = try reader.next() {
            guard case .regularFile = member.kind else { continue }
            let sink = HashingSink()
            try reader.readData(into: sink)
            digests[member.path] = sink.hasher.finalize()
        }
        keep(digests, ofBlobAt: blob)
        return digests
    }

    /// Whether the content digests of the blob at `blob` are kept already.
    static func hasDigests(ofBlobAt blob: String) -> Bool { FilePaths.exists(digestsPath(ofBlobAt: blob)) }

    /// Keeps the content digests of the blob at `blob`, taken by whoever read its bytes (the
    /// working container's unpacking does), so no one reads them again for that.
    static func keep(_ digests: [String: Digest], ofBlobAt blob: String) {
        var text = "kiln-content-index 1\n"
        for (path, digest) in digests.sorted(by: { $0.key < $1.key }) where !path.contains("\n") {
            text += digest.hex + " " + path + "\n"
        }
        let cache = digestsPath(ofBlobAt: blob)
        try? FilePaths.makeDirectories(FilePaths.directory(of: cache))
        try? AtomicFileWriter.write(Array(text.utf8), to: cache)
    }

    private static func digestsPath(ofBlobAt blob: String) -> String {
        blob.replacingOccurrences(of: "/blobs/", with: "/index/") + ".digests"
    }

    private static func parse(_ bytes: [UInt8]) -> [String: Digest]? {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first == "kiln-content-index 1", lines.last == "" else { return nil }
        var digests = [String: Digest]()
        for line in lines.dropFirst().dropLast() {
            guard line.count > 65, let digest = try? Digest(sha256Hex: String(line.prefix(64))) else { return nil }
            digests[String(line.dropFirst(65))] = digest
        }
        return digests
    }

    private final class HashingSink: ByteSink {
        let hasher = SHA256Hasher()
        func write(_ bytes: UnsafeRawBufferPointer) throws(FileError) { hasher.update(bytes) }
    }
}
