import Foundation
import KilnBuild
import KilnCore
import KilnOCI
import KilnPin
import KilnProcessors
import KilnRegistry

/// What pruning one registry repository would delete (`kiln prune`, dry run by default).
package struct RegistryPrunePlan: Encodable, Sendable {
    package struct Deletion: Encodable, Sendable, Equatable {
        /// The tag that named the manifest (nil: a referrer listed only by a tag that goes).
        package var tag: String?
        package var digest: String
        /// Why nothing needs it.
        package var reason: String
        /// When a `kiln prune --delete` first found nothing needing it (nil: not yet).
        package var unneededSince: String?
    }

    package var repository: String
    /// kiln's tags (`kiln-KEY`, `kiln-step-…`, `kiln-reads-…`, `kiln-run-…`, `kiln-index-…`,
    /// `sha256-…`) that nothing has needed for the grace period, with the manifest each names.
    package var delete: [Deletion] = []
    /// What nothing needs either, but not yet for the grace period: marked, deleted by a later
    /// `kiln prune --delete` if still unneeded then.
    package var pending: [Deletion] = []
    /// kiln's tags kept.
    package var kept = 0
    /// Manifests deleted (`--delete`).
    package var deleted: [String] = []
    /// The registry deletes nothing through its API (GHCR): what to do instead.
    package var unsupported: String?
}

/// What a registry prune keeps whatever its tags say: the pins and what they reach.
package struct PruneGuards: Sendable {
    /// Images pinned anywhere (the checkout's files, every git ref).
    package var pinned: PinnedDigests
    /// Keys this store built or used lately.
    package var recentKeys: Set<Digest>
    /// How long nothing must have needed a manifest before it is deleted (kiln's marks in the
    /// registry say since when; a fresh runner reads them too).
    package var gracePeriod: TimeInterval
    package var now: Date

    package init(pinned: PinnedDigests, recentKeys: Set<Digest>, gracePeriod: TimeInterval, now: Date = Date()) {
        self.pinned = pinned
        self.recentKeys = recentKeys
        self.gracePeriod = gracePeriod
        self.now = now
    }
}

extension Lane {
    /// The pins a prune must keep: every `REPOSITORY@sha256:…` in any processor's file of the
    /// checkout (enabled or not, whatever platforms it names) and on every branch and tag of
    /// the git repository. `deleting`: refuse a shallow clone.
    package func pinnedEverywhere(deleting: Bool) async throws -> PinnedDigests {
        var pinned = PinnedDigests()
        for processor in try Discovery.processors(settings.config) {
            pinned.scan(try Self.readText(processor.file))
        }
        try await pinned.scanRefs(of: settings.config.root, complete: deleting)
        return pinned
    }

    /// Tags kiln made that nothing needs any more, per repository of the lane: a key tag whose
    /// key is neither one of the current inputs' nor recent, a step, reads or execution tag of a
    /// `RUN` step no current processor has, the referrers tag of an image that goes, and the
    /// index artifact of a layer no kept image of the repository has. Nothing a pin anywhere
    /// names, a version tag names, or an index that is kept lists ever goes. A manifest is
    /// deleted (by digest, only when no kept tag names it) once nothing has needed it for the
    /// grace period; until then `apply` marks it, in the repository, for a later prune.
    package func pruneRegistry(guards: PruneGuards, apply: Bool) async throws -> [RegistryPrunePlan] {
        let config = settings.config
        let all = try await BlockingWork.run { try Discovery.processors(config) }
        await checkpointHomes.use(all, trustingMemos: false)
        var keys = guards.recentKeys
        var repositories = Set<Repository>()
        let pinFiles = Set(all.map(\.file))
        for processor in all where processor.enabled && processor.duplicates.isEmpty {
            let repository = try Self.repository(try settings.config.repository(for: processor.ref))
            repositories.insert(repository)
            repositories.insert(try cacheRepository(for: repository))
            guard case .build(let platforms, _, _) = plan(processor),
                let job = try? ProcessorJob(processor: processor, lane: self, pinFiles: pinFiles, platforms: platforms),
                let current = try? await job.keys(downloadingLayers: false)
            else { continue }
            for entry in current { keys.insert(entry.key.digest) }
        }
        let steps = Set(await checkpointHomes.homes { await self.computeHomes($0, trustingMemos: $1) }.keys)
        var plans = [RegistryPrunePlan]()
        for repository in repositories.sorted(by: { $0.description < $1.description }) {
            var pruning = RepositoryPrune(
                repository: repository, client: client, keys: keys, steps: steps, guards: guards)
            try await pruning.survey()
            plans.append(try await pruning.finish(apply: apply, store: store))
        }
        return plans
    }

    /// The kinds of tag kiln makes.
    enum KilnTag {
        case key(Digest)
        case step(Digest)
        case execution
        case referrers(subject: String)
        /// A layer's index artifact (`RegistryLayers.indexTag`).
        case index(Digest)
    }

    static func kilnTag(_ tag: String) -> KilnTag? {
        func hex(_ prefix: String) -> Digest? {
            guard tag.hasPrefix(prefix) else { return nil }
            return try? Digest(sha256Hex: String(tag.dropFirst(prefix.count)))
        }
        if let key = hex("kiln-step-") ?? hex("kiln-reads-") { return .step(key) }
        if hex("kiln-run-") != nil { return .execution }
        if let layer = hex("kiln-index-") { return .index(layer) }
        if let key = hex("kiln-") { return .key(key) }
        if hex("sha256-") != nil { return .referrers(subject: String(tag.dropFirst("sha256-".count))) }
        return nil
    }
}

extension Lane {
    /// Deletes every tagged manifest of `repository` (a scratch prefix `kiln bench` pushed to);
    /// returns why it could not, when it could not.
    package static func deleteEverything(in repository: Repository, client: RegistryClient) async -> String? {
        if repository.registry == "ghcr.io" {
            return
                "GHCR deletes nothing through the registry API: delete the packages under \(repository) through GitHub's packages API (gh api --method DELETE /orgs/OWNER/packages/container/PACKAGE)"
        }
        do {
            var done = Set<Digest>()
            for tag in try await client.tags(in: repository) {
                guard let descriptor = try await client.headManifest(.init(repository: repository, tag: tag)),
                    done.insert(descriptor.digest).inserted
                else { continue }
                if try await client.deleteManifest(descriptor.digest, in: repository) == .unsupported {
                    return
                        "\(repository.registry) refuses deletes through its API, so \(repository) stays (for distribution, set storage.delete.enabled: true)"
                }
            }
            return nil
        } catch {
            return "could not empty \(repository): \(error)"
        }
    }
}
