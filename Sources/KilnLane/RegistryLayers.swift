import KilnBuild
import KilnCore
import KilnLayers
import KilnOCI
import KilnRegistry
import KilnStore
import Synchronization

/// Layers left in their registry until a build needs them (`RemoteLayers`): base images' and
/// checkpoints' layers are noted where they were found, not downloaded. A blob is downloaded
/// where its bytes are needed; where only what a layer holds is needed (a `COPY` onto it, a
/// `RUN`'s reuse check), its member and content indexes come from the artifact published beside
/// the checkpoints (`kiln-index-HEX`, `RegistryCheckpoints.publishIndexes`), a few hundred KiB
/// where the layer is hundreds of MiB. So a fresh runner checks a code edit of a `pip install`
/// step without downloading the base, the system packages or the installed packages.
package final class RegistryLayers: RemoteLayers, Sendable {
    package let client: RegistryClient
    /// Where each blob was seen (its manifest lists it there), and which repositories may hold
    /// index artifacts.
    private let places = Mutex<(blobs: [Digest: [Repository]], indexes: [Repository])>(([:], []))

    /// The index artifact's media types: the artifact, its member index and its content index.
    static let artifactType = MediaType("application/vnd.kiln.layer-index.v1+json")
    static let membersType = MediaType("application/vnd.kiln.member-index.v2+text")
    static let contentsType = MediaType("application/vnd.kiln.content-index.v2+text")

    package init(client: RegistryClient) { self.client = client }

    /// A layer blob above this size is not read to learn what it holds when its published
    /// index can be fetched instead.
    static let largeLayer: Int64 = 8 << 20

    /// The tag of the index artifact of `layer`.
    static func indexTag(_ layer: Digest) -> String { "kiln-index-" + layer.hex }

    /// Notes that `repository` holds `layers` (and, with `indexes`, may hold their index
    /// artifacts); a later push mounts them from there.
    package func note(_ layers: [Descriptor], in repository: Repository, indexes: Bool) async {
        places.withLock { places in
            for layer in layers where !(places.blobs[layer.digest]?.contains(repository) ?? false) {
                places.blobs[layer.digest, default: []].append(repository)
            }
            if indexes, !places.indexes.contains(repository) { places.indexes.append(repository) }
        }
        for layer in layers { await client.noteBlob(layer.digest, in: repository) }
    }

    package func materialize(_ layers: [Descriptor], into store: ContentStore) async throws {
        var seen = Set<Digest>()
        let missing = layers.filter { !store.contains($0.digest) && seen.insert($0.digest).inserted }
        _ = try await missing.mapConcurrently(width: 4) { layer in
            try await self.download(layer, into: store)
        }
    }

    /// Downloads one blob from the first repository it was seen in.
    func download(_ layer: Descriptor, into store: ContentStore) async throws {
        guard !store.contains(layer.digest) else { return }
        guard let repository = places.withLock({ $0.blobs[layer.digest]?.first }) else {
            throw StoreError.missingBlob(layer.digest)
        }
        let ingest = try await client.downloadBlob(layer, from: repository) { try store.beginIngest() }
        _ = try ingest.commit(expected: layer.digest)
    }

    package func indexes(_ layers: [Descriptor], into store: ContentStore) async throws {
        for layer in layers where !Self.hasIndexes(layer.digest, in: store) {
            // The published index is a fraction of the blob, and summarising a blob means
            // decompressing all of it: fetched even when a large blob is here (a base `kiln
            // warm` downloaded); a small one is read.
            let held = store.size(of: layer.digest)
            if held.map({ $0 > Self.largeLayer }) ?? true, try await fetchIndexes(layer.digest, into: store) {
                continue
            }
            if held == nil { try await download(layer, into: store) }
        }
    }

    static func hasIndexes(_ layer: Digest, in store: ContentStore) -> Bool {
        FilePaths.exists(store.memberIndexPath(layer)) && LowerFilesystem.hasSummaries(ofBlobAt: store.blobPath(layer))
    }

    /// The index artifact of `layer` from the first repository that has it, written into the
    /// store's index files (each checked to parse first); false when none has it.
    func fetchIndexes(_ layer: Digest, into store: ContentStore) async throws -> Bool {
        // A checkpoint's home, where the layer was seen, first; a few others after it.
        let candidates = places.withLock { places in
            let seen = (places.blobs[layer] ?? []).filter { places.indexes.contains($0) }
            return seen + places.indexes.filter { !seen.contains($0) }.prefix(4)
        }
        for repository in candidates {
            let reference = ImageReference(repository: repository, tag: Self.indexTag(layer))
            guard try await client.headManifest(reference) != nil else { continue }
            let fetched = try await client.fetchManifest(reference)
            let manifest = try CanonicalJSON.decode(ImageManifest.self, from: fetched.bytes, what: "layer index")
            guard manifest.artifactType == Self.artifactType,
                let members = manifest.layers.first(where: { $0.mediaType == Self.membersType }),
                let contents = manifest.layers.first(where: { $0.mediaType == Self.contentsType })
            else { continue }
            let memberText = try await client.fetchBlob(members.digest, from: repository, limit: 256 << 20)
            let contentText = try await client.fetchBlob(contents.digest, from: repository, limit: 256 << 20)
            // (fetchBlob checked both against their digests.)
            guard LayerIndexes.valid(members: memberText, contents: contentText) else { continue }
            try LayerIndexes.write(members: memberText, contents: contentText, of: layer, into: store)
            return true
        }
        return false
    }
}

