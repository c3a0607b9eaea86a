import Dispatch

/// Where kiln's blocking work runs — tar, gzip and SHA-256 over files, reading layers, hashing a
/// context — so it never holds one of the cooperative pool's threads (as many as cores), which
/// must stay free to resume network work: uploads of one processor go on while another's layers
/// are written.
package enum BlockingWork {
    private static let queue = DispatchQueue(label: "kiln.blocking", qos: .userInitiated, attributes: .concurrent)

    /// Runs `body` on the blocking queue and returns what it returns (or throws what it throws).
    /// The caller must not touch what `body` uses until it returns: that is what makes handing
    /// non-`Sendable` values (a builder's state) to it sound.
    package static func run<T>(_ body: @escaping () throws -> T) async throws -> T {
        nonisolated(unsafe) let body = body
        let result: Result<Transfer<T>, any Error> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: Result { Transfer(value: try body()) })
            }
        }
        return try result.get().value
    }

    /// A value carried back from the blocking queue to the waiting task.
    private struct Transfer<T>: @unchecked Sendable {
        var value: T
    }
}
