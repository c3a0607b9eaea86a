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