/// The store with the layers left in their registry behind it: a push fetches a blob the
/// store lacks only when the registry must be sent it.
struct LayeredSource: BlobSource {
    let store: ContentStore
    let layers: RegistryLayers

    func verifiedBlobPath(_ digest: Digest) throws -> String { try store.verifiedBlobPath(digest) }
    func blobFile(_ digest: Digest) throws -> String { try store.blobFile(digest) }
    func readBlob(_ digest: Digest, limit: Int) throws -> [UInt8] { try store.readBlob(digest, limit: limit) }
    func fetchBlob(_ descriptor: Descriptor) async throws -> String {
        try await layers.download(descriptor, into: store)
        return try store.blobFile(descriptor.digest)
    }
}

/// A layer's member and content indexes as they travel in an index artifact.
enum LayerIndexes {
    /// Both texts parse as the store's index files do.
    static func valid(members: [UInt8], contents: [UInt8]) -> Bool {
        MemberIndex.isValid(members) && LowerFilesystem.parse(contents) != nil
    }

    static func write(members: [UInt8], contents: [UInt8], of layer: Digest, into store: ContentStore) throws {
        let memberPath = store.memberIndexPath(layer)
        let contentPath = LowerFilesystem.summariesPath(ofBlobAt: store.blobPath(layer))
        for (bytes, path) in [(members, memberPath), (contents, contentPath)] {
            try FilePaths.makeDirectories(FilePaths.directory(of: path))
            try AtomicFileWriter.write(bytes, to: path)
        }
    }

    /// The index texts of `layer` in the store, when both are there (built from the blob when
    /// only it is).
    static func read(_ layer: Digest, from store: ContentStore) -> (members: [UInt8], contents: [UInt8])? {
        let blob = store.blobPath(layer)
        if store.contains(layer) {
            _ = try? MemberIndex.members(ofBlobAt: blob, index: store.memberIndexPath(layer))
            _ = try? LowerFilesystem.summaries(ofBlobAt: blob)
        }
        guard let members = try? ReadableFile.readAll(path: store.memberIndexPath(layer), limit: 256 << 20),
            let contents = try? ReadableFile.readAll(
                path: LowerFilesystem.summariesPath(ofBlobAt: blob), limit: 256 << 20),
            valid(members: members, contents: contents)
        else { return nil }
        return (members, contents)
    }
}
