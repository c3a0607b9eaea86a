import Dispatch
import KilnCore
import KilnDockerfile
import KilnLayers
import KilnOCI
import KilnStore

/// The content hashes of context files, read in parallel and remembered in a `StatCache`, so
/// an unchanged tree is re-checked from `stat` alone.
package final class ContextHasher: Sendable {
    package let root: String
    package let cache: StatCache

    package init(root: String, store: ContentStore) {
        self.root = root
        self.cache = StatCache(store: store, tree: root)
    }

    /// The SHA-256 of each regular file among `items` (by context path).
    package func digests(of items: [BuildContext.Item]) throws(BuildError) -> [String: Digest] {
        let files = items.filter { $0.kind == .file }.map(\.path)
        var result = [String: Digest]()
        var pending = [(path: String, identity: StatCache.Identity)]()
        for path in files {
            let disk = root + "/" + path
            guard let identity = StatCache.identity(of: disk) else { throw .io(FileError("stat", path: disk)) }
            if let digest = cache.digest(path, identity: identity) {
                result[path] = digest
            } else {
                pending.append((path, identity))
            }
        }
        guard !pending.isEmpty else { return result }
        // Each iteration writes only its own slot.
        nonisolated(unsafe) let outcomes = UnsafeMutableBufferPointer<Result<Digest, FileError>?>.allocate(
            capacity: pending.count)
        outcomes.initialize(repeating: nil)
        defer { outcomes.deallocate() }
        let root = self.root
        let paths = pending.map(\.path)
        DispatchQueue.concurrentPerform(iterations: paths.count) { index in
            do throws(FileError) {
                outcomes[index] = .success(try Digest.sha256(ofFileAt: root + "/" + paths[index]).digest)
            } catch {
                outcomes[index] = .failure(error)
            }
        }
        for (index, file) in pending.enumerated() {
            switch outcomes[index]! {
            case .success(let digest):
                result[file.path] = digest
                // Remember the identity seen before reading: a write during the read changes it.
                cache.remember(file.path, identity: file.identity, digest: digest)
            case .failure(let error): throw .io(error)
            }
        }
        return result
    }

    /// Writes the stat cache back (a failure only costs re-reading files next time).
    package func save() { try? cache.save() }
}

