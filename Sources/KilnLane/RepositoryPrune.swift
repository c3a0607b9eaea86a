import Foundation
import KilnCore
import KilnOCI
import KilnRegistry
import KilnStore
import Synchronization

/// One repository's registry prune: which of kiln's tags nothing needs (`survey`), then which
/// of those nothing has needed for the grace period, by kiln's marks (`finish`).
struct RepositoryPrune {
    let repository: Repository
    let client: RegistryClient
    /// The current inputs' keys and the recent ones.
    let keys: Set<Digest>
    /// The current Dockerfiles' `RUN` steps.
    let steps: Set<Digest>
    let guards: PruneGuards

    /// Manifests kept, with everything they reach.
    private(set) var keep = Set<Digest>()
    /// The layers of every image kept: their index artifacts stay.
    private(set) var keptLayers = Set<Digest>()
    private(set) var candidates = [RegistryPrunePlan.Deletion]()
    private(set) var kept = 0
    private var referrerTags = [(tag: String, subject: String, digest: Digest)]()
    private var indexTags = [(tag: String, layer: Digest, digest: Digest)]()

    init(repository: Repository, client: RegistryClient, keys: Set<Digest>, steps: Set<Digest>, guards: PruneGuards) {
        self.repository = repository
        self.client = client
        self.keys = keys
        self.steps = steps
        self.guards = guards
    }

    /// Lists the repository's tags and sorts kiln's into kept and candidates.
    mutating func survey() async throws {
        for digest in guards.pinned.byRepository[repository] ?? []
        where try await client.headManifest(.init(repository: repository, digest: digest)) != nil {
            try await keepTree(digest)
        }
        for tag in try await client.tags(in: repository) {
            guard let descriptor = try await client.headManifest(.init(repository: repository, tag: tag)) else {
                continue
            }
            try await sort(tag, descriptor.digest)
        }
        // A referrers tag stays with its image, and keeps what it lists.
        for entry in referrerTags {
            if let subject = try? Digest(sha256Hex: entry.subject), keep.contains(subject) {
                kept += 1
                try await keepTree(entry.digest)
            } else {
                try await dropReferrers(entry)
            }
        }
        // A layer's index artifact stays while an image kept here has the layer.
        for entry in indexTags {
            if keptLayers.contains(entry.layer) {
                kept += 1
                keep.insert(entry.digest)
            } else {
                candidates.append(
                    .init(
                        tag: entry.tag, digest: entry.digest.description,
                        reason: "the index of a layer no kept image has"))
            }
        }
    }

    private mutating func sort(_ tag: String, _ digest: Digest) async throws {
        switch Lane.kilnTag(tag) {
        case nil:
            try await keepTree(digest)  // a version tag, kiln's marks, or anyone else's
        case .key(let key), .step(let key):
            if keys.contains(key) || steps.contains(key) {
                kept += 1
                try await keepTree(digest)
            } else {
                let what =
                    tag.hasPrefix("kiln-step-") || tag.hasPrefix("kiln-reads-")
                    ? "a RUN step no current Dockerfile has"
                    : "the key of inputs no current processor has and no recent build used"
                candidates.append(.init(tag: tag, digest: digest.description, reason: what))
            }
        case .execution:
            let manifest = try await client.fetchManifest(.init(repository: repository, digest: digest))
            let artifact = try? CanonicalJSON.decode(ImageManifest.self, from: manifest.bytes, what: "artifact")
            let step = (artifact?.annotations?[RegistryCheckpoints.stepKeyAnnotation]).flatMap {
                try? Digest(sha256Hex: $0)
            }
            if let step, steps.contains(step) {
                kept += 1
                keep.insert(digest)
            } else {
                candidates.append(
                    .init(
                        tag: tag, digest: digest.description,
                        reason: "the executions of a RUN step no current Dockerfile has"))
            }
        case .referrers(let subject):
            referrerTags.append((tag, subject, digest))
        case .index(let layer):
            indexTags.append((tag, layer, digest))
        }
    }

    /// A referrers tag whose image goes: it goes, and what only it lists.
    private mutating func dropReferrers(_ entry: (tag: String, subject: String, digest: Digest)) async throws {
        candidates.append(
            .init(tag: entry.tag, digest: entry.digest.description, reason: "the referrers of an image that goes"))
        let fetched = try await client.fetchManifest(.init(repository: repository, digest: entry.digest))
        let listed = (try? CanonicalJSON.decode(ImageIndex.self, from: fetched.bytes, what: "referrers"))?.manifests
        for child in listed ?? [] where !keep.contains(child.digest) {
            candidates.append(
                .init(tag: nil, digest: child.digest.description, reason: "listed only by \(entry.tag), which goes"))
        }
    }

    /// Keeps `digest` and what it lists. A manifest an index lists may be gone (distribution
    /// keeps an index whose children were deleted): nothing under it to keep.
    private mutating func keepTree(_ digest: Digest) async throws {
        guard keep.insert(digest).inserted else { return }
        guard
            let fetched = try await client.fetchManifestIfPresent(
                ImageReference(repository: repository, digest: digest))
        else { return }
        if fetched.mediaType.isIndex,
            let index = try? CanonicalJSON.decode(ImageIndex.self, from: fetched.bytes, what: "index")
        {
            for child in index.manifests { try await keepTree(child.digest) }
        } else if let image = try? CanonicalJSON.decode(ImageManifest.self, from: fetched.bytes, what: "image") {
            keptLayers.formUnion(image.layers.map(\.digest))
        }
    }

