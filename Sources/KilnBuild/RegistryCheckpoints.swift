import KilnCore
import KilnOCI
import KilnRegistry
import KilnStore

/// RUN checkpoints shared through a registry: the image after a step, tagged `kiln-step-KEY` in
/// a repository, so no runner re-runs a step another one already ran.
public struct RegistryCheckpoints: Sendable {
    public let client: RegistryClient
    public let repository: Repository

    public init(client: RegistryClient, repository: Repository) {
        self.client = client
        self.repository = repository
    }

    static func tag(_ key: Digest) -> String { "kiln-step-" + key.hex }

    /// Fetches the checkpoint recorded under `key` (one `HEAD` when there is none) into the
    /// store, with its config and layers, and records it locally; nil when the registry has none.
    public func fetch(_ key: Digest, into store: ContentStore) async throws -> BaseImage? {
        let reference = ImageReference(repository: repository, tag: Self.tag(key))
        guard try await client.headManifest(reference) != nil else { return nil }
        let fetched = try await client.fetchManifest(reference)
        let manifest = try CanonicalJSON.decode(ImageManifest.self, from: fetched.bytes, what: "checkpoint \(key.short)")
        for blob in [manifest.config] + manifest.layers where !store.contains(blob.digest) {
            let ingest = try await client.downloadBlob(blob, from: repository) { try store.beginIngest() }
            _ = try ingest.commit(expected: blob.digest)
        }
        let stored = try store.put(fetched.bytes, mediaType: fetched.mediaType)
        try store.setRecord(BuildahExecutor.Checkpoint(manifest: stored), kind: "checkpoint", key: key)
        return try BuildahExecutor.Checkpoint.load(stored, key: key, store: store)
    }

    /// Whether the registry has a checkpoint under `key` (one `HEAD`).
    public func exists(_ key: Digest) async throws -> Bool {
        try await client.headManifest(ImageReference(repository: repository, tag: Self.tag(key))) != nil
    }

    /// Pushes checkpoints made by a build (only once the whole build succeeded).
    public func publish(_ checkpoints: [NewCheckpoint], from store: ContentStore) async throws -> Int64 {
        var bytes: Int64 = 0
        let pusher = ImagePusher(client: client)
        for checkpoint in checkpoints {
            let report = try await pusher.push(
                checkpoint.manifest, from: store, to: ImageReference(repository: repository, tag: Self.tag(checkpoint.key)))
            bytes += report.bytesUploaded
        }
        return bytes
    }
}

/// A checkpoint a build recorded, to publish once the build succeeded.
public struct NewCheckpoint: Sendable {
    public var key: Digest
    public var manifest: Descriptor
}