/// A build's cache key for one platform: the SHA-256 of everything that decides its bytes, so
/// equal keys give equal images and any change that could matter gives a new key.
///
/// The key text lists, one per line: kiln's key format; the platform and target stage; the
/// Dockerfile as parsed (each instruction's text and heredoc bodies, without comments and
/// indentation); the build args an `ARG` took; each base image by platform manifest digest; the
/// layer settings (epoch, compression); the labels and annotations the build adds; and the root
/// of a hash list over exactly the context
/// files the `COPY`/`ADD` instructions read, after `.dockerignore` — path, type, mode, and the
/// content's SHA-256 or the symlink's target. Owners and times of context files are not in it:
/// they do not reach the image.
package struct InputKey: Sendable {
    /// Bump when a change to kiln makes the same inputs give different bytes.
    /// `/2`: gzip became parallel (`ParallelGzip`), so every layer's bytes changed once.
    package static let format = "kiln-input-key/2"

    /// What the key is made of, kept so a later key can say which part changed.
    package struct Parts: Codable, Sendable, Equatable {
        package var format: String
        package var platform: String
        package var target: String
        /// The SHA-256 of the Dockerfile as parsed (`dockerfileDigest`).
        package var dockerfile: String
        /// The build args an `ARG` took.
        package var args: [String: String]
        /// Each base and `--from` image: `REFERENCE PLATFORM-MANIFEST-DIGEST`, sorted.
        package var bases: [String]
        /// `epoch=… compression=…`.
        package var layers: String
        /// Each context file's leaf of the hash list (type, mode, content digest), by path.
        package var files: [String: String]
        /// The root of the hash list over `files`, in path order.
        package var filesRoot: String
        /// Labels and annotations the build adds, one `label K=V` (or `default-label`,
        /// `annotation`) per entry; absent in keys recorded before they existed.
        package var metadata: [String]?

        package init(
            format: String, platform: String, target: String, dockerfile: String, args: [String: String],
            bases: [String],
            layers: String, files: [String: String], filesRoot: String
        ) {
            self.format = format
            self.platform = platform
            self.target = target
            self.dockerfile = dockerfile
            self.args = args
            self.bases = bases
            self.layers = layers
            self.files = files
            self.filesRoot = filesRoot
        }
    }

    /// One way a key differs from an earlier one, in the order `differences(from:)` lists them.
    package enum Difference: Sendable, Equatable, CustomStringConvertible {
        case dockerfile
        case base(reference: String)
        case buildArg(String)
        case layerSettings
        /// The labels or annotations kiln adds, each change as `KIND KEY: 'OLD' → 'NEW'`.
        case metadata([String])
        case fileAdded(String)
        case fileChanged(String)
        case fileRemoved(String)

        package var description: String {
            switch self {
            case .dockerfile: "the Dockerfile changed"
            case .base(let reference): "base image \(reference) moved"
            case .buildArg(let name): "build arg \(name) changed"
            case .layerSettings: "layer settings or kiln's key format changed"
            case .metadata(let changes):
                changes.isEmpty
                    ? "the labels or annotations kiln adds changed"
                    : "the \(changes.count == 1 ? "label or annotation" : "labels or annotations") kiln adds changed: \(changes.joined(separator: "; "))"
            case .fileAdded(let path): "\(path) added"
            case .fileChanged(let path): "\(path) changed"
            case .fileRemoved(let path): "\(path) removed"
            }
        }
    }

    package var parts: Parts
    package var digest: Digest

    /// The context files' part of a key: each file's leaf (type, mode, content digest or link
    /// target) by path, and the root of the hash list over them in path order. Platforms that
    /// read the same files share one (a million-file context is held once, not per platform).
    package struct FileLeaves: Sendable {
        package var files: [String: String]
        package var root: String

        package init(_ items: [BuildContext.Item], digests: [String: Digest]) {
            var files = [String: String](minimumCapacity: items.count)
            let hasher = SHA256Hasher()
            for item in items {
                let leaf: String
                switch item.kind {
                case .file: leaf = "file \(String(item.mode, radix: 8)) \(digests[item.path]?.hex ?? "?")"
                case .directory: leaf = "dir \(String(item.mode, radix: 8))"
                case .symlink(let target): leaf = "symlink \(target)"
                }
                files[item.path] = leaf
                hasher.update(Array("\(item.path)\u{0}\(leaf)\n".utf8))
            }
            self.files = files
            root = "\(items.count) \(hasher.finalize().hex)"
        }
    }

    package init(
        dockerfile: Dockerfile, target: String?, inputs: BuildInputs, leaves: FileLeaves, layerOptions: LayerOptions
    ) {
        parts = Parts(
            format: Self.format, platform: inputs.platform.description, target: target ?? "",
            dockerfile: Self.dockerfileDigest(dockerfile).hex, args: inputs.buildArgs,
            bases: inputs.bases.map(\.description),
            layers: layerOptions.keyLine, files: leaves.files, filesRoot: leaves.root)
        if !inputs.metadata.isEmpty { parts.metadata = inputs.metadata.keyLines }
        digest = Digest.sha256(of: Array(Self.lines(parts).joined(separator: "\n").utf8))
    }

    /// A key from parts already made (a recorded key, a test).
    package init(parts: Parts) {
        self.parts = parts
        digest = Digest.sha256(of: Array(Self.lines(parts).joined(separator: "\n").utf8))
    }

    /// The lines the key hashes, one per part.
    static func lines(_ parts: Parts) -> [String] {
        var lines = [
            parts.format, "platform \(parts.platform)", "target \(parts.target)", "dockerfile \(parts.dockerfile)",
        ]
        lines += parts.args.sorted { $0.key < $1.key }.map { "arg \($0.key)=\($0.value)" }
        lines += parts.bases.map { "base \($0)" }
        lines.append("layers \(parts.layers)")
        lines.append("files \(parts.filesRoot)")
        lines += parts.metadata ?? []
        return lines
    }

    /// How this key's parts differ from `earlier`'s: the Dockerfile, each moved base, each
    /// changed build arg, the layer settings, then every file added, changed or removed, by path.
    package func differences(from earlier: Parts) -> [Difference] {
        var result = [Difference]()
        if parts.dockerfile != earlier.dockerfile { result.append(.dockerfile) }
        let oldBases = Set(earlier.bases)
        for base in parts.bases where !oldBases.contains(base) {
            result.append(.base(reference: String(base.split(separator: " ").first ?? Substring(base))))
        }
        for name in Set(parts.args.keys).union(earlier.args.keys).sorted() where parts.args[name] != earlier.args[name]
        {
            result.append(.buildArg(name))
        }
        if parts.layers != earlier.layers || parts.format != earlier.format { result.append(.layerSettings) }
        if (parts.metadata ?? []) != (earlier.metadata ?? []) {
            result.append(.metadata(Self.metadataChanges(from: earlier.metadata ?? [], to: parts.metadata ?? [])))
        }
        for (path, leaf) in parts.files.sorted(by: { $0.key < $1.key }) where earlier.files[path] != leaf {
            result.append(earlier.files[path] == nil ? .fileAdded(path) : .fileChanged(path))
        }
        for path in earlier.files.keys.sorted() where parts.files[path] == nil { result.append(.fileRemoved(path)) }
        return result
    }

    /// Each label or annotation whose value differs between two `metadata` key lines
    /// (`KIND KEY=VALUE`), as `KIND KEY: 'OLD' → 'NEW'` (`(none)` where one has none).
    static func metadataChanges(from earlier: [String], to current: [String]) -> [String] {
        func values(_ lines: [String]) -> [String: String] {
            var result = [String: String]()
            for line in lines {
                guard let equals = line.firstIndex(of: "=") else { continue }
                result[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
            return result
        }
        let old = values(earlier)
        let new = values(current)
        return Set(old.keys).union(new.keys).sorted().compactMap { name in
            guard old[name] != new[name] else { return nil }
            let shown = { (value: String?) in value.map { "'\($0)'" } ?? "(none)" }
            return "\(name): \(shown(old[name])) → \(shown(new[name]))"
        }
    }

    /// The Dockerfile as kiln reads it: instruction texts (continuations joined, comments and
    /// blank lines gone) and heredoc bodies, so a reformatted comment does not rebuild anything.
    package static func dockerfileDigest(_ dockerfile: Dockerfile) -> Digest {
        var text = "escape \(dockerfile.escape)\n"
        var instructions = dockerfile.globalArgs
        for stage in dockerfile.stages { instructions += [stage.from] + stage.instructions }
        for instruction in instructions {
            text += instruction.source + "\n"
            switch instruction.command {
            case .copy(let copy), .add(let copy):
                for heredoc in copy.heredocs { text += "<<\(heredoc.name)\n\(heredoc.content)\n\(heredoc.name)\n" }
            case .run(let run):
                for heredoc in run.heredocs { text += "<<\(heredoc.name)\n\(heredoc.content)\n\(heredoc.name)\n" }
            default: break
            }
        }
        return Digest.sha256(of: Array(text.utf8))
    }
}