    /// The plan: candidates nothing kept names, split by whether the grace period has passed
    /// since kiln's marks first found them unneeded. With `apply`, the marks are rewritten (the
    /// current candidates, each with the time first found) and the due manifests deleted.
    func finish(apply: Bool, store: ContentStore) async throws -> RegistryPrunePlan {
        var plan = RegistryPrunePlan(repository: repository.description)
        let unneeded = candidates.filter {
            guard let digest = try? Digest(parsing: $0.digest) else { return false }
            return !keep.contains(digest) && !guards.pinned.all.contains(digest)
        }
        plan.kept = kept + candidates.count - unneeded.count
        let stored = PruneMarks(repository: repository, client: client)
        let marks = try await stored.read()
        let now = Self.timestamp(guards.now)
        var written = [String: String]()
        for var deletion in unneeded {
            let since = marks[deletion.digest]
            written[deletion.digest] = since ?? now
            deletion.unneededSince = since
            if let since, let date = Self.date(since), guards.now.timeIntervalSince(date) >= guards.gracePeriod {
                plan.delete.append(deletion)
            } else if guards.gracePeriod <= 0 {
                plan.delete.append(deletion)
            } else {
                plan.pending.append(deletion)
            }
        }
        if apply, written != marks {
            try await TagRewrites.shared.rewrite(stored.reference) {
                try await stored.write(written, store: store)
            } holds: {
                true
            }
        }
        if repository.registry == "ghcr.io" {
            plan.unsupported =
                "GHCR deletes nothing through the registry API: delete these package versions through GitHub's packages API, e.g. gh api --method DELETE /orgs/OWNER/packages/container/PACKAGE/versions/ID (each version's ID from gh api /orgs/OWNER/packages/container/PACKAGE/versions, by its name, the digest)"
            return plan
        }
        guard apply else { return plan }
        return try await delete(plan)
    }

    private func delete(_ planned: RegistryPrunePlan) async throws -> RegistryPrunePlan {
        var plan = planned
        var done = Set<String>()
        for deletion in plan.delete where done.insert(deletion.digest).inserted {
            guard let digest = try? Digest(parsing: deletion.digest) else { continue }
            switch try await client.deleteManifest(digest, in: repository) {
            case .deleted: plan.deleted.append(deletion.digest)
            case .notFound: continue
            case .unsupported:
                plan.unsupported =
                    "\(repository.registry) refuses deletes through its API (for distribution, set storage.delete.enabled: true)"
                return plan
            }
        }
        return plan
    }

    /// Takes `digests` off the marks of `repository`: the lane pins them again (a revert to
    /// inputs a prune found unneeded long ago must not be deleted as soon as it is pinned). One
    /// `HEAD` when there are no marks, and none for a repository `markless` already knows has
    /// none in this run (a prune marking meanwhile is harmless: nothing a pin names is deleted).
    static func unmark(
        _ digests: Set<Digest>, in repository: Repository, client: RegistryClient, store: ContentStore,
        markless: MarklessRepositories? = nil
    ) async throws {
        if markless?.contains(repository) == true { return }
        let marks = PruneMarks(repository: repository, client: client)
        guard try await client.headManifest(marks.reference) != nil else {
            markless?.insert(repository)
            return
        }
        let names = Set(digests.map(\.description))
        try await TagRewrites.shared.rewrite(marks.reference) {
            let current = try await marks.read()
            guard current.keys.contains(where: names.contains) else { return }
            try await marks.write(current.filter { !names.contains($0.key) }, store: store)
        } holds: {
            !(try await marks.read().keys.contains(where: names.contains))
        }
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    static func date(_ text: String) -> Date? {
        try? Date(text, strategy: .iso8601)
    }
}

/// kiln's prune marks in one repository (the `kiln-prune-marks` tag): digest → when a prune first
/// found nothing needing it, as an artifact holding one JSON blob.
struct PruneMarks {
    static let tag = "kiln-prune-marks"
    static let mediaType = MediaType("application/vnd.kiln.prune-marks.v1+json")

    let repository: Repository
    let client: RegistryClient

    var reference: ImageReference { ImageReference(repository: repository, tag: Self.tag) }

    func read() async throws -> [String: String] {
        guard try await client.headManifest(reference) != nil else { return [:] }
        let fetched = try await client.fetchManifest(reference)
        guard let artifact = try? CanonicalJSON.decode(ImageManifest.self, from: fetched.bytes, what: "prune marks"),
            let layer = artifact.layers.first
        else { return [:] }
        let bytes = try await client.fetchBlob(layer.digest, from: repository, limit: 64 << 20)
        return (try? JSONDecoder().decode([String: String].self, from: Data(bytes))) ?? [:]
    }

    func write(_ marks: [String: String], store: ContentStore) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let blob = try store.put(Array(try encoder.encode(marks)), mediaType: Self.mediaType)
        let artifact = try RegistryCheckpoints.artifact([blob], type: Self.mediaType, annotations: [:], store: store)
        _ = try await ImagePusher(client: client).push(artifact, from: store, to: reference)
    }
}

/// Repositories a lane run found without prune marks: the other processors pinned into them in
/// the same run do not ask again.
final class MarklessRepositories: Sendable {
    private let known = Mutex(Set<Repository>())

    func contains(_ repository: Repository) -> Bool { known.withLock { $0.contains(repository) } }
    func insert(_ repository: Repository) { _ = known.withLock { $0.insert(repository) } }
}
