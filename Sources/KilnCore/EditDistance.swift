/// Levenshtein distance, for "did you mean" hints.
package enum EditDistance {
    /// The fewest single-character insertions, deletions and substitutions turning `a` into `b`.
    package static func between(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// The candidate within `limit` edits of `word` (the nearest, then the first), if any.
    package static func nearest(to word: String, in candidates: [String], limit: Int = 2) -> String? {
        candidates.map { (candidate: $0, distance: between($0, word)) }.filter { $0.distance <= limit }
            .min { $0.distance < $1.distance }?.candidate
    }
}
