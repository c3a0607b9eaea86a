extension Array where Element: Sendable {
    /// `body` applied to every element, at most `width` at once, the results in element order.
    /// The first error stops starting new work and is thrown once the running ones end.
    package func mapConcurrently<Result: Sendable>(
        width: Int, _ body: @escaping @Sendable (Element) async throws -> Result
    ) async throws -> [Result] {
        try await withThrowingTaskGroup(of: (Int, Result).self) { group in
            var results = [Result?](repeating: nil, count: count)
            var next = 0
            func startNext() {
                let (index, element) = (next, self[next])
                next += 1
                group.addTask { (index, try await body(element)) }
            }
            while next < count && next < Swift.max(1, width) { startNext() }
            while let (index, result) = try await group.next() {
                results[index] = result
                if next < count { startNext() }
            }
            return results.map { $0! }
        }
    }

    /// `mapConcurrently` for work that cannot fail.
    package func mapConcurrently<Result: Sendable>(
        width: Int, _ body: @escaping @Sendable (Element) async -> Result
    ) async -> [Result] {
        await withTaskGroup(of: (Int, Result).self) { group in
            var results = [Result?](repeating: nil, count: count)
            var next = 0
            func startNext() {
                let (index, element) = (next, self[next])
                next += 1
                group.addTask { (index, await body(element)) }
            }
            while next < count && next < Swift.max(1, width) { startNext() }
            while let (index, result) = await group.next() {
                results[index] = result
                if next < count { startNext() }
            }
            return results.map { $0! }
        }
    }
}

/// At most `count` holders at once, the rest waiting in arrival order: a bound on one kind of
/// work inside a wider concurrent map (the lane checks many unchanged processors at once while
/// keying and building only `--jobs` of them).
package actor Permits {
    private var available: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    package init(_ count: Int) { available = Swift.max(1, count) }

    /// `body` run while holding a permit, released however it ends.
    package func run<Result: Sendable>(_ body: @Sendable () async throws -> Result) async rethrows -> Result {
        await acquire()
        do {
            let result = try await body()
            release()
            return result
        } catch {
            release()
            throw error
        }
    }

    private func acquire() async {
        if available > 0 {
            available -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        if waiting.isEmpty {
            available += 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
