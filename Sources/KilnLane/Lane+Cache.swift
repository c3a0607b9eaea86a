import KilnBuild
import KilnCore
import KilnOCI
import KilnProcessors
import KilnRegistry
import KilnStore

/// What a key maps to in the local store (`keys/lane/…`). Written without `fsync`, like the key
/// memo: a record only saves a lookup (the manifest it names is stored, and flushed, first), and
/// one a crash left empty or cut short does not decode, so the key is looked up again. A fresh
/// runner writes one per processor and platform: at 2,400 processors the flushes were a sixth
/// of its run.
struct LaneRecord: Codable {
    /// The platform manifest built from the key.
    var manifest: Descriptor
    /// The repository it was pushed to, if it was.
    var repository: String?
}

/// The inputs of the last key seen for a (processor, platform) (`keys/lane-inputs/…`), so a
/// rebuild can say which input changed. Written without `fsync` (see ``LaneRecord``): losing one
/// loses only that explanation.
struct LastInputs: Codable {
    var key: String
    var parts: InputKey.Parts
}

/// The key alone of a ``LastInputs`` record.
struct LastKey: Decodable {
    var key: String
}

/// Where a key's image was found.
enum CacheSource: String {
    /// This machine's store (and, when pushing, the registry still has the manifest).
    case local
    /// A `kiln-KEY` tag in the registry.
    case registry
}

struct CacheHit {
    var descriptor: Descriptor
    var source: CacheSource
}

/// What looking a key up found: a hit, or a miss with why a key tag was not used (nil: none).
struct Lookup {
    var hit: CacheHit?
    var refused: String?
    /// A key tag's image has no provenance attached (a tag from before kiln pushed key tags
    /// last, or another tool's): the hit attaches it.
    var lacksProvenance = false
}

extension Lane {
    static func repository(_ text: String) throws -> Repository {
        let reference = try ImageReference(parsing: text)
        guard reference.digest == nil, reference.tag == "latest", !text.hasSuffix(":latest") else {
            throw LaneError.notARepository(text)
        }
        return reference.repository
    }

    /// The tag that records a key in the registry: the shared cache of every runner.
    static func cacheTag(_ key: Digest) -> String { "kiln-" + key.hex }

    func cacheRepository(for target: Repository) throws -> Repository {
        guard let text = settings.config.cacheRepository else { return target }
        return try Self.repository(text)
    }

    /// An index the registry already has for a processor's keys, found without building.
    struct PushedIndex {
        var found: [Platform: Descriptor]
        var index: Digest
        /// The version tag names the index already (false: the tag is to be moved to it).
        var tagged: Bool
    }

    /// With `--push`, the images of a processor whose every platform this store recorded as
    /// pushed to `repository`, once the registry is found to have them (`confirmPushed`). nil
    /// when a platform has no such record or the registry lacks one of them; the lookups per
    /// platform then decide. The index's digest comes back too (it is made and stored once).
    func pushedIndexHits(
        _ keys: [(platform: Platform, key: Digest)], repository: Repository, version: String, confirming: Bool,
        heads: HeadAnswers
    ) async throws -> PushedIndex? {
        guard confirming else { return nil }
        var found = [Platform: Descriptor]()
        for (platform, key) in keys {
            guard let record = try? store.record(LaneRecord.self, kind: "lane", key: key),
                record.repository == repository.description, store.contains(record.manifest.digest)
            else { return nil }
            found[platform] = record.manifest
        }
        let index = try index(keys.map(\.platform), found)
        return try await confirmPushed(
            index.descriptor.digest, found: found, repository: repository, version: version, heads: heads)
    }

