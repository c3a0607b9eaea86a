import KilnBuild
import KilnCore
import KilnDockerfile
import KilnLayers
import KilnOCI
import KilnProcessors
import KilnRegistry
import KilnStore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How the lane runs.
package struct LaneSettings: Sendable {
    package var config: LaneConfig
    /// Only these processors (all when empty).
    package var refs: [ProcessorRef] = []
    /// Narrows every processor's platforms (`--platforms`).
    package var platforms: [Platform]?
    /// Push built images and cache tags to the registry.
    package var push = false
    /// Rewrite `registry.yaml` pins after a processor's pushes succeeded.
    package var pin = false
    /// Processors worked on at once (`--jobs`, kiln.yaml `jobs`).
    package var jobs = LaneSettings.defaultJobs
    /// `--jobs` when neither the flag nor kiln.yaml sets it.
    package static let defaultJobs = 4
    /// Processors whose keys come from their memos, checked at once beside `jobs`
    /// (`--check-jobs`): each is a `HEAD` or two, and against a registry tens of milliseconds
    /// away an unchanged lane of thousands would otherwise wait on round trips `jobs` at a time.
    package var checkJobs = LaneSettings.defaultCheckJobs
    /// As many as the registry client keeps HTTP/1.1 connections to a host (HTTP/2 multiplexes).
    package static let defaultCheckJobs = 16
    package var layerOptions: LayerOptions
    /// Runs `RUN` steps (buildah); without one, processors with `RUN` are not buildable.
    package var executor: BuildahExecutor?
    /// Where binfmt_misc entries are looked for before a foreign-architecture `RUN`.
    package var binfmtDirectory = "/proc/sys/fs/binfmt_misc"
    /// Only this share of the processors (`--shard I/N`), for a lane spread over runners.
    package var shard: Shard?
    /// Mirrors and replacements for base images (from `config`, checked by `LaneSettings.init`).
    package var baseSources = BaseSources()
    /// Labels on every image (kiln.yaml `labels`, then `--label`), over its Dockerfile's.
    package var labels: [String: String] = [:]
    /// Annotations on every image's manifests and index (kiln.yaml, then `--annotation`).
    package var annotations: [String: String] = [:]
    /// `org.opencontainers.image.source` (kiln.yaml `source`, else the GitHub repository's URL).
    package var source: String?
    /// Push a provenance statement next to each image built (`--no-provenance`, kiln.yaml
    /// `provenance: false` turn it off).
    package var provenance = true
    /// `kiln verify --provenance`: also check each pinned image's provenance.
    package var verifyProvenance = false
    /// `--sign-key`: each statement is also pushed signed, as a DSSE envelope under the image's
    /// `sha256-HEX.att` tag (as `cosign attest` stores attestations).
    package var signingKey: SigningKey?
    /// `kiln verify --provenance --key`: only statements this key signed count.
    package var verifyingKey: VerifyingKey?
    /// The commit the repository is at, for provenance (`$GITHUB_SHA`, else `.git`).
    package var revision: String?
    /// Who ran the build, for provenance: the GitHub Actions run's URL on a runner.
    package var builderID: String?
    package var invocationID: String?

    package init(config: LaneConfig, layerOptions: LayerOptions) {
        self.config = config
        self.layerOptions = layerOptions
    }
}

