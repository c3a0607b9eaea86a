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
        package var tag: String
        package var digest: String
    }

    package var repository: String
    /// kiln's tags (`kiln-KEY`, `kiln-step-…`, `kiln-reads-…`, `kiln-run-…`, `kiln-index-…`,
    /// `sha256-…`) that no pin and no recent key needs, with the manifest each names.
    package var delete: [Deletion] = []
    /// kiln's tags kept.
    package var kept = 0
    /// Manifests deleted (`--delete`).
    package var deleted: [String] = []
    /// The registry deletes nothing through its API (GHCR): what to do instead.
    package var unsupported: String?
}

extension Lane {
    /// Tags kiln made that nothing needs any more, per repository of the lane: a key tag whose
    /// key is neither one of the current inputs' nor in `recentKeys` (keys this machine's store
    /// used lately), a step, reads or execution tag of a `RUN` step no current processor has,
    /// the referrers tag of an image that goes, and the index artifact of a layer no kept image
    /// of the repository has. Nothing a pin names, a version tag names, or
    /// an index that is kept lists ever goes; a manifest is deleted by digest only when no kept
    /// tag names it. With `apply`, the manifests are deleted (each tag naming them goes with them).
    package func pruneRegistry(recentKeys: Set<Digest>, apply: Bool) async throws -> [RegistryPrunePlan] {
        let all = try Discovery.processors(settings.config)
        await checkpointHomes.use(all, trustingMemos: false)
        var keys = recentKeys
        var repositories = Set<Repository>()
        var pinned = [Repository: Set<Digest>]()
        let pinFiles = Set(all.map(\.file))
        for processor in all where processor.enabled && processor.duplicates.isEmpty {
            let repository = try Self.repository(try settings.config.repository(for: processor.ref))
            repositories.insert(repository)
            repositories.insert(try cacheRepository(for: repository))
            for (reference, digest) in try pins(of: processor) { pinned[reference, default: []].insert(digest) }
            guard case .build(let platforms, _, _) = plan(processor),
                let job = try? ProcessorJob(processor: processor, lane: self, pinFiles: pinFiles, platforms: platforms),
                let current = try? await job.keys(downloadingLayers: false)
            else { continue }
            for entry in current { keys.insert(entry.key.digest) }
        }
        let steps = Set(await checkpointHomes.homes { await self.computeHomes($0, trustingMemos: $1) }.keys)

        var plans = [RegistryPrunePlan]()
        for repository in repositories.sorted(by: { $0.description < $1.description }) {
            plans.append(
                try await prune(
                    repository, keys: keys, steps: steps, pinned: pinned[repository] ?? [], apply: apply))
        }
        return plans
    }

    private func prune(
        _ repository: Repository, keys: Set<Digest>, steps: Set<Digest>, pinned: Set<Digest>, apply: Bool
    ) async throws -> RegistryPrunePlan {
        var plan = RegistryPrunePlan(repository: repository.description)
        var keep = Set<Digest>()
        var candidates = [(tag: String, digest: Digest)]()
        var referrerTags = [(tag: String, subject: String, digest: Digest)]()
        var indexTags = [(tag: String, layer: Digest, digest: Digest)]()
        // The layers of every image kept: their index artifacts stay.
        var keptLayers = Set<Digest>()
        func keepTree(_ digest: Digest) async throws {
            guard keep.insert(digest).inserted else { return }
            let fetched = try await client.fetchManifest(ImageReference(repository: repository, digest: digest))
            if fetched.mediaType.isIndex,
                let index = try? CanonicalJSON.decode(ImageIndex.self, from: fetched.bytes, what: "index")
            {
                for child in index.manifests { try await keepTree(child.digest) }
            } else if let image = try? CanonicalJSON.decode(ImageManifest.self, from: fetched.bytes, what: "image") {
                keptLayers.formUnion(image.layers.map(\.digest))
            }
        }
        for digest in pinned where try await client.headManifest(.init(repository: repository, digest: digest)) != nil {
            try await keepTree(digest)
        }
        for tag in try await client.tags(in: repository) {
            guard let descriptor = try await client.headManifest(.init(repository: repository, tag: tag)) else {
                continue
            }
            switch Self.kilnTag(tag) {
            case nil:
                try await keepTree(descriptor.digest)  // a version tag, or anyone else's
            case .key(let key), .step(let key):
                if keys.contains(key) || steps.contains(key) {
                    plan.kept += 1
                    try await keepTree(descriptor.digest)
                } else {
                    candidates.append((tag, descriptor.digest))
                }
            case .execution:
                let manifest = try await client.fetchManifest(.init(repository: repository, digest: descriptor.digest))
                let artifact = try? CanonicalJSON.decode(ImageManifest.self, from: manifest.bytes, what: "artifact")
                let step = (artifact?.annotations?[RegistryCheckpoints.stepKeyAnnotation]).flatMap {
                    try? Digest(sha256Hex: $0)
                }
                if let step, steps.contains(step) {
                    plan.kept += 1
                    keep.insert(descriptor.digest)
                } else {
                    candidates.append((tag, descriptor.digest))
                }
            case .referrers(let subject):
                referrerTags.append((tag, subject, descriptor.digest))
            case .index(let layer):
                indexTags.append((tag, layer, descriptor.digest))
            }
        }
        // A referrers tag stays with its image, and keeps what it lists.
        for entry in referrerTags {
            if let subject = try? Digest(sha256Hex: entry.subject), keep.contains(subject) {
                plan.kept += 1
                try await keepTree(entry.digest)
            } else {
                candidates.append((entry.tag, entry.digest))
                let fetched = try await client.fetchManifest(.init(repository: repository, digest: entry.digest))
                for child in (try? CanonicalJSON.decode(ImageIndex.self, from: fetched.bytes, what: "referrers"))?
                    .manifests ?? [] where !keep.contains(child.digest)
                {
                    candidates.append(("\(entry.tag) → \(child.digest.short)", child.digest))
                }
            }
        }
        // A layer's index artifact stays while an image kept here has the layer.
        for entry in indexTags {
            if keptLayers.contains(entry.layer) {
                plan.kept += 1
                keep.insert(entry.digest)
            } else {
                candidates.append((entry.tag, entry.digest))
            }
        }
        plan.delete = candidates.filter { !keep.contains($0.digest) }.map {
            RegistryPrunePlan.Deletion(tag: $0.tag, digest: $0.digest.description)
        }
        plan.kept += candidates.count - plan.delete.count
        if repository.registry == "ghcr.io" {
            plan.unsupported =
                "GHCR deletes nothing through the registry API: delete these package versions through GitHub's packages API, e.g. gh api --method DELETE /orgs/OWNER/packages/container/PACKAGE/versions/ID (each version's ID from gh api /orgs/OWNER/packages/container/PACKAGE/versions, by its name, the digest)"
            return plan
        }
        guard apply else { return plan }
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

    /// Every `REPOSITORY@sha256:…` a processor's file pins.
    func pins(of processor: Processor) throws -> [(Repository, Digest)] {
        let text = try Self.readText(processor.file)
        var values = [String]()
        if let oci = try YAMLPins.value(at: ["image", "oci"], in: text, file: processor.displayPath) {
            values.append(oci)
        }
        for platform in processor.platforms ?? settings.config.platforms {
            if let value = try YAMLPins.value(
                at: ["image", "platforms", Self.pinKey(platform)], in: text, file: processor.displayPath)
            {
                values.append(value)
            }
        }
        return values.compactMap { value in
            guard let reference = try? ImageReference(parsing: value), let digest = reference.digest else { return nil }
            return (reference.repository, digest)
        }
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
