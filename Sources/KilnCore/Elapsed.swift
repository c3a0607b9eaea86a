import Foundation

/// Elapsed wall time on the monotonic clock, for the seconds reports give (to the millisecond).
package enum Elapsed {
    /// Seconds on the monotonic clock, from an arbitrary origin.
    package static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// Seconds since `start` (an earlier `now()`), rounded to the millisecond.
    package static func seconds(since start: Double) -> Double {
        ((now() - start) * 1000).rounded() / 1000
    }

    /// Seconds since `mark` (to the millisecond), moving `mark` to now: consecutive phases.
    package static func lap(_ mark: inout Double) -> Double {
        let now = now()
        defer { mark = now }
        return ((now - mark) * 1000).rounded() / 1000
    }
}
