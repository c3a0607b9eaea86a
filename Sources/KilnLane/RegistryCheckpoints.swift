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
    /// Where a fetched checkpoint's layers are left (nil: they are downloaded with it).
    package var layers: RegistryLayers?

    package init(
        client: RegistryClient, repository: Repository, homes: [Digest: Repository] = [:], layers: RegistryLayers? = nil
    ) {
        self.client = client
        self.repository = repository
        self.homes = homes
        self.layers = layers
    }

    static func tag(_ key: Digest) -> String { "kiln-step-" + key.hex }

    /// The tag of what the step of `key` touched: an OCI artifact (`RunTrace.mediaType`) next
    /// to the checkpoint, holding the `RunReads` blob.
    static func readsTag(_ key: Digest) -> String { "kiln-reads-" + key.hex }

    /// The tag naming a traced execution by the step's identity (`RunReuse`): the same read-set
    /// artifact, whose `dev.kiln.step-key` annotation names the checkpoint.
    static func executionTag(_ identity: Digest) -> String { "kiln-run-" + identity.hex }

    static let stepKeyAnnotation = "dev.kiln.step-key"
    /// On an execution record: the step keys of the identity's executions, newest first.
    static let stepKeysAnnotation = "dev.kiln.step-keys"

    /// The step keys of the executions recorded for `identity`, newest first, looked for in the
    /// default repository (one `HEAD` when there is none).
    package func executions(_ identity: Digest) async throws -> [Digest] {
        let reference = ImageReference(repository: repository, tag: Self.executionTag(identity))
        guard try await client.headManifest(reference) != nil else { return [] }
        let fetched = try await client.fetchManifest(reference)
        // A record that is not one of kiln's lists nothing (the next execution replaces it).
        guard let manifest = try? CanonicalJSON.decode(ImageManifest.self, from: fetched.bytes, what: "record"),
            manifest.artifactType == RunTrace.mediaType, let annotations = manifest.annotations
        else { return [] }
        let listed = annotations[Self.stepKeysAnnotation] ?? annotations[Self.stepKeyAnnotation] ?? ""
        return listed.split(separator: ",").compactMap { try? Digest(sha256Hex: String($0)) }
    }

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
        // The layers stay in the registry when a build fetches what it needs of them itself.
        let downloaded = layers == nil ? [manifest.config] + manifest.layers : [manifest.config]
        for blob in downloaded where !store.contains(blob.digest) {
            let ingest = try await client.downloadBlob(blob, from: repository) { try store.beginIngest() }
            _ = try ingest.commit(expected: blob.digest)
        }
        await layers?.note(manifest.layers, in: repository, indexes: true)
        let stored = try store.put(fetched.bytes, mediaType: fetched.mediaType)
        let reads = try await fetchReads(key, from: repository, into: store)
        return try BuildahExecutor.Checkpoint.record(stored, reads: reads, key: key, store: store)
    }

    /// The read set recorded next to the checkpoint of `key`, into the store; nil when the step
    /// ran untraced (or before kiln traced steps).
    private func fetchReads(_ key: Digest, from repository: Repository, into store: ContentStore) async throws
        -> Descriptor?
    {
        let reference = ImageReference(repository: repository, tag: Self.readsTag(key))
        guard try await client.headManifest(reference) != nil else { return nil }
        let fetched = try await client.fetchManifest(reference)
        let manifest = try CanonicalJSON.decode(ImageManifest.self, from: fetched.bytes, what: "read set \(key.short)")
        guard manifest.artifactType == RunTrace.mediaType, let blob = manifest.layers.first,
            blob.mediaType == RunTrace.mediaType
        else { return nil }
        if !store.contains(blob.digest) {
            let ingest = try await client.downloadBlob(blob, from: repository) { try store.beginIngest() }
            _ = try ingest.commit(expected: blob.digest)
        }
        return blob
    }

    /// Whether the registry has a checkpoint under `key` (one `HEAD`).
    package func exists(_ key: Digest) async throws -> Bool {
        try await client.headManifest(ImageReference(repository: home(of: key), tag: Self.tag(key))) != nil
    }

    /// Pushes checkpoints made by a build (only once the whole build succeeded), with the index
    /// artifact of each of their layers (`publishIndexes`).
    package func publish(_ checkpoints: [NewCheckpoint], from store: ContentStore) async throws -> Int64 {
        var bytes: Int64 = 0
        let pusher = ImagePusher(client: client)
        let source: any BlobSource = layers.map { LayeredSource(store: store, layers: $0) } ?? store
        for checkpoint in checkpoints {
            let home = home(of: checkpoint.key)
            let report = try await pusher.push(
                checkpoint.manifest, from: source, to: ImageReference(repository: home, tag: Self.tag(checkpoint.key)))
            bytes += report.bytesUploaded
            bytes += try await publishIndexes(of: checkpoint.manifest, in: home, from: store)
            if let reads = checkpoint.reads {
                let artifact = try Self.readsArtifact(reads, key: checkpoint.key, store: store)
                let pushed = try await pusher.push(
                    artifact, from: store, to: ImageReference(repository: home, tag: Self.readsTag(checkpoint.key)))
                bytes += pushed.bytesUploaded
                if let identity = checkpoint.identity {
                    // The execution, by identity, in the default repository: where a runner whose
                    // key missed looks. Its checkpoint stays in its home.
                    if home != repository {
                        _ = try await pusher.push(
                            checkpoint.manifest, from: store,
                            to: ImageReference(repository: repository, tag: Self.tag(checkpoint.key)))
                        _ = try await pusher.push(
                            artifact, from: store,
                            to: ImageReference(repository: repository, tag: Self.readsTag(checkpoint.key)))
                    }
                    try await recordExecution(checkpoint.key, of: identity, reads: reads, store: store)
                }
            }
        }
        return bytes
    }

    /// Adds the execution `key` (its read set `reads`) to the record of `identity`, first. The
    /// record is one tag that every build running the step rewrites (read, merge, push): within
    /// this process one rewrite of a record runs at a time, and a rewrite is read back, and
    /// merged again, when another runner's overwrote it meanwhile.
    package func recordExecution(_ key: Digest, of identity: Digest, reads: Descriptor, store: ContentStore)
        async throws
    {
        let reference = ImageReference(repository: repository, tag: Self.executionTag(identity))
        try await TagRewrites.shared.rewrite(reference) {
            // This execution first, then the ones already recorded.
            let earlier = try await executions(identity)
            let record = try Self.readsArtifact(
                reads, key: key, store: store, executions: RunExecution.merged(key, before: earlier))
            _ = try await ImagePusher(client: client).push(record, from: store, to: reference)
        } holds: {
            try await executions(identity).contains(key)
        }
    }

    /// Pushes, for each layer of the checkpoint `manifest` the store has indexes of, the index
    /// artifact a fresh runner's reuse check reads instead of the layer (`RegistryLayers`):
    /// tagged `kiln-index-HEX` in `home`, skipped when it is there already (one `HEAD`).
    func publishIndexes(of manifest: Descriptor, in home: Repository, from store: ContentStore) async throws -> Int64 {
        let image = try CanonicalJSON.decode(
            ImageManifest.self, from: try store.readBlob(manifest.digest, limit: 4 << 20), what: "checkpoint")
        var bytes: Int64 = 0
        let pusher = ImagePusher(client: client)
        for layer in image.layers {
            let reference = ImageReference(repository: home, tag: RegistryLayers.indexTag(layer.digest))
            guard try await client.headManifest(reference) == nil,
                let texts = LayerIndexes.read(layer.digest, from: store)
            else { continue }
            let members = try store.put(texts.members, mediaType: RegistryLayers.membersType)
            let contents = try store.put(texts.contents, mediaType: RegistryLayers.contentsType)
            let artifact = try Self.artifact(
                [members, contents], type: RegistryLayers.artifactType,
                annotations: ["dev.kiln.layer": layer.digest.description], store: store)
            bytes += try await pusher.push(artifact, from: store, to: reference).bytesUploaded
        }
        return bytes
    }

    /// The artifact manifest holding a read set (config: the empty descriptor), in the store.
    static func readsArtifact(_ reads: Descriptor, key: Digest, store: ContentStore, executions: [Digest]? = nil)
        throws -> Descriptor
    {
        var annotations = [stepKeyAnnotation: key.hex]
        if let executions { annotations[stepKeysAnnotation] = executions.map(\.hex).joined(separator: ",") }
        return try artifact([reads], type: RunTrace.mediaType, annotations: annotations, store: store)
    }

    /// An OCI artifact manifest of `type` holding `blobs` (config: the empty descriptor), in
    /// the store.
    static func artifact(
        _ blobs: [Descriptor], type: MediaType, annotations: [String: String], store: ContentStore
    ) throws -> Descriptor {
        let empty = try store.put(Array("{}".utf8), mediaType: .ociEmpty)
        var manifest = ImageManifest(config: empty, layers: blobs, annotations: annotations)
        manifest.artifactType = type
        return try store.put(try CanonicalJSON.encode(manifest), mediaType: .ociManifest)
    }
}
