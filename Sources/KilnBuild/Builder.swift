import KilnCore
import KilnDockerfile
import KilnLayers
import KilnOCI
import KilnStore

/// What to build and how.
package struct BuildOptions: Sendable {
    package var platforms: [Platform]
    /// `--build-arg NAME=VALUE`.
    package var buildArgs: [String: String] = [:]
    /// The stage to build (`--target`); the last one when nil.
    package var target: String?
    package var layerOptions: LayerOptions
    /// The platform kiln runs on, for `BUILDPLATFORM` and friends.
    package var buildPlatform: Platform
    /// Runs `RUN` steps; without one a stage that needs `RUN` is refused before any work.
    package var executor: BuildahExecutor?
    /// Where binfmt_misc entries are looked for before a foreign-architecture `RUN`.
    package var binfmtDirectory = "/proc/sys/fs/binfmt_misc"
    /// Checkpoints shared through a registry, looked up after the local store.
    package var checkpoints: (any CheckpointSource)?
    /// `RUN` segments under way in this run, shared by every build of it, so two builds that
    /// need the same step at once run it once.
    package var stepRuns = StepRuns()
    /// Plan only (`planRuns`): no `RUN` runs and no checkpoint is recorded.
    package var planning = false
    /// With `planning` (`kiln warm`): each `RUN`'s checkpoint, not only the deepest, is fetched
    /// with its read set, recorded as an execution of the step, and the indexes of the layers
    /// below it are fetched, so that the next build's reuse check after an edit needs nothing
    /// more from the registry than the lookups that find nothing new.
    package var prefetching = false
    /// Labels and annotations the image gets beyond its Dockerfile.
    package var metadata = ImageMetadata()
    /// Where layers the store lacks are (bases and checkpoints left in their registry): nil when
    /// every layer a build meets is downloaded as it is found.
    package var remoteLayers: (any RemoteLayers)?

    package init(platforms: [Platform], layerOptions: LayerOptions, buildPlatform: Platform = .host) {
        self.platforms = platforms
        self.layerOptions = layerOptions
        self.buildPlatform = buildPlatform
    }
}

extension Platform {
    /// The platform of the machine kiln runs on.
    package static var host: Platform {
        #if arch(arm64)
            return .linuxARM64
        #else
            return .linuxAMD64
        #endif
    }

    /// BuildKit's normalised form for `TARGETPLATFORM`: no `v8` for arm64.
    var buildArgumentForm: (platform: String, variant: String) {
        let variant = (architecture == "arm64" && variant == "v8") ? "" : (variant ?? "")
        return ("\(os)/\(architecture)" + (variant.isEmpty ? "" : "/\(variant)"), variant)
    }
}

/// What a build for one platform reads: everything its cache key must cover.
package struct BuildInputs: Sendable {
    package var platform: Platform
    /// Context items read by `COPY`/`ADD`, sorted by path, each once.
    package var files: [BuildContext.Item]
    /// Every base and `--from` image, pinned, sorted.
    package var bases: [PinnedBase]
    /// The `--build-arg`s an `ARG` took.
    package var buildArgs: [String: String]
    /// The labels and annotations the build adds (`BuildOptions.metadata`).
    package var metadata = ImageMetadata()
}

/// What a build adds to an image beyond its Dockerfile: labels in its config and annotations on
/// its manifest. Neither may change from one run to the next for the same inputs (no commit, no
/// time), or an unchanged processor would get a new digest.
package struct ImageMetadata: Sendable, Equatable {
    /// Labels set unless the Dockerfile's own `LABEL` sets the key (a base image's are replaced):
    /// the lane's `org.opencontainers.image.source`, `.title` and `.version`.
    package var defaultLabels: [String: String] = [:]
    /// Labels set over everything (`--label`, kiln.yaml `labels`).
    package var labels: [String: String] = [:]
    /// Annotations on each platform manifest (`--annotation`, kiln.yaml `annotations`); the
    /// lane puts them on the index too.
    package var annotations: [String: String] = [:]

    package init(
        defaultLabels: [String: String] = [:], labels: [String: String] = [:], annotations: [String: String] = [:]
    ) {
        self.defaultLabels = defaultLabels
        self.labels = labels
        self.annotations = annotations
    }

    package var isEmpty: Bool { defaultLabels.isEmpty && labels.isEmpty && annotations.isEmpty }

    /// The lines a key hashes for this: sorted, one per entry.
    package var keyLines: [String] {
        defaultLabels.sorted { $0.key < $1.key }.map { "default-label \($0.key)=\($0.value)" }
            + labels.sorted { $0.key < $1.key }.map { "label \($0.key)=\($0.value)" }
            + annotations.sorted { $0.key < $1.key }.map { "annotation \($0.key)=\($0.value)" }
    }

    /// `config` with the labels applied: defaults where `dockerfileKeys` (the keys the target
    /// stage's `LABEL`s set) do not say otherwise, then the labels over everything.
    func apply(to config: inout ImageConfig, dockerfileKeys: Set<String>) {
        guard !defaultLabels.isEmpty || !labels.isEmpty else { return }
        var runtime = config.config ?? ContainerConfig()
        var merged = runtime.labels ?? [:]
        for (key, value) in defaultLabels where !dockerfileKeys.contains(key) { merged[key] = value }
        for (key, value) in labels { merged[key] = value }
        runtime.labels = merged
        config.config = runtime
    }
}

