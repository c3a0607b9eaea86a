import Dispatch
import Foundation
import Synchronization

/// Where kiln's blocking work runs — tar, gzip and SHA-256 over files, reading layers, hashing a
/// context, walking the repository for processors — so it never holds one of the cooperative
/// pool's threads (as many as cores), which must stay free to resume network work: uploads of
/// one processor go on while another's layers are written.
///
/// A bounded pool: at most `width` bodies run at once; a task over that waits, suspended (not
/// blocking a thread), for a slot. A concurrent queue alone starts a thread per blocked body,
/// and a lane with dozens of processors hashing at once ends with dozens of threads fighting
/// for two cores and the disk.
package enum BlockingWork {
    /// Bodies that may run at once: four per core, at least 16. Bodies differ by orders of
    /// magnitude (applying a base image's layers against hashing a small file): with as few
    /// slots as cores, a handful of long ones held every slot and a lane's short work waited
    /// behind them for a minute (seen in the test suite); the bound is against threads by the
    /// hundred, not for a tight fit.
    package static let width = Swift.max(16, ProcessInfo.processInfo.activeProcessorCount * 4)
    private static let queue = DispatchQueue(label: "kiln.blocking", qos: .userInitiated, attributes: .concurrent)
    private static let slots = Slots(width)

    /// Runs `body` on the blocking pool and returns what it returns (or throws what it throws).
    /// The caller must not touch what `body` uses until it returns: that is what makes handing
    /// non-`Sendable` values (a builder's state) to it sound. `body` must not wait for other
    /// blocking work (a slot is held while it runs).
    package static func run<T>(_ body: @escaping () throws -> T) async throws -> T {
        nonisolated(unsafe) let body = body
        await slots.acquire()
        let result: Result<Transfer<T>, any Error> = await withCheckedContinuation { continuation in
            queue.async {
                let result = Result { Transfer(value: try body()) }
                slots.release()
                continuation.resume(returning: result)
            }
        }
        return try result.get().value
    }

    /// A value carried back from the blocking queue to the waiting task.
    private struct Transfer<T>: @unchecked Sendable {
        var value: T
    }

    /// A counting semaphore whose waiters are suspended tasks, served in arrival order.
    final class Slots: Sendable {
        private let state: Mutex<(free: Int, waiting: [CheckedContinuation<Void, Never>])>

        init(_ count: Int) { state = Mutex((count, [])) }

        func acquire() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    guard state.free > 0 else {
                        state.waiting.append(continuation)
                        return false
                    }
                    state.free -= 1
                    return true
                }
                if now { continuation.resume() }
            }
        }

        func release() {
            let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard !state.waiting.isEmpty else {
                    state.free += 1
                    return nil
                }
                return state.waiting.removeFirst()
            }
            next?.resume()
        }
    }
}
