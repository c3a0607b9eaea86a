import KilnCore
import Synchronization
import Testing

@Suite("SingleFlight: one at a time per key, the others wait for it")
struct SingleFlightTests {
    struct Failure: Error {}

    final class Counter: Sendable {
        let count = Mutex(0)
    }

    @Test(
        "callers at once share one piece of work; what is kept follows the choice",
        arguments: [
            SingleFlight<String, Int>.Keep.results, .successes, .nothing,
        ])
    func shared(keep: SingleFlight<String, Int>.Keep) async throws {
        let flights = SingleFlight<String, Int>(keeping: keep)
        let started = Counter()
        let results = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for _ in 0..<8 {
                group.addTask {
                    let result = try await flights.value(for: "k") {
                        started.count.withLock { $0 += 1 }
                        try await Task.sleep(for: .milliseconds(200))
                        return 42
                    }
                    return (result.value, result.made)
                }
            }
            return try await group.reduce(into: [(Int, Bool)]()) { $0.append($1) }
        }
        #expect(started.count.withLock { $0 } == 1 && results.allSatisfy { $0.0 == 42 })
        #expect(results.filter(\.1).count == 1, "one caller made it")
        // Afterwards: kept (results, successes) or made again (nothing).
        let again = try await flights.value(for: "k") { 7 }
        #expect(again.value == (keep == .nothing ? 7 : 42))
    }

    @Test("a failure is kept only when results are")
    func failures() async throws {
        for keep in [SingleFlight<String, Int>.Keep.results, .successes] {
            let flights = SingleFlight<String, Int>(keeping: keep)
            await #expect(throws: Failure.self) { try await flights.value(for: "k") { throw Failure() } }
            let retried = try? await flights.value(for: "k") { 1 }
            #expect((retried?.value == 1) == (keep == .successes), "\(keep)")
        }
    }
}
