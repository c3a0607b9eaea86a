import KilnBuild
import KilnCore
import KilnDockerfile
import KilnOCI
import KilnProcessors
import KilnRegistry
import KilnStore
import Synchronization

/// One context hasher per context root for the whole run, so processors sharing the repository
/// root share one stat cache (and save it once).
final class HasherPool: Sendable {
    let store: ContentStore
    private let hashers = Mutex<[String: ContextHasher]>([:])

    init(store: ContentStore) { self.store = store }

    func hasher(for root: String) -> ContextHasher {
        hashers.withLock { hashers in
            if let hasher = hashers[root] { return hasher }
            let hasher = ContextHasher(root: root, store: store)
            hashers[root] = hasher
            return hasher
        }
    }

    func saveAll() {
        hashers.withLock { hashers in
            for hasher in hashers.values { hasher.save() }
        }
    }
}

/// A processor's Dockerfile, context and build settings, read once per run.
struct ProcessorJob {
    let processor: Processor
    let lane: Lane
    let dockerfile: Dockerfile
    let context: BuildContext
    let platforms: [Platform]
    /// What the lane's settings put into its images (`KeyInputs`): the builder's options come from it.
    let inputs: KeyInputs
    /// Why the native builder cannot build it (a `RUN` step), naming the line.
    let unbuildable: String?
    /// What resolving its sources looked at, and the bases its keys asked for: the key memo.
    let consulted: BuildContext.Consulted
    let baseRequests = BaseRequests()
    /// The key memo `keys(memoizing:)` made, for the lane to write when the processor is done.
    let pendingMemo = PendingMemo()
    /// When the job began reading its inputs (`StatCache.wallClock()`): a file changed after this
    /// may have been read before or after the change, so no memo trusts it.
    let started = StatCache.wallClock()

    /// - Parameter pinFiles: every processor's `registry.yaml`. They are left out of the build
    ///   context: a file that records an image's digest cannot be part of that image, or each
    ///   pin would change the image and call for another pin.
    /// - Parameter platforms: the platforms this run works on (`Lane.plan`).
    init(processor: Processor, lane: Lane, pinFiles: Set<String>, platforms: [Platform]) throws {
        self.processor = processor
        self.lane = lane
        let text = String(decoding: try ReadableFile.readAll(path: processor.dockerfile, limit: 4 << 20), as: UTF8.self)
        dockerfile = try Dockerfile(parsing: text, file: processor.dockerfile)
        consulted = BuildContext.Consulted(root: processor.context)
        context = try BuildContext(
            root: processor.context, dockerfile: processor.dockerfile, hiding: pinFiles, walks: lane.walks,
            consulted: consulted)
        self.platforms = platforms
        inputs = KeyInputs(processor, platforms: platforms, lane: lane)
        let builder = Self.makeBuilder(
            dockerfile: dockerfile, context: context, lane: lane, inputs: inputs, platforms: platforms,
            downloadingLayers: false)
        unbuildable = lane.settings.executor == nil ? try Self.runProblem(builder) : nil
    }

    /// The preflight's complaint about a `RUN` step; other preflight errors are thrown.
    static func runProblem(_ builder: Builder) throws -> String? {
        do {
            _ = try builder.preflight()
            return nil
        } catch {
            guard case .runNeedsExecutor = error.problem else { throw error }
            return error.description
        }
    }

    func builder(
        platforms: [Platform], downloadingLayers: Bool, checkpoints: RegistryCheckpoints? = nil, planning: Bool = false,
        prefetching: Bool = false, recordingBases: Bool = false
    ) -> Builder {
        Self.makeBuilder(
            dockerfile: dockerfile, context: context, lane: lane, inputs: inputs, platforms: platforms,
            downloadingLayers: downloadingLayers, processorRef: processor.ref, checkpoints: checkpoints,
            planning: planning, prefetching: prefetching, baseRequests: recordingBases ? baseRequests : nil)
    }

