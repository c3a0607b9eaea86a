import Dispatch
import KilnCore
import KilnDockerfile
import KilnLayers
import KilnOCI
import KilnStore

/// The content hashes of context files, read in parallel and remembered in a `StatCache`, so
/// an unchanged tree is re-checked from `stat` alone.
public final class ContextHasher: Sendable {
    public let root: String
    public let cache: StatCache

    public init(root: String, store: ContentStore) {
        self.root = root
        self.cache = StatCache(store: store, tree: root)
    }

    /// The SHA-256 of each regular file among `items` (by context path).
    public func digests(of items: [BuildContext.Item]) throws(BuildError) -> [String: Digest] {
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
        nonisolated(unsafe) let outcomes = UnsafeMutableBufferPointer<Result<Digest, FileError>?>.allocate(capacity: pending.count)
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
            case let .success(digest):
                result[file.path] = digest
                // Remember the identity seen before reading: a write during the read changes it.
                cache.remember(file.path, identity: file.identity, digest: digest)
            case let .failure(error): throw .io(error)
            }
        }
        return result
    }

    /// Writes the stat cache back (a failure only costs re-reading files next time).
    public func save() { try? cache.save() }
}

/// A build's cache key for one platform: the SHA-256 of everything that decides its bytes, so
/// equal keys give equal images and any change that could matter gives a new key.
///
/// The key text lists, one per line: kiln's key format; the platform and target stage; the
/// Dockerfile as parsed (each instruction's text and heredoc bodies, without comments and
/// indentation); the build args an `ARG` took; each base image by platform manifest digest; the
/// layer settings (epoch, compression); and the root of a hash list over exactly the context
/// files the `COPY`/`ADD` instructions read, after `.dockerignore` — path, type, mode, and the
/// content's SHA-256 or the symlink's target. Owners and times of context files are not in it:
/// they do not reach the image.
public struct InputKey: Sendable {
    /// Bump when a change to kiln makes the same inputs give different bytes.
    public static let format = "kiln-input-key/1"

    public var digest: Digest
    /// The lines hashed, for `kiln plan` to say what changed.
    public var lines: [String]
    /// Each file's line of the hash list, by context path.
    public var files: [String: String]

    public init(dockerfile: Dockerfile, target: String?, inputs: BuildInputs, fileDigests: [String: Digest], layerOptions: LayerOptions) {
        var files = [String: String]()
        let fileHasher = SHA256Hasher()
        for item in inputs.files {
            let leaf: String
            switch item.kind {
            case .file: leaf = "file \(String(item.mode, radix: 8)) \(fileDigests[item.path]?.hex ?? "?")"
            case .directory: leaf = "dir \(String(item.mode, radix: 8))"
            case let .symlink(target): leaf = "symlink \(target)"
            }
            files[item.path] = leaf
            fileHasher.update(Array("\(item.path)\u{0}\(leaf)\n".utf8))
        }
        var lines = [
            Self.format,
            "platform \(inputs.platform)",
            "target \(target ?? "")",
            "dockerfile \(Self.dockerfileDigest(dockerfile).hex)",
        ]
        lines += inputs.buildArgs.sorted { $0.key < $1.key }.map { "arg \($0.key)=\($0.value)" }
        lines += inputs.bases.map { "base \($0)" }
        lines.append("layers epoch=\(layerOptions.epoch) compression=\(layerOptions.compression)")
        lines.append("files \(inputs.files.count) \(fileHasher.finalize().hex)")
        self.lines = lines
        self.files = files
        digest = Digest.sha256(of: Array(lines.joined(separator: "\n").utf8))
    }

    /// The Dockerfile as kiln reads it: instruction texts (continuations joined, comments and
    /// blank lines gone) and heredoc bodies, so a reformatted comment does not rebuild anything.
    public static func dockerfileDigest(_ dockerfile: Dockerfile) -> Digest {
        var text = "escape \(dockerfile.escape)\n"
        var instructions = dockerfile.globalArgs
        for stage in dockerfile.stages { instructions += [stage.from] + stage.instructions }
        for instruction in instructions {
            text += instruction.source + "\n"
            switch instruction.command {
            case let .copy(copy), let .add(copy):
                for heredoc in copy.heredocs { text += "<<\(heredoc.name)\n\(heredoc.content)\n\(heredoc.name)\n" }
            case let .run(run):
                for heredoc in run.heredocs { text += "<<\(heredoc.name)\n\(heredoc.content)\n\(heredoc.name)\n" }
            default: break
            }
        }
        return Digest.sha256(of: Array(text.utf8))
    }
}
