import KilnCore
import KilnLayers
import KilnOCI
import KilnStore

/// One thing a `RUN` step observed of the file system below it: a path, exact (no symlink in
/// it: `StepReplay` resolved them, recording each link it followed as a lookup of its own), and
/// how much of it the step could see.
package struct Observation: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    package enum Kind: String, Sendable, Codable, Comparable {
        /// Passed through on the way to something else (a directory searched, a link followed):
        /// whether it is there, its kind, mode, owner and link target.
        case lookup
        /// Looked at, opened, executed or changed: everything `stat` and a read show — kind,
        /// mode, owner, time, link count, hard-link partners, extended attributes, and the
        /// content or link target.
        case entry
        /// Listed (`getdents`): each name with the kind the directory entry gives.
        case listing
        /// Moved or removed as a directory: everything below it, as entries.
        case tree
        /// A path the step's own layer holds: what applying the layer keeps of what was there
        /// (kind, mode, owner, attributes; a file's content).
        case layer

        package static func < (a: Kind, b: Kind) -> Bool { a.rawValue < b.rawValue }
    }

    package var path: String
    package var kind: Kind

    package init(_ path: String, _ kind: Kind) {
        self.path = path
        self.kind = kind
    }

    package static func < (a: Observation, b: Observation) -> Bool {
        a.path.utf8.lexicographicallyPrecedes(b.path.utf8) || (a.path == b.path && a.kind < b.kind)
    }

    package var description: String { "\(path) (\(kind.rawValue))" }
}

