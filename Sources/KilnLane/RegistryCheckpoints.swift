import KilnBuild
import KilnCore
import KilnOCI
import KilnRegistry
import KilnStore

/// RUN checkpoints shared through a registry: the image after a step, tagged `kiln-step-KEY` in
/// a repository, so no runner re-runs a step another one already ran.
///
/// Each step key has one home: the repository `homes` names for it (the lane gives a step that
/// several processors share the repository of the first of them, so every processor and every
/// runner looks in the same place), else `repository`. One `HEAD` per key finds it.
package struct RegistryCheckpoints: CheckpointSource {
    package let client: RegistryClient
    package let repository: Repository
    package var homes: [Digest: Repository]

    package init(client: RegistryClient, repository: Repository, homes: [Digest: Repository] = [:]) {
        self.client = client
        self.repository = repository
        self.homes = homes
    }

    static func tag(_ key: Digest) -> String { "kiln-step-" + key.hex }

    /// Where the checkpoint of `key` lives.
    package func home(of key: Digest) -> Repository { homes[key] ?? repository }

    /// Fetches the checkpoint recorded under `key` (one `HEAD` when there is none) into the
    /// store, with its config and layers, and records it locally; nil when the registry has none.
    package func fetch(_ key: Digest, into store: ContentStore) async throws -> BaseImage? {
        let repository = home(of: key)
        let reference = ImageReference(repository: repository, tag: Self.tag(key))
        guard try await client.headManifest(reference) != nil else { return nil }
        let fetched = try await client.fetchManifest(reference)
        let manifest = try CanonicalJSON.decode(
            ImageManifest.self, from: fetched.bytes, what: "checkpoint \(key.short)")
        for blob in [manifest.config] + manifest.layers where !store.contains(blob.digest) {
            let ingest = try await client.downloadBlob(blob, from: repository) { try store.beginIngest() }
            _ = try ingest.commit(expected: blob.digest)
        }
        let stored = try store.put(fetched.bytes, mediaType: fetched.mediaType)
        return try BuildahExecutor.Checkpoint.record(stored, key: key, store: store)
    }

    /// Whether the registry has a checkpoint under `key` (one `HEAD`).
    package func exists(_ key: Digest) async throws -> Bool {
        try await client.headManifest(ImageReference(repository: home(of: key), tag: Self.tag(key))) != nil
    }

    /// Pushes checkpoints made by a build (only once the whole build succeeded).
    package func publish(_ checkpoints: [NewCheckpoint], from store: ContentStore) async throws -> Int64 {
        var bytes: Int64 = 0
        let pusher = ImagePusher(client: client)
        for checkpoint in checkpoints {
            let report = try await pusher.push(
                checkpoint.manifest, from: store,
                to: ImageReference(repository: home(of: checkpoint.key), tag: Self.tag(checkpoint.key)))
            bytes += report.bytesUploaded
        }
        return bytes
    }
}