    /// Whether `repository` still has the pushed `index` and each platform manifest in `found`,
    /// asked all at once: the version tag (naming the index, it shows the index is there) and
    /// one `HEAD` per platform manifest (distribution keeps an index whose manifests were
    /// deleted, so the index alone proves nothing). When the tag names another index (inputs
    /// reverted), the index itself is asked for, and the tag is to be moved.
    func confirmPushed(
        _ index: Digest, found: [Platform: Descriptor], repository: Repository, version: String, heads: HeadAnswers
    ) async throws -> PushedIndex? {
        let tag = Tag.isValid(version) ? version : nil
        var asked = found.values.map { ImageReference(repository: repository, digest: $0.digest) }
        asked.append(
            tag.map { ImageReference(repository: repository, tag: $0) } ?? .init(repository: repository, digest: index))
        let answers = try await asked.mapConcurrently(width: asked.count) { try await heads.head($0) }
        guard answers.dropLast().allSatisfy({ $0 != nil }) else { return nil }
        if answers.last??.digest == index { return PushedIndex(found: found, index: index, tagged: true) }
        guard tag != nil, try await heads.head(.init(repository: repository, digest: index)) != nil else {
            return nil
        }
        return PushedIndex(found: found, index: index, tagged: false)
    }

    /// Moves the version tag of `repository` to `index`, which the registry has.
    func tagVersion(_ version: String, index: Digest, in repository: Repository) async throws -> Int64 {
        let bytes: [UInt8]
        if let stored = try? store.readBlob(index, limit: 4 << 20) {
            bytes = stored
        } else {
            bytes = try await client.fetchManifest(ImageReference(repository: repository, digest: index)).bytes
            _ = try store.put(bytes, mediaType: .ociIndex)
        }
        try await ImagePusher(client: client).putManifest(
            bytes, mediaType: .ociIndex, to: repository, reference: version, from: store)
        return Int64(bytes.count)
    }

    /// Finds a key's image: the local store first, then one `HEAD` of the key's tag in the
    /// registry. When `confirming` (every mode but a build that does not push), a local hit is
    /// trusted only once the registry still has the manifest (one `HEAD` by digest): a pin to
    /// an image deleted from the registry is no hit, whatever this store remembers.
    func lookup(
        _ key: Digest, platform: Platform, repository: Repository, fetchManifest: Bool, confirming: Bool,
        heads: HeadAnswers
    ) async throws -> Lookup {
        if let record = try? store.record(LaneRecord.self, kind: "lane", key: key),
            store.contains(record.manifest.digest)
        {
            if !confirming {
                return Lookup(hit: CacheHit(descriptor: record.manifest, source: .local))
            }
            if record.repository == repository.description,
                try await heads.head(ImageReference(repository: repository, digest: record.manifest.digest)) != nil
            {
                return Lookup(hit: CacheHit(descriptor: record.manifest, source: .local))
            }
        }
        let cache = try cacheRepository(for: repository)
        guard let found = try await heads.head(ImageReference(repository: cache, tag: Self.cacheTag(key)))
        else { return Lookup() }
        if cache != repository,
            try await heads.head(ImageReference(repository: repository, digest: found.digest)) == nil
        {
            // The cache repository knows the key, but the target lacks the image: build it again
            // (same bytes) so the push fills the target.
            return Lookup()
        }
        var descriptor = Descriptor(mediaType: found.mediaType, digest: found.digest, size: found.size)
        if fetchManifest || !store.contains(found.digest) {
            let bytes = try await client.fetchManifest(ImageReference(repository: cache, digest: found.digest)).bytes
            _ = try store.put(bytes, mediaType: found.mediaType)
        }
        // The size from the bytes, not the HEAD's Content-Length (a proxy may drop it): the
        // index lists it.
        if let size = try? store.readBlob(found.digest, limit: 4 << 20).count { descriptor.size = Int64(size) }
        // A tag is only a name anyone can move: the image must be this key's build for this
        // platform. The image's provenance listing (read anyway: a hit carries its provenance)
        // says so when its statements record key and platform; otherwise the config decides.
        var listing: ProvenanceListing?
        if settings.provenance, settings.push {
            listing = ProvenanceListing(try await provenanceEntries(of: descriptor.digest, in: repository))
        }
        switch listing?.verdict(key: key, platform: platform) ?? .silent {
        case .vouched where descriptor.mediaType.isImageManifest: break
        case .contradicted(let problem): return Lookup(refused: "its key tag \(problem): built again")
        case .vouched, .silent:
            if let problem = try await platformProblem(of: descriptor, in: cache, platform: platform) {
                return Lookup(refused: "its key tag \(problem): built again")
            }
        }
        let lacksProvenance = listing.map { $0.entries.isEmpty } ?? false
        try store.setRecord(
            LaneRecord(manifest: descriptor, repository: cache == repository ? repository.description : nil),
            kind: "lane", key: key, durable: false)
        return Lookup(hit: CacheHit(descriptor: descriptor, source: .registry), lacksProvenance: lacksProvenance)
    }