/// The file system a `RUN` step runs on, read from the image's layer blobs in the store (never
/// unpacked), and the state of each `Observation` as a short text a later build compares.
package struct LowerFilesystem {
    private var filesystem = ImageFilesystem()
    private let store: ContentStore
    /// Summaries of the regular files of each blob, by member path, read on first need.
    private var summaries: [String: [String: FileSummary]] = [:]
    /// Names in each directory, built on first need.
    private var children: [String: [String]]?
    /// The paths sharing each content a hard link made, built on first need.
    private var partners: [ImageFilesystem.Content: [String]]?
    /// States already found: several recorded executions of a step, checked against one lower
    /// file system, share most of their observations.
    private var states: [Observation: String] = [:]

    /// A state could not be found (a content digest the store's index does not have).
    package struct Unknown: Error, CustomStringConvertible {
        package var path: String
        package var description: String { "kiln cannot tell the content of \(path)" }
    }

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
    /// file summaries), so a read set recorded after a step finds it ready: run while the step
    /// runs, it takes that work off the step's critical path.
    package static func prepare(layers: [Descriptor], store: ContentStore) throws(LayerError) {
        _ = try LowerFilesystem(layers: layers, store: store)
        for layer in layers { _ = try summaries(ofBlobAt: store.blobPath(layer.digest)) }
    }

    /// The node at the exact image path `path` (`/a/b`; nothing followed).
    func node(at path: String) -> ImageFilesystem.Node? {
        filesystem.node(Self.key(path))
    }

    /// What executing the regular file at `path` makes the kernel open; nil when it is no
    /// regular file of these layers.
    mutating func interpreter(at path: String) throws(LayerError) -> FileSummary.Interpreter? {
        guard let node = node(at: path), node.kind == .file else { return nil }
        guard case .member(let blob, let member) = node.content else { return .unknown }
        if summaries[blob] == nil { summaries[blob] = try Self.summaries(ofBlobAt: blob) }
        return summaries[blob]?[member]?.interpreter ?? .unknown
    }

    /// The state of `observation` in this file system.
    package mutating func state(of observation: Observation) throws -> String {
        if let known = states[observation] { return known }
        let state = try findState(of: observation)
        states[observation] = state
        return state
    }

    private mutating func findState(of observation: Observation) throws -> String {
        let key = Self.key(observation.path)
        let node = filesystem.node(key)
        switch observation.kind {
        case .lookup:
            return node.map(Self.basics) ?? "missing"
        case .entry:
            guard let node else { return "missing" }
            return try entryState(node, at: key)
        case .layer:
            guard let node else { return "missing" }
            var text = Self.basics(node) + Self.attributes(node)
            if node.kind == .file { text += " sha256=" + (try contentDigest(node, at: key).hex) }
            return text
        case .listing:
            guard let node else { return "missing" }
            guard node.kind == .directory else { return "not a directory: " + Self.basics(node) }
            var bytes = [UInt8]()
            for name in directoryChildren()[key] ?? [] {
                let child = filesystem.node(ImageFilesystem.join(key, name))
                bytes += Array(name.utf8) + [0, child.map { Self.kindLetter($0.kind) } ?? 0x3F, 0]
            }
            return "names " + Digest.sha256(of: bytes).hex
        case .tree:
            guard let node else { return "missing" }
            guard node.kind == .directory else { return try entryState(node, at: key) }
            let hasher = SHA256Hasher()
            hasher.update(Array(try entryState(node, at: key).utf8))
            // Everything below, depth first in name order, through the directory index (a walk
            // of the subtree, not of the whole image per removed directory).
            let children = directoryChildren()
            var pending = (children[key] ?? []).reversed().map { ImageFilesystem.join(key, $0) }
            while let path = pending.popLast() {
                guard let below = filesystem.node(path) else { continue }
                hasher.update([0] + Array(path.utf8) + [0] + Array(try entryState(below, at: path).utf8))
                if below.kind == .directory {
                    pending += (children[path] ?? []).reversed().map { ImageFilesystem.join(path, $0) }
                }
            }
            return "tree " + hasher.finalize().hex
        }
    }

    /// `d 755 0:0`, `f 644 1000:1000`, `l 777 0:0 -> target`, `o 600 0:0 c 1:3`.
    private static func basics(_ node: ImageFilesystem.Node) -> String {
        var text = "\(UnicodeScalar(kindLetter(node.kind))) \(String(node.mode, radix: 8)) \(node.uid):\(node.gid)"
        switch node.kind {
        case .symlink(let target): text += " -> " + target
        case .other: text += " " + node.special
        default: break
        }
        return text
    }

    private static func attributes(_ node: ImageFilesystem.Node) -> String {
        node.xattrDigest.isEmpty ? "" : " x=" + node.xattrDigest
    }

    private static func kindLetter(_ kind: ImageFilesystem.Node.Kind) -> UInt8 {
        switch kind {
        case .directory: UInt8(ascii: "d")
        case .file: UInt8(ascii: "f")
        case .symlink: UInt8(ascii: "l")
        case .other: UInt8(ascii: "o")
        }
    }

    /// Everything `stat` shows (but the inode number and device) and the content.
    private mutating func entryState(_ node: ImageFilesystem.Node, at key: String) throws -> String {
        var text = Self.basics(node) + " t=\(node.modifiedSeconds).\(node.modifiedNanoseconds)" + Self.attributes(node)
        switch node.kind {
        case .directory:
            let subdirectories = (directoryChildren()[key] ?? []).count {
                filesystem.node(ImageFilesystem.join(key, $0))?.kind == .directory
            }
            text += " n=\(2 + subdirectories)"
        case .file:
            text += " sha256=" + (try contentDigest(node, at: key).hex)
            if let content = node.content, let group = hardLinks()[content], group.count > 1 {
                text += " n=\(group.count) first=/\(group.min { $0.utf8.lexicographicallyPrecedes($1.utf8) }!)"
            }
        default: break
        }
        return text
    }

    private mutating func contentDigest(_ node: ImageFilesystem.Node, at key: String) throws -> Digest {
        switch node.content {
        case .member(let blob, let member):
            if summaries[blob] == nil { summaries[blob] = try Self.summaries(ofBlobAt: blob) }
            guard let digest = summaries[blob]?[member]?.digest else { throw Unknown(path: "/" + key) }
            return digest
        case .source(.bytes(let bytes)):
            return Digest.sha256(of: bytes)
        case .source(.file(let path)):
            return try Digest.sha256(ofFileAt: path).digest
        case nil:
            throw Unknown(path: "/" + key)
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

    /// Paths by the content they share: a hard link shares its target's (a member of a layer
    /// blob), and only hard links do.
    private mutating func hardLinks() -> [ImageFilesystem.Content: [String]] {
        if let partners { return partners }
        var byContent = [ImageFilesystem.Content: [String]]()
        for path in filesystem.nodePaths {
            guard let node = filesystem.node(path), node.kind == .file, let content = node.content else { continue }
            byContent[content, default: []].append(path)
        }
        partners = byContent.filter { $0.value.count > 1 }
        return partners!
    }

    /// `/a/b` → `a/b`, the form `ImageFilesystem` keys its nodes by.
    private static func key(_ path: String) -> String {
        var key = Substring(path)
        while key.first == "/" { key = key.dropFirst() }
        return String(key)
    }

    /// Every regular file's summary in a layer blob, by member path: one pass over the blob, kept
    /// next to its member index so it is read once per store.
    package static func summaries(ofBlobAt blob: String) throws(LayerError) -> [String: FileSummary] {
        if let bytes = try? ReadableFile.readAll(path: summariesPath(ofBlobAt: blob), limit: 256 << 20),
            let parsed = parse(bytes)
        {
            return parsed
        }
        let reader = try LayerReader(path: blob)
        var summaries = [String: FileSummary]()
        while let member = try reader.next() {
            guard case .regularFile = member.kind else { continue }
            let sink = SummarySink()
            try reader.readData(into: sink)
            summaries[member.path] = sink.finalize()
        }
        keep(summaries, ofBlobAt: blob)
        return summaries
    }

    /// Whether the summaries of the blob at `blob` are kept already.
    package static func hasSummaries(ofBlobAt blob: String) -> Bool { FilePaths.exists(summariesPath(ofBlobAt: blob)) }

    static let indexFormat = "kiln-content-index 2"

    /// Keeps the summaries of the blob at `blob`, taken by whoever read its bytes (the working
    /// container's unpacking does), so no one reads them again for that. One line per file:
    /// digest, interpreter and path, tab-separated (`FieldText` escapes).
    static func keep(_ summaries: [String: FileSummary], ofBlobAt blob: String) {
        var text = indexFormat + "\n"
        for (path, summary) in summaries.sorted(by: { $0.key < $1.key }) {
            text +=
                summary.digest.hex + "\t" + FieldText.escape(summary.interpreterField) + "\t"
                + FieldText.escape(path) + "\n"
        }
        let cache = summariesPath(ofBlobAt: blob)
        try? FilePaths.makeDirectories(FilePaths.directory(of: cache))
        try? AtomicFileWriter.write(Array(text.utf8), to: cache)
    }

    package static func summariesPath(ofBlobAt blob: String) -> String {
        blob.replacingOccurrences(of: "/blobs/", with: "/index/") + ".contents"
    }

    package static func parse(_ bytes: [UInt8]) -> [String: FileSummary]? {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first.map({ $0 == indexFormat }) == true, lines.last == "" else { return nil }
        var summaries = [String: FileSummary]()
        for line in lines.dropFirst().dropLast() {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 3, let digest = try? Digest(sha256Hex: String(fields[0])),
                let interpreter = FieldText.unescape(fields[1]), let path = FieldText.unescape(fields[2])
            else { return nil }
            summaries[path] = FileSummary(
                digest: digest, interpreter: FileSummary.interpreter(field: Substring(interpreter)))
        }
        return summaries
    }
}
