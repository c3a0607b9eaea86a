/// One at a time per key, the others wait for it: the first caller for a key starts the work,
/// every caller arriving while it runs gets the same result. What is kept afterwards is the
/// caller's choice (`Keep`): every result (a base resolved once per run, so a tag moving halfway
/// through changes nothing), successes only (a registry's endpoint: a failed discovery is tried
/// again), or nothing (a `RUN` step under way: once done, its checkpoint is found the usual way).
package actor SingleFlight<Key: Hashable & Sendable, Value: Sendable> {
    package enum Keep: Sendable {
        case results, successes, nothing
    }

    private var flights: [Key: Task<Value, any Error>] = [:]
    private let keep: Keep

    package init(keeping keep: Keep) {
        self.keep = keep
    }

    /// The value for `key`: the one the work already under way (or kept) gives, else `make`'s.
    /// `made` says whether this caller started the work.
    package func value(for key: Key, _ make: @escaping @Sendable () async throws -> Value) async throws -> (
        value: Value, made: Bool
    ) {
        if let flight = flights[key] { return (try await flight.value, false) }
        let flight = Task { try await make() }
        flights[key] = flight
        let result = await flight.result
        switch (keep, result) {
        case (.nothing, _), (.successes, .failure): flights[key] = nil
        default: break
        }
        return (try result.get(), true)
    }

    /// Forgets every kept result.
    package func reset() {
        flights = [:]
    }
}
