import Foundation
import KilnBuild
import KilnCore
import KilnLane
import KilnOCI
import KilnRegistry
import KilnStore
import Testing

/// The execution record of a `RUN` step (`kiln-run-IDENTITY`): one tag every build that runs or
/// reuses the step rewrites, against a real registry.
@Suite("Execution records shared through a registry")
struct ExecutionRecordTests {
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
}
