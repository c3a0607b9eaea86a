import Foundation

/// When to try a failed request again: a bounded number of attempts, exponential backoff with
/// full jitter, and the registry's `Retry-After` honoured unless it exceeds the time budget.
package struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first included.
    package var maxAttempts: Int
    /// The delay cap before jitter for the first retry; it doubles each time, up to `maxDelay`.
    package var baseDelay: Double
    package var maxDelay: Double
    /// A `Retry-After` longer than this ends the retries instead of waiting.
    package var budget: Double

    package init(maxAttempts: Int = 4, baseDelay: Double = 0.5, maxDelay: Double = 8, budget: Double = 60) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.budget = budget
    }

    /// No retries (for tests of error paths).
    package static let never = RetryPolicy(maxAttempts: 1)

    /// Seconds to wait before attempt `attempt + 1` after attempt `attempt` (counting from 1)
    /// failed, or nil when no attempt is left or the server asks for longer than the budget.
    package func delay(after attempt: Int, retryAfter: Double?, random: inout some RandomNumberGenerator) -> Double? {
        guard attempt < maxAttempts else { return nil }
        if let retryAfter {
            return retryAfter <= budget ? max(0, retryAfter) : nil
        }
        let cap = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return Double.random(in: 0...cap, using: &random)
    }

    /// Parses `Retry-After`: delay seconds, or an HTTP date (RFC 9110 §10.2.3) relative to `now`.
    package static func parseRetryAfter(_ value: String, now: Date = Date()) -> Double? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Int(trimmed) { return seconds >= 0 ? Double(seconds) : nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: trimmed) else { return nil }
        return max(0, date.timeIntervalSince(now))
    }
}
