import Foundation
import KilnBuild
import KilnCore
import KilnLane
import KilnOCI
import KilnRegistry
import KilnStore
import Testing

/// Tags that many writers rewrite (read, add, push), against a real registry: the execution
/// record of a `RUN` step (`kiln-run-IDENTITY`) and an image's referrers tag (`sha256-HEX`),
/// which docker-registry 2.8 needs for want of the referrers API.
@Suite("Tags rewritten by many builds at once")
struct TagRewriteTests {
    @Test("builds recording executions of one step at once (a template's processors in one lane) lose none")
    func concurrentRecords() async throws {
        let registry = try RegistryServer()
        let scratch = try Scratch("execution-records")
        let store = try ContentStore(root: scratch.path + "/store")
        let client = try RegistryClient()
        let repository = Repository(registry: registry.host, path: "acme/records")
        let checkpoints = RegistryCheckpoints(client: client, repository: repository)
        let identity = Digest.sha256(of: Array("the step".utf8))
        let keys = (0..<8).map { Digest.sha256(of: Array("execution \($0)".utf8)) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for key in keys {
                group.addTask {
                    let reads = try store.put(Array("reads of \(key.hex)".utf8), mediaType: RunTrace.mediaType)
                    try await checkpoints.recordExecution(key, of: identity, reads: reads, store: store)
                }
            }
            try await group.waitForAll()
        }
        let recorded = try await checkpoints.executions(identity)
        #expect(Set(recorded) == Set(keys), "\(recorded.count) of \(keys.count) executions kept")
        await client.shutdown()
    }

    @Test("statements attached at once to one image (two processors whose images are the same) are all listed")
    func concurrentReferrers() async throws {
        let registry = try RegistryServer()
        let scratch = try Scratch("referrers-tag")
        let store = try ContentStore(root: scratch.path + "/store")
        let client = try RegistryClient()
        let repository = Repository(registry: registry.host, path: "acme/referrers")
        let subject = Digest.sha256(of: Array("an image".utf8))
        let empty = try store.put(Array("{}".utf8), mediaType: .ociEmpty)
        var artifacts = [Descriptor]()
        for index in 0..<8 {
            let blob = try store.put(Array("statement \(index)".utf8), mediaType: MediaType("text/plain"))
            var manifest = ImageManifest(config: empty, layers: [blob])
            manifest.artifactType = MediaType("application/vnd.example.statement")
            let artifact = try store.put(try CanonicalJSON.encode(manifest), mediaType: .ociManifest)
            _ = try await ImagePusher(client: client).push(
                artifact, from: store, to: ImageReference(repository: repository, digest: artifact.digest))
            artifacts.append(artifact)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for artifact in artifacts {
                group.addTask {
                    _ = try await Lane.addReferrer(
                        artifact, to: subject, in: repository, client: client, store: store)
                }
            }
            try await group.waitForAll()
        }
        let listed = try await client.fetchManifest(
            ImageReference(repository: repository, tag: RegistryClient.referrersTag(subject)))
        let index = try JSONDecoder().decode(ImageIndex.self, from: Data(listed.bytes))
        #expect(Set(index.manifests.map(\.digest)) == Set(artifacts.map(\.digest)), "\(index.manifests.count) of 8")
        await client.shutdown()
    }
}