/// The build-and-pin lane: finds processors, keys each (processor, platform) by its inputs,
/// skips keys already built (local store, then a tag in the registry), builds and pushes the
/// rest, and pins the digests into each `registry.yaml`.
package struct Lane: Sendable {
    package let settings: LaneSettings
    package let store: ContentStore
    package let client: RegistryClient
    package let observer: @Sendable (LaneEvent) -> Void
    let resolutions = RegistryBaseImages.Resolutions()
    /// `RUN` segments under way, shared by every processor of the run.
    let stepRuns = StepRuns()
    /// Where each `RUN` step's checkpoint lives in the registry.
    let checkpointHomes = CheckpointHomes()
    let hashers: HasherPool
    /// Context walks shared by the run's processors (a library every Dockerfile copies is
    /// listed once).
    let walks = BuildContext.WalkMemo()
    /// The `lstat`s the key memos' checks asked for, shared by the run's processors.
    let pathStates = PathStates()
    /// This kiln binary's size, time and inode: a key memo written by another build of kiln,
    /// which may key differently, is not trusted.
    let binaryIdentity: String
    /// Base and checkpoint layers a build leaves in the registry until it needs their bytes.
    let layers: RegistryLayers
    /// A failure every processor would meet, once one has (`LaneStop`).
    let stop = LaneStop()
    /// Repositories this run found without prune marks (`RepositoryPrune.unmark`).
    let markless = MarklessRepositories()

    package init(
        settings: LaneSettings, store: ContentStore, client: RegistryClient,
        observer: @escaping @Sendable (LaneEvent) -> Void = { _ in }
    ) {
        self.settings = settings
        self.store = store
        self.client = client
        self.observer = observer
        self.hashers = HasherPool(store: store)
        layers = RegistryLayers(client: client)
        var info = stat()
        binaryIdentity =
            stat("/proc/self/exe", &info) == 0
            ? "binary \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) \(info.st_ino)" : "binary ?"
    }

    /// The processors the settings select, in ref order.
    package func processors() throws -> [Processor] {
        try select(from: Discovery.processors(settings.config))
    }

    func select(from all: [Processor]) throws -> [Processor] {
        var selected = all
        if !settings.refs.isEmpty {
            let known = Set(all.map(\.ref))
            if let missing = settings.refs.first(where: { !known.contains($0) }) {
                throw LaneError.unknownRef(missing.description, known: all.map(\.ref.description))
            }
            selected = all.filter { settings.refs.contains($0.ref) }
        }
        if let shard = settings.shard {
            selected = shard.select(selected) { try? settings.config.repository(for: $0.ref) }
        }
        return selected
    }

    package enum Mode: Sendable {
        /// Keys and cache lookups only: what would be built and why.
        case plan
        /// Build what is missing; push and pin as the settings say.
        case build
        /// Compare pins against the current inputs without building.
        case check
        /// Resolve bases (fetching their layers), hash inputs, fetch cache records.
        case warm
        /// Every pin exists in its registry and matches the current inputs.
        case verify
        /// Builds nothing: the index of every processor whose platforms all have their image in
        /// the registry (pushed by per-platform runs) is pushed and tagged (and pinned, with the
        /// settings' `pin`); a missing platform fails its processor, naming it.
        case assemble

        /// Whether this mode leaves its verdict on the pins (so checking nothing is no pass).
        var checksPins: Bool { self == .check || self == .verify }

        /// Whether keys may come from the key memo: not where the Dockerfile itself is needed
        /// (the plan's advice and RUN decisions, warming), nor where every input is checked
        /// again on purpose (verify).
        var trustsKeyMemo: Bool { self == .build || self == .check || self == .assemble }
    }

    /// Runs `mode` over every selected processor, `jobs` at a time; one report per processor.
    /// - Throws: `LaneError` or `YAMLFileError` before any work for a repository the lane cannot
    ///   run on (no processors, a broken `registry.yaml`, an unknown ref); and after the work, for
    ///   `--check` and `verify`, when no processor's pins were checked at all.
    package func run(_ mode: Mode) async throws -> [ProcessorReport] {
        store.sweepLeftovers()
        let config = settings.config
        // Discovery reads every registry.yaml on every core: off the cooperative pool.
        let all = try await BlockingWork.run { try Discovery.processors(config) }
        PinTemporaries.sweep(all.map(\.file))
        let processors = try select(from: all)
        // A setting the repository template needs (owner, registry) is missing for all or none:
        // said once, before any work.
        if let first = processors.first(where: \.enabled) { _ = try settings.config.repository(for: first.ref) }
        let repositories = processors.compactMap { try? Self.repository(settings.config.repository(for: $0.ref)) }
        let hosts = Set(
            repositories.map(\.registry) + repositories.compactMap { try? cacheRepository(for: $0).registry })
        stop.watch(hosts)
        // Every processor asks the lane's registries: one that cannot be reached is said once,
        // before any work, not retried for seconds by each processor.
        for host in hosts.sorted() where processors.contains(where: \.enabled) { try await client.reach(host) }
        let pinFiles = Set(all.map(\.file))
        await checkpointHomes.use(all, trustingMemos: mode.trustsKeyMemo)
        defer { hashers.saveAll() }
        let reports = await runAll(processors, mode: mode, pinFiles: pinFiles)
        if mode.checksPins,
            !reports.contains(where: { $0.status == .ok || $0.status == .stale || $0.status == .failed })
        {
            let why = reports.map { "\($0.ref) \($0.status.rawValue)" }.joined(separator: ", ")
            throw LaneError.nothingChecked(why.isEmpty ? "none selected" : why)
        }
        return reports
    }

    /// Every processor checked from its memo, `checkJobs` at a time (each is a few lstats and a
    /// HEAD); those the check cannot settle keyed in full and built `jobs` at a time, meanwhile.
    private func runAll(_ processors: [Processor], mode: Mode, pinFiles: Set<String>) async -> [ProcessorReport] {
        // Each processor is checked first from its memo and one lookup (`checkJobs` at a time);
        // one that needs more goes to the workers (`jobs` at a time) while the later ones are
        // still being checked: one changed processor among thousands is built during the checks.
        let (checks, queue) = AsyncStream.makeStream(of: (index: Int, pending: Pending?).self)
        async let worked = workQueued(checks, count: processors.count)
        let checked = await Array(processors.indices).mapConcurrently(width: settings.checkJobs) {
            index -> ProcessorReport? in
            switch await self.check(processors[index], mode: mode, pinFiles: pinFiles) {
            case .done(let report):
                queue.yield((index, nil))
                return report
            case .pending(let pending):
                queue.yield((index, pending))
                return nil
            }
        }
        queue.finish()
        var reports = checked
        for (index, report) in await worked { reports[index] = report }
        return zip(reports, processors).map { report, processor in
            report
                ?? {
                    var lost = ProcessorReport(processor: processor, status: .failed)
                    lost.message = "kiln lost track of it (a bug)"
                    return lost
                }()
        }
    }

    /// Works on each processor the check pass handed over, `jobs` at a time, in ref order: one is
    /// started once every check before it is done.
    private func workQueued(_ checks: AsyncStream<(index: Int, pending: Pending?)>, count: Int) async -> [(
        Int, ProcessorReport
    )] {
        await withTaskGroup(of: (Int, ProcessorReport).self) { group in
            var results = [(Int, ProcessorReport)]()
            var running = 0
            var checked = [Pending??](repeating: nil, count: count)
            var next = 0
            for await check in checks {
                checked[check.index] = .some(check.pending)
                while next < count, let handed = checked[next] {
                    let index = next
                    next += 1
                    guard let pending = handed else { continue }
                    if running >= max(1, settings.jobs), let done = await group.next() {
                        results.append(done)
                        running -= 1
                    }
                    group.addTask { (index, await self.resume(pending)) }
                    running += 1
                }
            }
            for await done in group { results.append(done) }
            return results
        }
    }

    /// What the check pass made of a processor: its report, or the run to go on with.
    enum Checked {
        case done(ProcessorReport)
        case pending(Pending)
    }

    /// A processor the check pass could not settle, as it left it: its keys from the memo and
    /// their lookups when it got that far (`ProcessorRun.handoff`). Handed once, from the check's
    /// task to a worker's; never used by two tasks at once.
    struct Pending: @unchecked Sendable {
        let run: ProcessorRun
        let started: Double
    }

    /// The check pass over one processor, never throwing: a failure becomes its report.
    func check(_ processor: Processor, mode: Mode, pinFiles: Set<String>) async -> Checked {
        let started = Elapsed.now()
        // The run sends it once it knows it goes on; every other way, before the report.
        let start = StartEvent(ref: processor.ref, observer: observer)
        if let report = preflight(processor) {
            return .done(finish(report, processor: processor, started: started, start: start))
        }
        let run = ProcessorRun(
            lane: self, processor: processor, mode: mode, pinFiles: pinFiles, start: start, checkOnly: true)
        return await execute(run, started: started)
    }

    /// The worker's part: the run the check pass handed over, from where it stopped.
    func resume(_ pending: Pending) async -> ProcessorReport {
        let run = pending.run
        run.checkOnly = false
        if let reason = stop.reason {
            var report = ProcessorReport(processor: run.processor, status: .failed)
            report.message = "not attempted: \(reason)"
            report.category = ErrorCategory.network.name
            return finish(report, processor: run.processor, started: pending.started, start: run.start)
        }
        switch await execute(run, started: pending.started) {
        case .done(let report): return report
        case .pending:
            let report = ProcessorReport(processor: run.processor, status: .failed)
            return finish(report, processor: run.processor, started: pending.started, start: run.start)
        }
    }

    /// A processor's report when it needs no stage: disabled, a duplicate ref, nothing to build on
    /// this run, or the lane stopped.
    private func preflight(_ processor: Processor) -> ProcessorReport? {
        var report: ProcessorReport
        if !processor.enabled {
            report = ProcessorReport(processor: processor, status: .disabled)
            report.message = "enabled: false in \(processor.displayPath)"
        } else if !processor.duplicates.isEmpty {
            report = ProcessorReport(processor: processor, status: .failed)
            report.message =
                "ref \(processor.ref) is also given by \(processor.duplicates.joined(separator: ", ")); give each processor its own ref, or set enabled: false in the one the lane should skip"
            report.category = ErrorCategory.input.name
        } else if case .skip(let reason) = plan(processor) {
            report = ProcessorReport(processor: processor, status: .skipped)
            report.message = reason
        } else if let reason = stop.reason {
            report = ProcessorReport(processor: processor, status: .failed)
            report.message = "not attempted: \(reason)"
            report.category = ErrorCategory.network.name
        } else {
            return nil
        }
        return report
    }

    /// Runs the stages; a failure becomes the report.
    private func execute(_ run: ProcessorRun, started: Double) async -> Checked {
        var report: ProcessorReport
        do {
            guard let worked = try await run.run() else { return .pending(Pending(run: run, started: started)) }
            report = worked
        } catch {
            stop.note(error, ref: run.processor.ref)
            report = ProcessorReport(processor: run.processor, status: .failed)
            report.message = "\(error)"
            report.category = (error as? any KilnError)?.category.name ?? ErrorCategory.internal.name
            if let location = (error as? any KilnError)?.sourceLocation {
                report.location = ProcessorReport.Location(
                    file: FilePaths.relative(location.file, to: settings.config.root), line: location.line)
            }
        }
        return .done(finish(report, processor: run.processor, started: started, start: run.start))
    }

    private func finish(_ report: ProcessorReport, processor: Processor, started: Double, start: StartEvent)
        -> ProcessorReport
    {
        var report = report
        report.seconds = Elapsed.seconds(since: started)
        start.send()
        observer(LaneEvent(ref: processor.ref, kind: .finished(report)))
        return report
    }

    /// Which platforms a processor is worked on for in this run.
    enum PlatformPlan {
        /// Nothing to do, and why.
        case skip(String)
        /// These platforms; `complete` when they are all the processor declares, so its index may
        /// be tagged and pinned.
        case build([Platform], declared: [Platform], complete: Bool)
    }

    func plan(_ processor: Processor) -> PlatformPlan {
        let declared = processor.platforms ?? settings.config.platforms
        guard !declared.isEmpty else { return .skip("build.platforms in \(processor.displayPath) lists no platform") }
        guard let narrowed = settings.platforms else { return .build(declared, declared: declared, complete: true) }
        let chosen = declared.filter { platform in narrowed.contains { $0.matches(platform) } }
        guard !chosen.isEmpty else {
            return .skip(
                "it builds for \(declared.map(\.description).joined(separator: ", ")), and this run for \(narrowed.map(\.description).joined(separator: ", ")) only"
            )
        }
        return .build(chosen, declared: declared, complete: chosen.count == declared.count)
    }

    /// What would become of each `RUN` of the missing `platforms` (`Builder.planRuns`): the
    /// reuse checks run against the store and the registry's checkpoints; nothing runs.
    func planRuns(_ job: ProcessorJob, platforms: [Platform], repository: Repository) async throws -> [RunDecision] {
        let checkpoints = try await checkpoints(for: repository)
        return try await job.builder(
            platforms: platforms, downloadingLayers: true, checkpoints: checkpoints, planning: true
        ).planRuns()
    }

    /// The plan's one line: the first `RUN` that runs, where and why (the key's reason and the read
    /// set's), or that none does.
    func firstStep(_ job: ProcessorJob, decisions: [RunDecision], reasons: [Platform: String]) -> String {
        let runs = decisions.first { decision in
            if case .runs = decision.outcome { return true }
            if case .positional = decision.outcome { return true }
            if case .unmodelled = decision.outcome { return true }
            return false
        }
        guard let first = runs,
            let step = job.dockerfile.stages.lazy.flatMap(\.instructions).first(where: { $0.location == first.location }
            )
        else {
            let reused = decisions.filter { if case .reused = $0.outcome { true } else { false } }.count
            let keyed = decisions.filter { $0.outcome == .key }.count
            return "no RUN runs: \(keyed) from checkpoints, \(reused) reused by what they read"
        }
        let why = reasons[first.platform]
        let source = String(step.source.prefix(60)) + (step.source.count > 60 ? "…" : "")
        return "first RUN to run: \(step.location) \(source) (\(first.platform): "
            + (why.map { "\($0); " } ?? "") + "\(first.reason))"
    }

    /// The index over the platform manifests, in the lane's platform order.
    func index(_ platforms: [Platform], _ found: [Platform: Descriptor]) throws -> Encoded<ImageIndex> {
        let manifests = try platforms.map { platform -> Descriptor in
            guard var descriptor = found[platform] else {
                throw LaneError.internalState("an index made before \(platform)'s image was found")
            }
            descriptor.platform = platform
            descriptor.annotations = nil
            return descriptor
        }
        let annotations = settings.annotations.isEmpty ? nil : settings.annotations
        let index = try Encoded(ImageIndex(manifests: manifests, annotations: annotations), mediaType: .ociIndex)
        // An unchanged processor's index is already stored: no write (and no fsync) to make.
        if !store.contains(index.descriptor.digest) { _ = try store.put(index.bytes, mediaType: .ociIndex) }
        return index
    }

    /// What a processor's images get beyond their Dockerfile: by default the OCI `source`,
    /// `title` (the ref's namespace and name) and `version` (the ref's version) labels, none of
    /// which changes from one commit to the next, then the configured labels and annotations.
    package func metadata(for ref: ProcessorRef) -> ImageMetadata {
        var defaults = [
            "org.opencontainers.image.title": "\(ref.namespace)/\(ref.name)",
            "org.opencontainers.image.version": ref.version,
        ]
        if let source = settings.source, !source.isEmpty { defaults["org.opencontainers.image.source"] = source }
        return ImageMetadata(defaultLabels: defaults, labels: settings.labels, annotations: settings.annotations)
    }

    /// Puts the index in the registry unless it is there already; the bytes uploaded.
    func pushIndex(_ index: Encoded<ImageIndex>, to repository: Repository, version: String) async throws -> Int64 {
        let tag = Tag.isValid(version) ? version : index.descriptor.digest.description
        // Already there and tagged (the tag, not the digest, is asked: the index of reverted
        // inputs is there while the tag names another).
        let asked =
            Tag.isValid(version)
            ? ImageReference(repository: repository, tag: version)
            : ImageReference(repository: repository, digest: index.descriptor.digest)
        if try await client.headManifest(asked)?.digest == index.descriptor.digest { return 0 }
        try await ImagePusher(client: client).putManifest(
            index.bytes, mediaType: .ociIndex, to: repository, reference: tag, from: store)
        return Int64(index.bytes.count)
    }
}