    /// Why the image `descriptor` (its manifest in the store) is no image for `platform`: not
    /// an image manifest, or its config names another platform. The config is read from the
    /// store, else fetched from `repository` (and kept). nil when it is one.
    func platformProblem(of descriptor: Descriptor, in repository: Repository, platform: Platform) async throws
        -> String?
    {
        guard descriptor.mediaType.isImageManifest,
            let manifest = try? CanonicalJSON.decode(
                ImageManifest.self, from: try store.readBlob(descriptor.digest, limit: 4 << 20), what: "image")
        else { return "names no image manifest" }
        let bytes: [UInt8]
        if let stored = try? store.readBlob(manifest.config.digest, limit: 16 << 20) {
            bytes = stored
        } else {
            bytes = try await client.fetchBlob(manifest.config.digest, from: repository, limit: 16 << 20)
            _ = try store.put(bytes, mediaType: manifest.config.mediaType)
        }
        guard let config = try? CanonicalJSON.decode(ImageConfig.self, from: bytes, what: "config") else {
            return "names an image whose config kiln cannot read"
        }
        let found = config.platform
        guard found.os == platform.os, found.architecture == platform.architecture,
            (found.variant ?? "") == (platform.variant ?? "") || platform.matches(found)
        else { return "names an image for \(found), not \(platform)" }
        return nil
    }

    static func inputsKey(_ processor: Processor, _ platform: Platform) -> Digest {
        Digest.sha256(of: Array("\(processor.ref) \(platform)".utf8))
    }

    /// Keeps the inputs of the key just used, for the next run's explanation.
    func remember(_ processor: Processor, platform: Platform, key: InputKey) throws {
        let slot = Self.inputsKey(processor, platform)
        // Only the key is compared: decoding every file of the parts was most of this check.
        if let last = try? store.record(LastKey.self, kind: "lane-inputs", key: slot), last.key == key.digest.hex {
            return
        }
        try store.setRecord(
            LastInputs(key: key.digest.hex, parts: key.parts), kind: "lane-inputs", key: slot, durable: false)
    }

    /// Why `key` is not the key of the last build of this processor and platform, in a phrase.
    func explain(_ processor: Processor, platform: Platform, key: InputKey) -> String {
        guard
            let last = try? store.record(LastInputs.self, kind: "lane-inputs", key: Self.inputsKey(processor, platform))
        else {
            return "not built before (no earlier key in this cache)"
        }
        if last.key == key.digest.hex { return "built before, but the image is no longer in the cache or registry" }
        let differences = key.differences(from: last.parts)
        let files = differences.filter {
            switch $0 {
            case .fileAdded, .fileChanged, .fileRemoved: true
            default: false
            }
        }
        var reasons = differences.filter { !files.contains($0) }.map(\.description)
        if let first = files.first {
            reasons.append(files.count > 1 ? "\(first) (and \(files.count - 1) more)" : first.description)
        }
        return reasons.isEmpty ? "its inputs changed" : reasons.joined(separator: "; ")
    }

