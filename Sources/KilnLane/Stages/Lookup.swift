import KilnBuild
import KilnCore
import KilnOCI
import KilnRegistry
import Synchronization

/// Where each platform's image was found, or why not.
struct LookedUp {
    /// The index the registry has for these keys, when it was found whole (memo or records).
    var pushedIndex: Lane.PushedIndex?
    /// Per platform of `Keyed.keys`, in order.
    var lookups: [(platform: Platform, lookup: Lookup)]
    var found: [Platform: Descriptor]
    var missing: [Platform]
    /// Why each missing platform's key missed (keyed in full: the key's first difference from
    /// the last build, or why a key tag was refused).
    var reasons: [Platform: String] = [:]

    /// The missing platforms with their reasons, in key order.
    var missingWithReasons: [(platform: Platform, reason: String?)] { missing.map { ($0, reasons[$0]) } }

    /// Every image was found and nothing needs the worker (a hit missing its provenance does).
    var settled: Bool { lookups.allSatisfy { $0.lookup.hit != nil && !$0.lookup.lacksProvenance } }
}

extension ProcessorRun {
    /// Whether a hit must be in the registry, not only in this store: in every mode but a build
    /// that does not push (whose images stay here), since plan, check, verify, warm and assemble
    /// speak of what the registry has.
    var confirming: Bool { lane.settings.push || mode != .build }

    /// Lookup: an unchanged processor costs one round of `HEAD`s (its index, its version tag,
    /// its platform manifests); otherwise every platform's key is looked up at once.
    func lookup(_ keyed: Keyed) async throws -> LookedUp {
        defer { report.phases?.lookup = Elapsed.lap(&clock) }
        let version = processor.ref.version
        var pushedIndex: Lane.PushedIndex?
        let heads = HeadAnswers(client: lane.client)
        if keyed.complete, let memoized = keyed.memoized {
            pushedIndex = try await lane.publishedHits(
                memoized, keys: keyed.keys, repository: keyed.repository, version: version, confirming: confirming,
                heads: heads)
        }
        if keyed.complete, pushedIndex == nil {
            pushedIndex = try await lane.pushedIndexHits(
                keyed.keys, repository: keyed.repository, version: version, confirming: confirming, heads: heads)
            if let found = pushedIndex, let memoized = keyed.memoized {
                // Found the long way: the memo learns the index, so the next run asks only for it.
                lane.saveMemo(
                    memoized.memo, for: processor, platforms: keyed.platforms,
                    published: KeyMemo.Published(
                        repository: keyed.repository, index: found.index, found: found.found, keys: keyed.keys))
            }
        }
        let lookups: [Lookup]
        if let pushedIndex {
            lookups = keyed.keys.map {
                Lookup(hit: pushedIndex.found[$0.platform].map { CacheHit(descriptor: $0, source: .local) })
            }
        } else {
            let (lane, repository, warm, confirming) = (self.lane, keyed.repository, mode == .warm, confirming)
            lookups = try await keyed.keys.mapConcurrently(width: keyed.keys.count) { platform, key in
                try await lane.lookup(
                    key, platform: platform, repository: repository, fetchManifest: warm, confirming: confirming,
                    heads: heads)
            }
        }
        return recorded(keyed, lookups, pushedIndex: pushedIndex)
    }

    /// The lookups as a `LookedUp`, with a reason for each miss (keyed in full), written into the
    /// report's platforms.
    func recorded(_ keyed: Keyed, _ lookups: [Lookup], pushedIndex: Lane.PushedIndex?) -> LookedUp {
        var result = LookedUp(
            pushedIndex: pushedIndex, lookups: Array(zip(keyed.keys.map(\.platform), lookups)), found: [:], missing: [])
        report.platforms = []
        for ((platform, key), lookup) in zip(keyed.keys, lookups) {
            var entry = ProcessorReport.PlatformReport(platform: platform.description, key: key.hex)
            if let hit = lookup.hit {
                entry.cache = hit.source.rawValue
                entry.digest = hit.descriptor.digest.description
                result.found[platform] = hit.descriptor
            } else if let inputKey = keyed.full?.inputs.first(where: { $0.platform == platform })?.key {
                let reason = lookup.refused ?? lane.explain(processor, platform: platform, key: inputKey)
                result.reasons[platform] = reason
                entry.cache = "miss"
                entry.reason = reason
            }
            report.platforms.append(entry)
        }
        result.missing = keyed.keys.map(\.platform).filter { result.found[$0] == nil }
        return result
    }
}

/// The registry's answers to one lookup's `HEAD`s of manifests: nothing is pushed during a
/// lookup, so a manifest the index check asked about is not asked again by the platform lookups
/// after it.
final class HeadAnswers: Sendable {
    private let answers = Mutex<[String: Descriptor?]>([:])
    private let client: RegistryClient

    init(client: RegistryClient) { self.client = client }

    func head(_ reference: ImageReference) async throws -> Descriptor? {
        let key = reference.description
        if let known = answers.withLock({ $0[key] }) { return known }
        let answer = try await client.headManifest(reference)
        answers.withLock { $0[key] = answer }
        return answer
    }
}
