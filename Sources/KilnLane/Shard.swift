import KilnCore
import KilnProcessors

/// One runner's share of a lane spread over several (`--shard I/N`, a GitHub Actions matrix).
/// Processors are dealt out by repository, round robin over the sorted repository names, so the
/// share is the same on every runner, shares differ in size by at most one repository, and the
/// versions of a processor — which share a repository — are always built by the same runner and
/// never race each other across runners.
package struct Shard: Sendable, Hashable, CustomStringConvertible {
    /// 1-based.
    package var index: Int
    package var count: Int

    /// Parses `I/N` with 1 ≤ I ≤ N.
    package init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]), count >= 1,
            (1...count).contains(index)
        else {
            return nil
        }
        self.index = index
        self.count = count
    }

    package var description: String { "\(index)/\(count)" }

    /// The processors of this share, in their order. `repository` names a processor's
    /// repository (nil when its template fails: it is dealt out by ref instead).
    package func select(_ processors: [Processor], repository: (Processor) -> String?) -> [Processor] {
        let keys = processors.map { repository($0) ?? "ref:\($0.ref)" }
        let sorted = Array(Set(keys)).sorted()
        var position = [String: Int]()
        for (offset, key) in sorted.enumerated() { position[key] = offset }
        return zip(processors, keys).filter { (position[$0.1] ?? 0) % count == index - 1 }.map(\.0)
    }
}