    /// Builds the missing platforms natively and, when pushing, pushes each platform image under
    /// its key tag. Records each key locally once its image is safely where it must be.
    func build(
        _ job: ProcessorJob, platforms: [Platform], keys: [(platform: Platform, key: InputKey)], repository: Repository,
        report: inout ProcessorReport
    ) async throws -> [(Platform, Descriptor)] {
        for platform in platforms { observer(LaneEvent(ref: job.processor.ref, kind: .building(platform))) }
        // Only a `RUN` has checkpoints; finding their homes reads every processor's Dockerfile,
        // which a lane building one `COPY`-only processor must not pay for.
        let runs = job.dockerfile.stages.contains { $0.lastRun != nil }
        let checkpoints = runs ? try await self.checkpoints(for: repository) : nil
        var clock = Elapsed.now()
        let result = try await job.builder(platforms: platforms, downloadingLayers: true, checkpoints: checkpoints)
            .build()
        let building = Elapsed.lap(&clock)
        let running = result.runDecisions.compactMap(\.seconds).reduce(0, +)
        report.phases?.run += min(running, building)
        report.phases?.layers += max(0, building - running)
        defer { report.phases?.push += Elapsed.lap(&clock) }
        report.stepsRun += result.stepsRun
        report.stepsReused += result.stepsReused
        report.runSteps += result.runDecisions.map(RunStepReport.init)
        let publisher = BuildPublisher(client: client, store: store, layers: layers)
        report.pushedBytes += try await publisher.prepare(result, checkpoints: settings.push ? checkpoints : nil)
        if !settings.push {
            // Kept here, not pushed: a later run pushes these images from this store.
            try await layers.materialize(result.bundle.images.flatMap(\.manifest.value.layers), into: store)
        }
        var built = [(Platform, Descriptor)]()
        for (platform, image) in zip(platforms, result.bundle.images) {
            guard let key = keys.first(where: { $0.platform == platform })?.key.digest else {
                throw LaneError.internalState("no key for \(platform) among the keys built for")
            }
            let descriptor = image.manifest.descriptor
            if settings.push {
                report.pushedBytes += try await publish(
                    descriptor, of: result, job: job, platform: platform, key: key, keys: keys, repository: repository,
                    publisher: publisher)
                observer(LaneEvent(ref: job.processor.ref, kind: .pushing(bytes: report.pushedBytes)))
            }
            try store.setRecord(
                LaneRecord(manifest: descriptor, repository: settings.push ? repository.description : nil),
                kind: "lane", key: key, durable: false)
            built.append((platform, descriptor))
        }
        return built
    }

    /// Pushes one platform image just built: its blobs (and the manifest by digest, to the cache
    /// repository too, when that is another), then its provenance, then its key tag last — a
    /// tag means the image and its provenance are there, so a run that failed in between builds
    /// (and attaches) again instead of calling a bare image a hit. Where the key tag goes to the
    /// image's own repository, the manifest goes up once, with the tag: a statement may be
    /// pushed before its subject (distribution spec v1.1). The bytes uploaded.
    func publish(
        _ descriptor: Descriptor, of result: BuildResult, job: ProcessorJob, platform: Platform, key: Digest,
        keys: [(platform: Platform, key: InputKey)], repository: Repository, publisher: BuildPublisher
    ) async throws -> Int64 {
        let cache = try cacheRepository(for: repository)
        let pushed = try await publisher.push(
            descriptor, of: result, to: ImageReference(repository: repository, digest: descriptor.digest),
            puttingRoot: cache != repository)
        var bytes = pushed.bytesUploaded + (pushed.alreadyPresent ? 0 : descriptor.size)
        if cache != repository {
            let copy = try await publisher.push(
                descriptor, of: result, to: ImageReference(repository: cache, digest: descriptor.digest))
            bytes += copy.bytesUploaded + descriptor.size
        }
        if settings.provenance, let inputKey = keys.first(where: { $0.platform == platform })?.key {
            let statement = try await provenanceStatement(
                processor: job.processor, platform: platform, key: inputKey, image: descriptor, repository: repository)
            bytes += try await attachProvenance(statement, to: descriptor, in: repository)
        }
        try await ImagePusher(client: client).putManifest(
            try store.readBlob(descriptor.digest, limit: 4 << 20), mediaType: descriptor.mediaType, to: cache,
            reference: Self.cacheTag(key), from: store)
        return bytes
    }
}