/// What a build made.
package struct BuildResult: Sendable {
    package var bundle: ImageBundle
    /// Base images used, pinned by digest, over every platform.
    package var bases: [PinnedBase]
    /// `--build-arg`s no `ARG` declared (Docker warns about these).
    package var unusedBuildArgs: [String]
    /// buildah builds run, and `RUN` steps they ran (0 when every step came from a checkpoint).
    package var executorRuns = 0
    package var stepsRun = 0
    /// `RUN` steps reused by their read set: no container ran for them.
    package var stepsReused = 0
    /// What became of each `RUN`: from its checkpoint, reused by its read set, or run (and why).
    package var runDecisions: [RunDecision] = []
    /// Checkpoints this build recorded, for the caller to publish once everything succeeded.
    package var newCheckpoints: [NewCheckpoint] = []
}

/// Builds a Dockerfile natively: for each platform, the stages the target needs, in order, each
/// from its base image's layers (reused untouched) plus the layers kiln writes.
package struct Builder: Sendable {
    package let dockerfile: Dockerfile
    package let context: BuildContext
    package let store: ContentStore
    package let bases: any BaseImageSource
    package let options: BuildOptions

    package init(
        dockerfile: Dockerfile, context: BuildContext, store: ContentStore, bases: any BaseImageSource,
        options: BuildOptions
    ) {
        self.dockerfile = dockerfile
        self.context = context
        self.store = store
        self.bases = bases
        self.options = options
    }

    /// The stage built as the result.
    package func targetStage() throws(BuildError) -> Stage {
        guard let target = options.target else { return dockerfile.stages[dockerfile.stages.count - 1] }
        guard let stage = dockerfile.stage(named: target) else {
            let names = dockerfile.stages.map { $0.name ?? String($0.index) }
            throw .input("there is no stage '\(target)' (stages: \(names.joined(separator: ", ")))", location: nil)
        }
        return stage
    }

    /// Checks what can be checked before any work: the target exists, every stage it needs is
    /// known, and no needed stage has a `RUN` (which needs a container runtime).
    package func preflight(allowingRun: Bool? = nil) throws(BuildError) -> [Stage] {
        let allowingRun = allowingRun ?? (options.executor != nil)
        let target = try targetStage()
        var needed = Set<Int>()
        var pending = [target.index]
        while let index = pending.popLast() {
            guard needed.insert(index).inserted else { continue }
            let stage = dockerfile.stages[index]
            if let base = dockerfile.stages[..<index].last(where: {
                $0.name != nil && $0.name == stage.base.lowercased()
            }) {
                pending.append(base.index)
            }
            for instruction in stage.instructions {
                guard case .copy(let copy) = instruction.command, let from = copy.from, !from.contains("$") else {
                    continue
                }
                if let source = dockerfile.stage(named: from) {
                    guard source.index < index else {
                        throw .input(
                            "COPY --from=\(from) names a stage that is not defined before this one",
                            location: instruction.location)
                    }
                    pending.append(source.index)
                } else {
                    try checkImageName(from, at: instruction.location)
                }
            }
        }
        let stages = needed.sorted().map { dockerfile.stages[$0] }
        for stage in stages {
            guard let run = stage.lastRun else { continue }
            if !allowingRun {
                throw BuildError(.runNeedsExecutor(stage: stage.name ?? String(stage.index)), location: run.location)
            }
            // Steps up to the last RUN go to buildah, which sees only the context.
            let lastIndex = stage.instructions.lastIndex { $0.location == run.location }!
            for instruction in stage.instructions[..<lastIndex] {
                if case .copy(let copy) = instruction.command, copy.from != nil {
                    throw .input(
                        "COPY --from before a stage's last RUN is not supported yet; move it after the last RUN (line \(run.location.line))",
                        location: instruction.location)
                }
            }
        }
        return stages
    }

    /// A `--from` that is no stage must look like an image reference: a bare word is far more
    /// often a mistyped stage name than an image from Docker Hub's library.
    func checkImageName(_ name: String, at location: SourceLocation) throws(BuildError) {
        guard !name.contains(where: { "/:@.".contains($0) }) else { return }
        let names = dockerfile.stages.map { $0.name ?? String($0.index) }
        throw .input(
            "COPY --from=\(name) names no stage of this Dockerfile (stages: \(names.joined(separator: ", "))); to copy from an image, give its tag, e.g. --from=\(name):latest",
            location: location)
    }

    package func build() async throws -> BuildResult {
        let stages = try preflight()
        if options.executor != nil, !options.planning, let run = stages.lazy.compactMap(\.lastRun).first {
            for platform in options.platforms {
                try Emulation.check(
                    platform, host: options.buildPlatform, directory: options.binfmtDirectory, location: run.location)
            }
        }
        let counters = BuildahExecutor.Counters()
        let scratchDirectory = try store.makeScratchDirectory(prefix: "build")
        defer { scratchDirectory.remove() }
        let scratch = scratchDirectory.path
        var images = [PlatformImage]()
        var bases = Set<PinnedBase>()
        var used = Set<String>()
        for platform in options.platforms {
            let run = try await build(stages, for: platform, pass: .build(scratch: scratch, counters: counters))
            bases.formUnion(run.bases.compactMap(\.pinned))
            used.formUnion(run.usedBuildArgs)
            let state = run.state
            var config = state.config
            config.created = SourceDateEpoch.rfc3339(options.layerOptions.epoch)
            options.metadata.apply(to: &config, dockerfileKeys: Self.labelKeys(of: stages))
            let annotations = options.metadata.annotations
            images.append(
                try PlatformImage(
                    config: config, layers: state.layers, annotations: annotations.isEmpty ? nil : annotations))
        }
        let unused = options.buildArgs.keys.filter { !used.contains($0) }.sorted()
        var result = BuildResult(
            bundle: try ImageBundle(images: images), bases: bases.sorted { $0.description < $1.description },
            unusedBuildArgs: unused)
        result.executorRuns = counters.runs
        result.stepsRun = counters.steps
        result.stepsReused = counters.reused
        result.runDecisions = counters.decisions
        result.newCheckpoints = counters.checkpoints
        return result
    }

    /// What would become of each `RUN` (`kiln plan`), per platform in order, without running
    /// any: from its checkpoint, reused by its read set (the reuse check runs, on layers kiln
    /// builds natively and fetches as a build would), or to run, with the first changed path it
    /// read. A platform's plan ends at its first `RUN` that runs; those after it are undecided.
    /// Needs `options.planning`.
    package func planRuns() async throws -> [RunDecision] {
        precondition(options.planning, "planRuns needs options.planning")
        let stages = try preflight()
        let counters = BuildahExecutor.Counters()
        let scratchDirectory = try store.makeScratchDirectory(prefix: "plan")
        defer { scratchDirectory.remove() }
        for platform in options.platforms {
            do {
                _ = try await build(
                    stages, for: platform, pass: .build(scratch: scratchDirectory.path, counters: counters))
            } catch is PlanStopped {
                continue
            }
        }
        return counters.decisions
    }

    /// What a build for each platform would read, without building: the context items its
    /// `COPY`/`ADD` instructions read (after `.dockerignore`, sorted, each once) and the base
    /// images by platform manifest digest. Base images are resolved but their layers are not
    /// fetched when the source does not need them.
    package func inputs() async throws -> [BuildInputs] {
        let stages = try preflight(allowingRun: true)
        var result = [BuildInputs]()
        for platform in options.platforms {
            let run = try await build(stages, for: platform, pass: .inputs)
            var unique = [String: BuildContext.Item]()
            for item in run.reads { unique[item.path] = item }
            let files = unique.values.sorted { $0.path < $1.path }
            let bases = Set(run.bases.compactMap(\.pinned)).sorted { $0.description < $1.description }
            let args = options.buildArgs.filter { run.usedBuildArgs.contains($0.key) }
            var inputs = BuildInputs(platform: platform, files: files, bases: bases, buildArgs: args)
            inputs.metadata = options.metadata
            result.append(inputs)
        }
        return result
    }

    /// The step keys of every instruction of the stages the target needs, per platform and stage
    /// index, computed without running anything (see `StepKeys`).
    package func stepKeys(hasher: ContextHasher) async throws -> [Platform: [Int: [StepKeys.Step]]] {
        let stages = try preflight(allowingRun: true)
        var result = [Platform: [Int: [StepKeys.Step]]]()
        for platform in options.platforms {
            result[platform] = try await build(stages, for: platform, pass: .stepKeys(hasher)).steps
        }
        return result
    }

    /// The label keys the `LABEL` instructions of the target stage (the last of `stages`) and
    /// the stages it is built `FROM` set, as written: a default label gives way to them.
    static func labelKeys(of stages: [Stage]) -> Set<String> {
        var keys = Set<String>()
        var current = stages.last
        var seen = Set<Int>()
        while let stage = current, seen.insert(stage.index).inserted {
            for instruction in stage.instructions {
                if case .label(let pairs) = instruction.command { keys.formUnion(pairs.map(\.key)) }
            }
            let base = stage.base.lowercased()
            current = stages.first { $0.index < stage.index && ($0.name == base || String($0.index) == base) }
        }
        return keys
    }

    /// The automatic platform arguments BuildKit defines.
    func platformArgs(_ platform: Platform) -> [String: String] {
        let target = platform.buildArgumentForm
        let build = options.buildPlatform.buildArgumentForm
        return [
            "TARGETPLATFORM": target.platform, "TARGETOS": platform.os, "TARGETARCH": platform.architecture,
            "TARGETVARIANT": target.variant, "BUILDPLATFORM": build.platform, "BUILDOS": options.buildPlatform.os,
            "BUILDARCH": options.buildPlatform.architecture, "BUILDVARIANT": build.variant,
        ]
    }

    /// One platform's run through the stages.
    private struct PlatformRun {
        var state: ImageState
        var bases: [BaseImage]
        var usedBuildArgs: Set<String>
        var reads: [BuildContext.Item]
        var steps: [Int: [StepKeys.Step]]
    }

    /// One pass over the stages for `platform`, each stage from its base (an image, `scratch`, or
    /// an earlier stage), its `COPY --from` images resolved, its `ONBUILD` triggers and
    /// instructions applied as `pass` says.
    private func build(_ stages: [Stage], for platform: Platform, pass: BuildPass) async throws -> PlatformRun {
        let (global, globalUsed) = try globalArguments(for: platform)
        var used = globalUsed
        var run = PlatformRun(
            state: ImageState(scratchFor: platform), bases: [], usedBuildArgs: [], reads: [], steps: [:])
        var built = [Int: ImageState]()
        for stage in stages {
            let (base, state) = try await startState(
                of: stage, platform: platform, global: global, built: built, bases: &run.bases)
            let images = try await fromImages(of: stage, platform: platform, global: global, bases: &run.bases)
            // (A stage with RUN prepares what it needs itself, once its checkpoints are found.)
            let triggers = !(state.runtime.onBuild ?? []).isEmpty
            if case .build = pass, let remote = options.remoteLayers,
                stage.lastRun == nil || options.executor == nil || triggers
            {
                // What the stage's native instructions need of the layers below them: what they
                // hold, and the bytes where an instruction reads files of an image.
                try await remote.indexes(state.layers + images.values.flatMap(\.layers), into: store)
                if stage.instructions.contains(where: \.readsImageFiles) || triggers {
                    let earlier = built.values.flatMap(\.layers)
                    try await remote.materialize(
                        state.layers + images.values.flatMap(\.layers) + earlier, into: store)
                }
            }
            let inputs = StageInputs(
                dockerfile: dockerfile, context: context, store: store, layerOptions: options.layerOptions,
                buildArgs: options.buildArgs, globalArgs: global, stages: built, images: images)
            var builder = StageBuilder(inputs: inputs, pass: pass, state: state)
            try await runTriggers(of: base, in: &builder)
            if case .build(_, let counters) = pass, let executor = options.executor, stage.lastRun != nil {
                try await runWithExecutor(
                    executor, stage: stage, builder: &builder, platform: platform, counters: counters)
            } else {
                try await builder.run(stage.instructions)
            }
            used.formUnion(builder.usedBuildArgs)
            run.reads += builder.reads
            run.steps[stage.index] = builder.steps
            built[stage.index] = builder.state
            run.state = builder.state
        }
        run.usedBuildArgs = used
        return run
    }

    /// The values of the `ARG`s before the first `FROM` (and the platform arguments), and the
    /// build args they took.
    private func globalArguments(for platform: Platform) throws(BuildError) -> ([String: String], Set<String>) {
        var global = platformArgs(platform)
        var used = Set<String>()
        let expander = WordExpander(escape: dockerfile.escape)
        for instruction in dockerfile.globalArgs {
            guard case .arg(let definitions) = instruction.command else { continue }
            for definition in definitions {
                if let value = options.buildArgs[definition.name] {
                    global[definition.name] = value
                    used.insert(definition.name)
                } else if let value = definition.defaultValue {
                    do {
                        global[definition.name] = try expander.expand(value) { global[$0] }
                    } catch {
                        throw BuildError.input(
                            "cannot substitute variables in '\(value)': \(error)", location: instruction.location)
                    }
                }
            }
        }
        return (global, used)
    }

    /// The state a stage starts from, and its base as written (after substitution).
    private func startState(
        of stage: Stage, platform: Platform, global: [String: String], built: [Int: ImageState],
        bases: inout [BaseImage]
    ) async throws -> (base: String, state: ImageState) {
        let location = stage.from.location
        let expander = WordExpander(escape: dockerfile.escape)
        let base: String
        do {
            base = try expander.expand(stage.base) { global[$0] }
        } catch {
            throw BuildError.input("cannot substitute variables in '\(stage.base)': \(error)", location: location)
        }
        var stagePlatform = platform
        if let text = stage.platform {
            do {
                stagePlatform = try Platform(parsing: try expander.expand(text) { global[$0] })
            } catch {
                throw BuildError.wrapping(error, at: location)
            }
        }
        var state: ImageState
        if base.lowercased() == "scratch" {
            state = ImageState(scratchFor: stagePlatform)
        } else if let earlier = dockerfile.stages[..<stage.index].last(where: { $0.name == base.lowercased() }),
            let earlierState = built[earlier.index]
        {
            state = earlierState
        } else {
            do {
                let image = try await self.bases.image(try ImageReference(parsing: base), platform: stagePlatform)
                bases.append(image)
                state = ImageState(base: image, store: store)
            } catch var error as BuildError where error.category == .input && base != stage.base {
                // The reference came from variables: say which wrote it.
                if case .invalid(let message) = error.problem {
                    error.problem = .invalid(message + "; " + chosenBy(stage.base, expanded: base))
                }
                throw BuildError.wrapping(error, at: location)
            } catch {
                throw BuildError.wrapping(error, at: location)
            }
        }
        if state.environment("PATH") == nil {
            state.setEnvironment("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        }
        return (base, state)
    }

    /// Where a `FROM` written with variables got its reference: the `ARG`s before the first
    /// `FROM` that declare them, with their lines, or `--build-arg`.
    private func chosenBy(_ written: String, expanded: String) -> String {
        let declared = dockerfile.globalArgs.compactMap { instruction -> String? in
            guard case .arg(let args) = instruction.command else { return nil }
            let names = args.map(\.name).filter { written.contains("$" + $0) || written.contains("${" + $0) }
            guard !names.isEmpty else { return nil }
            return "\(names.joined(separator: ", ")) (ARG at line \(instruction.location.line))"
        }
        let source = declared.isEmpty ? "--build-arg" : declared.joined(separator: ", ") + " or --build-arg"
        return "FROM \(written) gave '\(expanded)', set by \(source)"
    }

    /// The images a stage's `COPY --from=IMAGE` name (not stages), by name.
    private func fromImages(of stage: Stage, platform: Platform, global: [String: String], bases: inout [BaseImage])
        async throws -> [String: ImageState]
    {
        let expander = WordExpander(escape: dockerfile.escape)
        var images = [String: ImageState]()
        for instruction in stage.instructions {
            guard case .copy(let copy) = instruction.command, let from = copy.from else { continue }
            let name: String
            do {
                name = try expander.expand(from) { global[$0] }
            } catch {
                throw BuildError.input(
                    "cannot substitute variables in '\(from)': \(error)", location: instruction.location)
            }
            guard dockerfile.stage(named: name) == nil, images[name] == nil else { continue }
            try checkImageName(name, at: instruction.location)
            do {
                let image = try await self.bases.image(try ImageReference(parsing: name), platform: platform)
                bases.append(image)
                images[name] = ImageState(base: image, store: store)
            } catch {
                throw BuildError.wrapping(error, at: instruction.location)
            }
        }
        return images
    }

    /// The base's `ONBUILD` triggers, run before the stage's own instructions.
    private func runTriggers(of base: String, in builder: inout StageBuilder) async throws {
        let triggers = builder.state.runtime.onBuild ?? []
        builder.state.runtime.onBuild = nil
        for trigger in triggers {
            let parsed = try Dockerfile(parsing: "FROM scratch\n" + trigger, file: "ONBUILD trigger of \(base)")
            try await builder.run(parsed.stages[0].instructions)
        }
    }
}

extension Builder {
    /// A stage with `RUN`: the steps up to the deepest `RUN` whose checkpoint is already recorded
    /// come from that checkpoint; after it, kiln builds every other instruction natively and
    /// hands buildah one `RUN` at a time, on top of the image so far, recording each result as a
    /// checkpoint under the step's key. So every `RUN` adds exactly its own layer, on lower
    /// layers kiln wrote.
    func runWithExecutor(
        _ executor: BuildahExecutor, stage: Stage, builder: inout StageBuilder, platform: Platform,
        counters: BuildahExecutor.Counters
    ) async throws {
        let instructions = stage.instructions
        let runs = instructions.indices.filter { if case .run = instructions[$0].command { true } else { false } }
        let last = runs.last!
        // Step keys, the ARGs in scope before each instruction, and the builder after each RUN,
        // from a dry run of the stage.
        let hasher = ContextHasher(root: context.root, store: store)
        // The stat cache is saved even when a step fails, so the next run re-reads no file.
        defer { hasher.save() }
        var keyer = builder
        keyer.pass = .stepKeys(hasher)
        // The dry run hashes the files each COPY reads: on the blocking queue.
        let dryRun = keyer
        let (keyedRun, argsBefore, afterRun) = try await BlockingWork.run {
            var keyer = dryRun
            var argsBefore = [[String: String]]()
            var afterRun = [Int: StageBuilder]()
            for (index, instruction) in instructions.enumerated() {
                argsBefore.append(keyer.args)
                try keyer.run(instruction)
                if case .run = instruction.command { afterRun[index] = keyer }
            }
            return (keyer, argsBefore, afterRun)
        }
        let keys = keyedRun.steps.suffix(instructions.count).map(\.key)
        let stageStart = builder.state.stepKey
        // How many layers the stage's own instructions have added, and how many of them RUNs
        // made: a RUN with only RUN layers below it since the stage's start is never traced (its
        // key covers all it can see, so reuse by what it read can never apply).
        let startLayers = builder.state.layers.count
        var runLayers = 0

        // One buildah storage for the stage's steps on this platform.
        let session = try executor.session()
        defer { session.remove() }
        var done = -1
        // (Prefetching walks every RUN from the first, so each one's checkpoint is fetched.)
        for index in runs.reversed() where !options.prefetching {
            let checkpoint = try await checkpoint(keys[index], at: instructions[index].location)
            if let checkpoint, let after = afterRun[index] {
                done = index
                // The native builder resumes after that RUN, knowing the stage's ARGs and
                // whether it set CMD there.
                builder.args = after.args
                builder.cmdSet = after.cmdSet
                builder.usedBuildArgs = after.usedBuildArgs
                builder.state = ImageState(base: checkpoint, store: store)
                runLayers = runs.count { $0 <= index }
                break
            }
        }
        for index in runs where index <= done {
            let decision = RunDecision(location: instructions[index].location, platform: platform, outcome: .key)
            counters.decided(decision)
            executor.log(decision.description)
        }
        // After the RUN at `index`: the image it gave is the state the native builder goes on from.
        func advance(to image: BaseImage, after index: Int) {
            builder.state = ImageState(base: image, store: store)
            if let after = afterRun[index] { builder.usedBuildArgs.formUnion(after.usedBuildArgs) }
            runLayers += 1
            done = index
        }
        /// The layers a native instruction after a checkpoint or a reused step needs.
        func prepareNative(_ instructions: ArraySlice<Instruction>) async throws {
            guard let remote = options.remoteLayers, !instructions.isEmpty else { return }
            try await remote.indexes(builder.state.layers, into: store)
            if instructions.contains(where: \.readsImageFiles) {
                try await remote.materialize(builder.state.layers, into: store)
            }
        }
        for index in runs where index > done {
            try await prepareNative(instructions[(done + 1)..<index])
            try await builder.run(Array(instructions[(done + 1)..<index]))
            let segment = BuildahExecutor.Segment(
                instructions: [instructions[index]], args: argsBefore[index], escape: dockerfile.escape)
            let start = builder.state
            let (store, root, layerOptions) = (self.store, context.root, options.layerOptions)
            let key = keys[index]
            let traced = start.layers.count - startLayers > runLayers
            let identity = RunReuse.identity(
                of: instructions[index], args: argsBefore[index], state: start, stageStart: stageStart,
                platform: platform, layerOptions: layerOptions)
            let location = instructions[index].location
            if options.planning {
                if options.prefetching,
                    let image = try await prefetch(
                        key, identity: identity, on: start, at: location, platform: platform, counters: counters)
                {
                    advance(to: image, after: index)
                    continue
                }
                // Nothing runs: the step is reused by its read set, or the plan stops here (what
                // follows depends on the layer it would make).
                let decision = try await reuse(
                    identity, traced: traced, on: start, key: key, at: instructions[index], platform: platform)
                var decided = decision.decision
                decided.identity = identity
                counters.decided(decided)
                guard let image = decision.image else {
                    for later in runs where later > index {
                        counters.decided(
                            RunDecision(
                                location: instructions[later].location, platform: platform,
                                outcome: .undecided(after: location.line)))
                    }
                    throw PlanStopped()
                }
                advance(to: image, after: index)
                continue
            }
            let step = BuildahExecutor.Step(key: key, identity: identity, traced: traced)
            let remoteLayers = options.remoteLayers
            let recorded = { @Sendable in BuildahExecutor.Checkpoint.find(key, store: store) }
            let log = executor.log
            let began = Elapsed.now()
            let (image, ran) = try await options.stepRuns.run(key, recorded: recorded) {
                defer { counters.took(Elapsed.seconds(since: began), at: location, platform: platform) }
                let decision = try await reuse(
                    identity, traced: traced, on: start, key: key, at: instructions[index], platform: platform)
                var decided = decision.decision
                decided.identity = identity
                counters.decided(decided)
                log(decision.decision.description)
                if let image = decision.image {
                    counters.addReused(key)
                    return image
                }
                // The step runs: a container unpacks every layer below it.
                try await remoteLayers?.materialize(start.layers, into: store)
                return try await executor.run(
                    segment, from: start, platform: platform, contextRoot: root, step: step, session: session,
                    store: store, layerOptions: layerOptions, counters: counters)
            }
            if !ran {
                // Another build of this run ran the same step at the same moment.
                counters.decided(RunDecision(location: location, platform: platform, outcome: .key))
            }
            let reads = BuildahExecutor.Checkpoint.recorded(key, store: store)?.reads
            counters.recorded(
                NewCheckpoint(
                    key: key, manifest: image.manifestDescriptor!, reads: reads,
                    identity: ran && reads != nil ? identity : nil))
            advance(to: image, after: index)
        }
        builder.state.stepKey = keys[last]
        try await prepareNative(instructions[(last + 1)...])
        try await builder.run(Array(instructions[(last + 1)...]))
    }
}

/// `kiln plan` reached a `RUN` that would run: the platform's plan ends there.
struct PlanStopped: Error {}

extension Builder {
    /// The checkpoint recorded under `key`: this store's, else fetched from the registry's
    /// (`options.checkpoints`); nil when neither has one. A registry error names `location`.
    func checkpoint(_ key: Digest, at location: SourceLocation) async throws -> BaseImage? {
        if let found = BuildahExecutor.Checkpoint.find(key, store: store) { return found }
        guard let remote = options.checkpoints else { return nil }
        do {
            return try await remote.fetch(key, into: store)
        } catch {
            throw BuildError.wrapping(error, at: location)
        }
    }

    /// Prefetching (`kiln warm`): the checkpoint of `key`, from the store or the registry, with
    /// what the reuse check of an edited build needs of it: its read set, its record as an
    /// execution of `identity`, and the indexes of the layers below it (`state`'s). Nil when
    /// neither has it (the plan's reuse check decides then).
    func prefetch(
        _ key: Digest, identity: Digest, on state: ImageState, at location: SourceLocation, platform: Platform,
        counters: BuildahExecutor.Counters
    ) async throws -> BaseImage? {
        guard let checkpoint = try await checkpoint(key, at: location) else { return nil }
        do {
            try await options.remoteLayers?.indexes(state.layers, into: store)
            if let reads = BuildahExecutor.Checkpoint.recorded(key, store: store)?.reads,
                RunReads.load(reads, store: store)?.identity == identity
            {
                try RunExecution.record(identity, key: key, store: store)
            }
            counters.decided(RunDecision(location: location, platform: platform, outcome: .key))
            return checkpoint
        } catch {
            throw BuildError.wrapping(error, at: location)
        }
    }
}

extension Builder {
    /// What becomes of the `RUN` `instruction` about to run on `state` when its key missed: the
    /// image after it when a recorded execution of the same step (`identity`) read nothing that
    /// differs on `state`'s file system (`state` plus that execution's layer, recorded under
    /// `key` unless planning), else nil; and the decision, with the first changed path it read.
    func reuse(
        _ identity: Digest, traced: Bool, on state: ImageState, key: Digest, at instruction: Instruction,
        platform: Platform
    ) async throws -> (image: BaseImage?, decision: RunDecision) {
        func decided(_ outcome: RunDecision.Outcome) -> RunDecision {
            RunDecision(location: instruction.location, platform: platform, outcome: outcome)
        }
        guard options.executor?.reusesByReads == true else {
            return (nil, decided(.positional(reason: "reuse by read set is off")))
        }
        // Bind and cache mounts show the step files that are not in its lower layers, so its
        // reads cannot be checked there: such a step is reused by position only. Secrets are
        // never part of a key.
        if case .run(let run) = instruction.command,
            let mount = run.mounts.lazy.map({ RunCommand.mountFields($0)["type"] ?? "bind" }).first(where: {
                $0 != "secret"
            })
        {
            return (nil, decided(.positional(reason: "it has a \(mount) mount")))
        }
        guard traced else {
            return (
                nil,
                decided(
                    .positional(reason: "only RUN layers lie below it in its stage, so its key covers all it can see"))
            )
        }
        let store = self.store
        // The executions recorded for the identity, newest first: this store's, then the
        // registry's. The first whose observations all hold is reused; if none does, the
        // decision names what changed for the newest.
        // This store's, the one that ran on layers most like these first (a processor's own
        // last build, among the processors sharing the step's identity), then the registry's.
        let layers = state.layers
        let current = Set(layers.map(\.digest))
        var keys = RunExecution.find(identity, store: store).enumerated().map { order, key in
            let lower =
                BuildahExecutor.Checkpoint.recorded(key, store: store)?.reads
                .flatMap { RunReads.load($0, store: store)?.lowerLayers } ?? []
            return (key: key, shared: lower.count { current.contains($0) }, order: order)
        }
        .sorted { ($0.shared, -$0.order) > ($1.shared, -$1.order) }.map(\.key)
        do {
            if let remote = options.checkpoints {
                for remoteKey in try await remote.executions(identity) where !keys.contains(remoteKey) {
                    keys.append(remoteKey)
                }
            }
        } catch {
            throw BuildError.wrapping(error, at: instruction.location)
        }
        var first: RunDecision?
        // The lower file system, read once for every execution checked.
        var lower: LowerFilesystem?
        for executionKey in keys.prefix(RunExecution.kept) {
            guard let recorded = try await checkpoint(executionKey, at: instruction.location),
                let readsDescriptor = BuildahExecutor.Checkpoint.recorded(executionKey, store: store)?.reads,
                let reads = RunReads.load(readsDescriptor, store: store), reads.identity == identity
            else { continue }
            if let reason = reads.unmodelled {
                if first == nil { first = decided(.unmodelled(reason: reason)) }
                continue
            }
            let filesystem: LowerFilesystem
            do {
                if let lower {
                    filesystem = lower
                } else {
                    try await options.remoteLayers?.indexes(layers, into: store)
                    filesystem = try await BlockingWork.run { try LowerFilesystem(layers: layers, store: store) }
                    lower = filesystem
                }
            } catch {
                throw BuildError.wrapping(error, at: instruction.location)
            }
            let planning = options.planning
            let (image, decision, checked) = try await BlockingWork.run {
                () throws -> (BaseImage?, RunDecision, LowerFilesystem) in
                var filesystem = filesystem
                switch try RunReuse.check(reads, lower: &filesystem, layers: layers, store: store) {
                case .changed(let path, let paths):
                    return (nil, decided(.runs(changed: path, paths: paths)), filesystem)
                case .unmodelled(let reason):
                    return (nil, decided(.unmodelled(reason: reason)), filesystem)
                case .unchanged(let paths, let below):
                    let image = try RunReuse.rebase(
                        state, recorded: recorded, reads: reads, key: key, store: store, planning: planning)
                    // The rebased checkpoint is an execution of the step too (the same
                    // observations, holding here): the next build of this processor finds it.
                    if !planning { try RunExecution.record(identity, key: key, store: store) }
                    return (image, decided(.reused(paths: paths, changedBelow: below)), filesystem)
                }
            }
            lower = checked
            if let image { return (image, decision) }
            if first == nil { first = decision }
        }
        return (nil, first ?? decided(.runs(changed: nil, paths: 0)))
    }
}

extension ContentStore {
    /// Puts a bundle's configs, manifests and index in the store, so it can serve the whole image
    /// to a push or a layout (the layers are there already).
    package func stage(_ bundle: ImageBundle) throws(StoreError) {
        for image in bundle.images {
            _ = try put(image.config.bytes, mediaType: image.config.descriptor.mediaType)
            _ = try put(image.manifest.bytes, mediaType: image.manifest.descriptor.mediaType)
        }
        if case .multiPlatform(let index, _) = bundle {
            _ = try put(index.bytes, mediaType: index.descriptor.mediaType)
        }
    }
}
