import Foundation
import KilnCore
import Synchronization
import Testing

@Suite("Blocking work: a bounded pool", .serialized)
struct BlockingWorkTests {
    final class Gauge: Sendable {
        let state = Mutex((now: 0, most: 0))
    }

    @Test(
        "three times the pool's width of blocking bodies at once: never more than the width run, and every one finishes"
    )
    func bounded() async throws {
        let running = Gauge()
        let count = BlockingWork.width * 3
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<count {
                group.addTask {
                    try await BlockingWork.run {
                        running.state.withLock {
                            $0.now += 1
                            $0.most = max($0.most, $0.now)
                        }
                        usleep(20_000)
                        running.state.withLock { $0.now -= 1 }
                        return index
                    }
                }
            }
            var results = [Int]()
            for try await result in group { results.append(result) }
            return results
        }
        #expect(results.sorted() == Array(0..<count))
        let most = running.state.withLock { $0.most }
        #expect(most <= BlockingWork.width, "\(most) ran at once")
        #expect(most > 1, "the pool runs bodies side by side")
    }

    @Test(
        "a body's error reaches the caller and frees its slot: after more failures than slots, bodies still run",
        .timeLimit(.minutes(5)))
    func errors() async throws {
        struct Failure: Error {}
        for _ in 0..<(BlockingWork.width * 2) {
            await #expect(throws: Failure.self) { try await BlockingWork.run { throw Failure() } }
        }
        let value = try await BlockingWork.run { 42 }
        #expect(value == 42)
    }
}
