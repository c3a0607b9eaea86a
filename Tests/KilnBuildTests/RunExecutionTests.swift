import Foundation
import KilnCore
import KilnOCI
import KilnStore
import KilnTestSupport
import Synchronization
import Testing

@testable import KilnBuild

/// The executions a store records for a step's identity (`keys/run/`).
@Suite("A step's recorded executions")
struct RunExecutionTests {
    @Test("builds recording executions of one step at once (processors from one template) lose none")
    func concurrentRecords() throws {
        let folder = try TemporaryDirectory("executions")
        let store = try ContentStore(root: folder.path + "/store")
        let identity = Digest.sha256(of: Array("the step".utf8))
        let keys = (0..<24).map { Digest.sha256(of: Array("execution \($0)".utf8)) }
        let failures = Mutex(0)
        // A thread per execution, all let go at once.
        let start = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        for key in keys {
            done.enter()
            Thread.detachNewThread {
                start.wait()
                do {
                    try RunExecution.record(identity, key: key, store: store)
                } catch {
                    failures.withLock { $0 += 1 }
                }
                done.leave()
            }
        }
        for _ in keys { start.signal() }
        done.wait()
        #expect(failures.withLock { $0 } == 0)
        let recorded = RunExecution.find(identity, store: store)
        #expect(Set(recorded) == Set(keys), "\(recorded.count) of \(keys.count) kept")
    }

    @Test("at most 32 are kept, the newest first")
    func keptNewestFirst() throws {
        let folder = try TemporaryDirectory("executions-kept")
        let store = try ContentStore(root: folder.path + "/store")
        let identity = Digest.sha256(of: Array("the step".utf8))
        let keys = (0..<40).map { Digest.sha256(of: Array("execution \($0)".utf8)) }
        for key in keys { try RunExecution.record(identity, key: key, store: store) }
        try RunExecution.record(identity, key: keys[20], store: store)
        let recorded = RunExecution.find(identity, store: store)
        #expect(recorded.count == RunExecution.kept)
        #expect(recorded.first == keys[20] && recorded.dropFirst().first == keys[39])
        #expect(!recorded.contains(keys[0]))
    }
}