    static func makeBuilder(
        dockerfile: Dockerfile, context: BuildContext, lane: Lane, inputs: KeyInputs, platforms: [Platform],
        downloadingLayers: Bool, processorRef: ProcessorRef? = nil, checkpoints: RegistryCheckpoints? = nil,
        planning: Bool = false, prefetching: Bool = false, baseRequests: BaseRequests? = nil
    ) -> Builder {
        var options = BuildOptions(platforms: platforms, layerOptions: inputs.layerOptions)
        options.planning = planning
        options.prefetching = prefetching
        options.buildArgs = inputs.buildArgs
        options.binfmtDirectory = lane.settings.binfmtDirectory
        options.stepRuns = lane.stepRuns
        if var executor = lane.settings.executor, let ref = processorRef {
            executor.log = { line in lane.observer(LaneEvent(ref: ref, kind: .output(line))) }
            options.executor = executor
        }
        options.checkpoints = checkpoints
        if processorRef != nil { options.metadata = inputs.metadata }
        var bases = RegistryBaseImages(
            client: lane.client, store: lane.store, downloadsLayers: downloadingLayers, resolutions: lane.resolutions,
            sources: lane.settings.baseSources)
        if let ref = processorRef {
            let observer = lane.observer
            bases.warn = { observer(LaneEvent(ref: ref, kind: .warning($0))) }
        }
        if downloadingLayers, checkpoints != nil || planning {
            // A build with RUN steps fetches what it needs of its layers itself: a step that is
            // reused needs only their indexes.
            bases.layers = lane.layers
            options.remoteLayers = lane.layers
        }
        let source: any BaseImageSource =
            if let baseRequests { RecordingBaseImages(source: bases, requests: baseRequests) } else { bases }
        return Builder(dockerfile: dockerfile, context: context, store: lane.store, bases: source, options: options)
    }

    /// The input key of each platform, in the processor's platform order.
    /// - Parameter memoizing: write the key memo (`Lane.memoize`) for the next run.
    func keys(downloadingLayers: Bool, memoizing: Bool = false) async throws -> [(platform: Platform, key: InputKey)] {
        let inputs: [BuildInputs]
        do {
            inputs = try await builder(platforms: platforms, downloadingLayers: downloadingLayers, recordingBases: true)
                .inputs()
        } catch var error as BuildError {
            if let hint = contextHint(error) { error.hint = hint }
            throw error
        }
        let hasher = lane.hashers.hasher(for: context.root)
        var result = [(platform: Platform, key: InputKey)]()
        // Platforms usually read the same files: their leaves are made (and held) once.
        var shared: (files: [BuildContext.Item], leaves: InputKey.FileLeaves)?
        for input in inputs {
            let files = input.files
            let leaves: InputKey.FileLeaves
            if let shared, shared.files == files {
                leaves = shared.leaves
            } else {
                leaves = try await BlockingWork.run {
                    InputKey.FileLeaves(files, digests: try hasher.digests(of: files))
                }
                shared = (files, leaves)
            }
            result.append(
                (
                    input.platform,
                    InputKey(
                        dockerfile: dockerfile, target: nil, inputs: input, leaves: leaves,
                        layerOptions: lane.settings.layerOptions)
                ))
        }
        if memoizing {
            lane.memoize(
                self, keys: result, reads: Lane.MemoReads(inputs.map(\.files)),
                runSteps: try? await runStepKeys())
        }
        return result
    }

    /// The key of every `RUN` step the build has, over the job's platforms in order, each once;
    /// none, without a Dockerfile read past its parse, when no stage has a `RUN`.
    func runStepKeys() async throws -> [Digest] {
        guard dockerfile.stages.contains(where: { $0.lastRun != nil }) else { return [] }
        let keyed = try await builder(platforms: platforms, downloadingLayers: false)
            .stepKeys(hasher: lane.hashers.hasher(for: context.root))
        var seen = Set<Digest>()
        var keys = [Digest]()
        for platform in platforms {
            for (_, steps) in (keyed[platform] ?? [:]).sorted(by: { $0.key < $1.key }) {
                for step in steps {
                    guard case .run = step.instruction.command, seen.insert(step.key).inserted else { continue }
                    keys.append(step.key)
                }
            }
        }
        return keys
    }

    /// For a `COPY` source missing from the context that exists when `build.context` is taken
    /// from the other base: which `kiln.yaml` setting to change.
    func contextHint(_ error: BuildError) -> String? {
        guard let source = error.missingSource, let other = processor.alternativeContext else { return nil }
        let candidate = FilePaths.join(other, source.hasPrefix("/") ? String(source.dropFirst()) : source)
        let exists =
            Glob.hasWildcard(source)
            ? FilePaths.exists(FilePaths.directory(of: candidate))
            : FilePaths.exists(candidate)
        guard exists else { return nil }
        let base = processor.contextBase
        let here = base == .root ? "the repository root" : "the processor's folder"
        let there = base == .root ? "the processor's folder" : "the repository root"
        return
            "; build.context '\(processor.contextText)' is taken from \(here), and '\(source)' exists from \(there): set context-relative-to: \(base.other.rawValue) in kiln.yaml"
    }
}