/// A processor's `started` event, sent once whichever path gets there first.
final class StartEvent: Sendable {
    private let ref: ProcessorRef
    private let observer: @Sendable (LaneEvent) -> Void
    private let sent = Mutex(false)

    init(ref: ProcessorRef, observer: @escaping @Sendable (LaneEvent) -> Void) {
        self.ref = ref
        self.observer = observer
    }

    func send() {
        guard
            sent.withLock({ sent in
                defer { sent = true }
                return !sent
            })
        else { return }
        observer(LaneEvent(ref: ref, kind: .started))
    }
}

/// A lane failure that is not a build's or a registry's; the words are all in `description`.
package enum LaneError: KilnError {
    /// `--ref` names a processor the repository does not have.
    case unknownRef(String, known: [String])
    /// The repository template made something that is not a repository.
    case notARepository(String)
    /// `kiln assemble` was asked for some platforms only.
    case assembleNeedsEveryPlatform
    /// `kiln assemble` found no image for a platform of a processor.
    case missingPlatform(ref: String, platform: String, repository: String, tag: String, others: [String])
    /// `--check` or `verify` had no pin to compare.
    case nothingChecked(String)
    /// A flag's value is not what it takes.
    case badFlag(flag: String, problem: String)
    /// A stage was reached without what it needs: a bug in kiln, said instead of crashing.
    case internalState(String)

    package var description: String {
        switch self {
        case .unknownRef(let ref, let known): "no processor has ref \(ref); known: \(known.joined(separator: ", "))"
        case .notARepository(let text):
            "the repository template gave '\(text)', which has a tag or digest; it must name a repository only"
        case .assembleNeedsEveryPlatform: "kiln assemble makes each processor's whole index; run it without --platforms"
        case .missingPlatform(let ref, let platform, let repository, let tag, let others):
            "\(ref) has no image for \(platform) in \(repository) (no tag \(tag)): build it first, e.g. kiln build --push --platforms \(platform)"
                + (others.isEmpty ? "" : " (also missing: \(others.joined(separator: ", ")))")
        case .nothingChecked(let summary): "nothing was checked: no selected processor has pins to compare (\(summary))"
        case .badFlag(let flag, let problem): "\(flag): \(problem)"
        case .internalState(let what): "internal error: \(what) (please report it)"
        }
    }

    package var category: ErrorCategory {
        if case .internalState = self { return .internal }
        return .input
    }
}
