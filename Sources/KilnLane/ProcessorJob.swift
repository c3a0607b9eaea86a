import KilnBuild
import KilnCore
import KilnDockerfile
import KilnOCI
import KilnProcessors
import KilnRegistry
import KilnStore

/// One context hasher per context root for the whole run, so processors sharing the repository
/// root share one stat cache (and save it once).
final class HasherPool: Sendable {
    let store: ContentStore
    private let hashers = Locked<[String: ContextHasher]>([:])

    init(store: ContentStore) { self.store = store }

    func hasher(for root: String) -> ContextHasher {
        hashers.withLock { hashers in
            if let hasher = hashers[root] { return hasher }
            let hasher = ContextHasher(root: root, store: store)
            hashers[root] = hasher
            return hasher
        }
    }

    func saveAll() { hashers.withLock { $0.values.forEach { $0.save() } } }
}

/// A processor's Dockerfile, context and build settings, read once per run.
struct ProcessorJob {
    let processor: Processor
    let lane: Lane
    let dockerfile: Dockerfile
    let context: BuildContext
    let platforms: [Platform]
    let buildArgs: [String: String]
    /// Why the native builder cannot build it (a `RUN` step), naming the line.
    let unbuildable: String?

    /// - Parameter pinFiles: every processor's `registry.yaml`. They are left out of the build
    ///   context: a file that records an image's digest cannot be part of that image, or each
    ///   pin would change the image and call for another pin.
    init(processor: Processor, lane: Lane, pinFiles: [String]) throws {
        self.processor = processor
        self.lane = lane
        let text = String(decoding: try ReadableFile.readAll(path: processor.dockerfile, limit: 4 << 20), as: UTF8.self)
        dockerfile = try Dockerfile(parsing: text, file: processor.dockerfile)
        context = try BuildContext(root: processor.context, dockerfile: processor.dockerfile, hiding: pinFiles)
        var platforms = processor.platforms ?? lane.settings.config.platforms
        if let narrowed = lane.settings.platforms { platforms = platforms.filter { narrowed.contains($0) } }
        self.platforms = platforms
        buildArgs = lane.settings.config.buildArgs.merging(processor.buildArgs) { _, own in own }
        let builder = Self.makeBuilder(
            dockerfile: dockerfile, context: context, lane: lane, platforms: platforms, buildArgs: buildArgs, downloadingLayers: false)
        unbuildable = lane.settings.executor == nil ? try Self.runProblem(builder) : nil
    }

    /// The preflight's complaint about a `RUN` step; other preflight errors are thrown.
    static func runProblem(_ builder: Builder) throws -> String? {
        do {
            _ = try builder.preflight()
            return nil
        } catch where error.message.hasPrefix("RUN needs") {
            return error.description
        }
    }

    func builder(platforms: [Platform], downloadingLayers: Bool, checkpointRepository: Repository? = nil) -> Builder {
        Self.makeBuilder(
            dockerfile: dockerfile, context: context, lane: lane, platforms: platforms, buildArgs: buildArgs,
            downloadingLayers: downloadingLayers, processorRef: processor.ref, checkpointRepository: checkpointRepository)
    }

    static func makeBuilder(
        dockerfile: Dockerfile, context: BuildContext, lane: Lane, platforms: [Platform], buildArgs: [String: String],
        downloadingLayers: Bool, processorRef: ProcessorRef? = nil, checkpointRepository: Repository? = nil
    ) -> Builder {
        var options = BuildOptions(platforms: platforms, layerOptions: lane.settings.layerOptions)
        options.buildArgs = buildArgs
        options.binfmtDirectory = lane.settings.binfmtDirectory
        options.stepRuns = lane.stepRuns
        if var executor = lane.settings.executor, let ref = processorRef {
            executor.log = { line in lane.observer(LaneEvent(ref: ref, kind: .output(line))) }
            options.executor = executor
        }
        if let repository = checkpointRepository { options.checkpoints = RegistryCheckpoints(client: lane.client, repository: repository) }
        let bases = RegistryBaseImages(
            client: lane.client, store: lane.store, downloadsLayers: downloadingLayers, resolutions: lane.resolutions)
        return Builder(dockerfile: dockerfile, context: context, store: lane.store, bases: bases, options: options)
    }

    /// The input key of each platform, in the processor's platform order.
    func keys(downloadingLayers: Bool) async throws -> [(platform: Platform, key: InputKey)] {
        let inputs = try await builder(platforms: platforms, downloadingLayers: downloadingLayers).inputs()
        let hasher = lane.hashers.hasher(for: context.root)
        var result = [(platform: Platform, key: InputKey)]()
        for input in inputs {
            let digests = try hasher.digests(of: input.files)
            result.append((input.platform, InputKey(dockerfile: dockerfile, target: nil, inputs: input, fileDigests: digests, layerOptions: lane.settings.layerOptions)))
        }
        return result
    }
}
