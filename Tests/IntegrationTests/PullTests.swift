import Foundation
import KilnCore
import KilnOCI
import KilnRegistry
import KilnStore
import Testing

@Suite("Pulling what a build needs from a real registry", .serialized)
struct PullTests {
    @Test("resolve reads manifests and configs only; a layer streams into the store verified")
    func resolveThenDownload() async throws {
        let registry = try RegistryServer()
        let (scratch, tree) = try Scratch.withSampleTree("pull")
        let layout = try RegistryPushTests.builtImage(scratch, tree: tree)
        try #require(try Tools.kiln(["push", "\(layout):v1", "\(registry.host)/acme/base:v1"]).status == 0)

        let client = try RegistryClient()
        defer { Task { await client.shutdown() } }
        let mark = registry.mark()
        let resolved = try await client.resolve(
            try ImageReference(parsing: "\(registry.host)/acme/base:v1"), platforms: [.linuxAMD64, .linuxARM64])
        #expect(resolved.images.map(\.platform) == [.linuxAMD64, .linuxARM64])
        #expect(resolved.images.allSatisfy { $0.config.config?.cmd == ["/app/run.sh"] })
        let layer = try #require(resolved.images.first?.imageManifest.layers.first)
        let blobGets = registry.requests(since: mark).filter { $0.hasPrefix("GET") && $0.contains("/blobs/") }
        #expect(!blobGets.contains { $0.contains(layer.digest.description) }, "resolve downloaded a layer: \(blobGets)")
        #expect(blobGets.count == 2, "one config per platform: \(blobGets)")

        let store = try ContentStore(root: scratch.path + "/pulled")
        let ingest = try await client.downloadBlob(layer, from: resolved.reference.repository) {
            try store.beginIngest()
        }
        let (digest, size) = try ingest.commit(expected: layer.digest)
        #expect(digest == layer.digest && size == layer.size)
        let original = try OCILayout(existingAt: layout).blobPath(layer.digest)
        #expect(
            FileManager.default.contents(atPath: try store.verifiedPath(layer.digest))
                == FileManager.default.contents(atPath: original))

        // A descriptor that lies about the size is refused, and the store keeps nothing of it.
        var wrong = layer
        wrong.size -= 1
        await #expect(throws: RegistryError.self) {
            _ = try await client.downloadBlob(wrong, from: resolved.reference.repository) { try store.beginIngest() }
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/pulled/blobs/sha256")
        #expect(leftovers == [layer.digest.hex])
        await client.shutdown()
    }
}
