import KilnCore
import KilnDockerfile
import KilnLayers
import KilnOCI
import KilnStore

/// What one pass over a Dockerfile's stages does with each instruction.
enum BuildPass {
    /// Follow the instructions to learn what they read (context files, bases): no layer is
    /// written and no image's files are looked into (`Builder.inputs`).
    case inputs
    /// As `inputs`, and every instruction advances the step key (`Builder.stepKeys`, the dry
    /// run before `RUN` steps).
    case stepKeys(ContextHasher)
    /// Build: write layers, staging file contents under `scratch`; `RUN` steps go to the
    /// executor and are counted in `counters`.
    case build(scratch: String, counters: BuildahExecutor.Counters)
}

/// What a stage is built from and against, fixed for the stage.
struct StageInputs {
    let dockerfile: Dockerfile
    let context: BuildContext
    let store: ContentStore
    let layerOptions: LayerOptions
    /// Build arguments from the command line (`--build-arg`).
    let buildArgs: [String: String]
    /// Values of the `ARG`s before the first `FROM`, and the automatic platform arguments.
    let globalArgs: [String: String]
    /// Stages already built for this platform, by index.
    let stages: [Int: ImageState]
    /// Images named by `COPY --from=image`.
    let images: [String: ImageState]
}

/// Runs one stage's instructions natively for one platform: config instructions change the
/// config, each `COPY`/`ADD` becomes one layer written by kiln's layer engine, and every
/// instruction gets a history entry (`empty_layer` when it made no layer).
struct StageBuilder {
    let inputs: StageInputs
    var pass: BuildPass
    var state: ImageState
    /// Context items `COPY`/`ADD` read (recorded in the `inputs` and `stepKeys` passes).
    var reads: [BuildContext.Item] = []
    /// Each instruction's step key (the `stepKeys` pass).
    var steps: [StepKeys.Step] = []
    /// `ARG`s declared in this stage, with their values.
    var args: [String: String] = [:]
    var usedBuildArgs: Set<String> = []
    /// Whether this stage set `CMD` (an `ENTRYPOINT` clears an inherited one only).
    var cmdSet = false
    var stagedFiles = 0

    init(inputs: StageInputs, pass: BuildPass, state: ImageState) {
        self.inputs = inputs
        self.pass = pass
        self.state = state
    }

    var dockerfile: Dockerfile { inputs.dockerfile }
    var context: BuildContext { inputs.context }
    var store: ContentStore { inputs.store }
    var layerOptions: LayerOptions { inputs.layerOptions }
    var buildArgs: [String: String] { inputs.buildArgs }
    var globalArgs: [String: String] { inputs.globalArgs }
    var stages: [Int: ImageState] { inputs.stages }
    var images: [String: ImageState] { inputs.images }

    /// Only follow instructions to learn what they read: no layers, no look into the image.
    var inputsOnly: Bool {
        if case .build = pass { false } else { true }
    }

    /// Keys every instruction when set.
    var stepHasher: ContextHasher? {
        if case .stepKeys(let hasher) = pass { hasher } else { nil }
    }

    /// Where staged file contents (from other images, archives) go while the build runs.
    var scratch: String {
        if case .build(let scratch, _) = pass { scratch } else { "" }
    }

    var created: String { SourceDateEpoch.rfc3339(layerOptions.epoch) }
    var expander: WordExpander { WordExpander(escape: dockerfile.escape) }

    func lookup(_ name: String) -> String? { state.environment(name) ?? args[name] }

    func expand(_ word: String, _ instruction: Instruction) throws(BuildError) -> String {
        do {
            return try expander.expand(word) { lookup($0) }
        } catch {
            throw .input("cannot substitute variables in '\(word)': \(error)", location: instruction.location)
        }
    }

    /// `word` expanded and split into fields, as BuildKit gives `EXPOSE` its ports.
    func expandFields(_ word: String, _ instruction: Instruction) throws(BuildError) -> [String] {
        do {
            return try expander.fields(word) { lookup($0) }
        } catch {
            throw .input("cannot substitute variables in '\(word)': \(error)", location: instruction.location)
        }
    }

    /// Applies `instructions` in order on the blocking queue (`BlockingWork`): layers are
    /// written, base layers read and context files hashed there, off the cooperative pool.
    mutating func run(_ instructions: some Collection<Instruction> & Sendable) async throws {
        let start = self
        self = try await BlockingWork.run {
            var builder = start
            for instruction in instructions { try builder.run(instruction) }
            return builder
        }
    }

    /// Applies one instruction, then (when keying steps) advances the step key past it.
    mutating func run(_ instruction: Instruction) throws(BuildError) {
        let parent = state.stepKey
        try apply(instruction)
        guard let stepHasher else { return }
        do {
            state.stepKey = try StepKeys.next(after: parent, instruction, in: self, hasher: stepHasher)
        } catch {
            throw BuildError.wrapping(error, at: instruction.location)
        }
        steps.append(StepKeys.Step(instruction: instruction, key: state.stepKey))
    }

    private mutating func apply(_ instruction: Instruction) throws(BuildError) {
        let history = History(created: created, createdBy: instruction.source, comment: "kiln")
        do {
            switch instruction.command {
            case .from: return
            case .arg(let definitions):
                for definition in definitions {
                    if let value = buildArgs[definition.name] {
                        usedBuildArgs.insert(definition.name)
                        args[definition.name] = value
                    } else if let value = definition.defaultValue {
                        args[definition.name] = try expand(value, instruction)
                    } else if let value = globalArgs[definition.name] {
                        args[definition.name] = value
                    }
                }
            case .env(let pairs):
                for pair in pairs {
                    state.setEnvironment(try expand(pair.key, instruction), try expand(pair.value, instruction))
                }
            case .label(let pairs):
                if state.runtime.labels == nil { state.runtime.labels = [:] }
                for pair in pairs {
                    state.runtime.labels![try expand(pair.key, instruction)] = try expand(pair.value, instruction)
                }
            case .workdir(let path):
                let expanded = try expand(path, instruction)
                let directory = Self.absolute(expanded, from: state.runtime.workingDir ?? "/")
                state.runtime.workingDir = directory
                if !inputsOnly, try !state.filesystem().isDirectory(String(directory.dropFirst())), directory != "/" {
                    try addLayer(try directoryEntries(for: directory), history: history)
                    return
                }
            case .user(let user): state.runtime.user = try expand(user, instruction)
            case .expose(let ports):
                if state.runtime.exposedPorts == nil { state.runtime.exposedPorts = [:] }
                for port in ports {
                    for field in try expandFields(port, instruction) {
                        for key in try Self.portKeys(field, instruction) {
                            state.runtime.exposedPorts![key] = EmptyObject()
                        }
                    }
                }
            case .volume(let paths):
                if state.runtime.volumes == nil { state.runtime.volumes = [:] }
                for path in paths {
                    let expanded = try expand(path, instruction)
                    guard !expanded.isEmpty else {
                        throw BuildError.input("VOLUME paths cannot be empty", location: instruction.location)
                    }
                    state.runtime.volumes![expanded] = EmptyObject()
                }
            case .stopSignal(let signal): state.runtime.stopSignal = try expand(signal, instruction)
            case .entrypoint(let form):
                state.runtime.entrypoint = commandWords(form)
                if !cmdSet { state.runtime.cmd = nil }
            case .cmd(let form):
                state.runtime.cmd = commandWords(form)
                cmdSet = true
            case .shell(let words): state.runtime.shell = words
            case .healthcheck(let check):
                var health = Healthcheck(test: check.test)
                if check.interval > 0 { health.interval = check.interval }
                if check.timeout > 0 { health.timeout = check.timeout }
                if check.startPeriod > 0 { health.startPeriod = check.startPeriod }
                if check.startInterval > 0 { health.startInterval = check.startInterval }
                if check.retries > 0 { health.retries = check.retries }
                state.runtime.healthcheck = health
            case .onBuild(let trigger): state.runtime.onBuild = (state.runtime.onBuild ?? []) + [trigger]
            case .maintainer(let name): state.config.author = name
            case .run(let run) where inputsOnly:
                // What a bind mount shows the step is read like a COPY's sources.
                reads += try bindMountReads(run, instruction)
            case .run:
                throw BuildError.input(
                    "RUN needs a container runtime, and this build has no RUN executor; only the steps after a stage's last RUN are built natively",
                    location: instruction.location)
            case .copy(let copy) where inputsOnly, .add(let copy) where inputsOnly:
                try recordReads(copy, instruction)
            case .copy(let copy):
                try addLayer(try copyEntries(copy, isAdd: false, instruction), history: history)
                return
            case .add(let copy):
                try addLayer(try copyEntries(copy, isAdd: true, instruction), history: history)
                return
            }
        } catch {
            throw BuildError.wrapping(error, at: instruction.location)
        }
        state.appendEmpty(history: history)
    }

    /// Exec form as given; shell form run by the stage's `SHELL` (default `/bin/sh -c`).
    func commandWords(_ form: CommandForm) -> [String] {
        switch form {
        case .exec(let words): words
        case .shell(let text): (state.runtime.shell ?? ["/bin/sh", "-c"]) + [text]
        }
    }

    mutating func addLayer(_ entries: [LayerEntry], history: History) throws {
        let ingest = try store.beginIngest()
        do {
            let layer = try LayerWriter.write(entries, options: layerOptions, to: ingest)
            _ = try ingest.commit(expected: layer.digest)
            state.append(layer: layer, entries: entries, history: history)
        } catch {
            ingest.discard()
            throw error
        }
    }

    // MARK: - Paths

    /// An absolute, cleaned image path; relative paths are taken from `directory`.
    static func absolute(_ path: String, from directory: String) -> String {
        let joined = path.hasPrefix("/") ? path : directory + "/" + path
        var parts = [Substring]()
        for part in joined.split(separator: "/") {
            if part == "." { continue }
            if part == ".." {
                _ = parts.popLast()
                continue
            }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Entries creating `directory` and the parents it lacks (`0755`, `0:0`); existing parents
    /// are repeated with their current metadata, as a layer diff lists them.
    mutating func directoryEntries(for directory: String) throws -> [LayerEntry] {
        let filesystem = try state.filesystem()
        let resolved = filesystem.resolve(String(directory.dropFirst()))
        return try parents(of: resolved + "/x", in: filesystem)
    }

    /// The entries for every ancestor of `path` (an image path without leading `/`); missing
    /// ones are created `0755`, owned by `owner` (a `--chown`) or root.
    func parents(of path: String, in filesystem: ImageFilesystem, owner: (uid: Int, gid: Int)? = nil) throws
        -> [LayerEntry]
    {
        var result = [LayerEntry]()
        var current = ""
        let components = path.split(separator: "/")
        for component in components.dropLast() {
            current = current.isEmpty ? String(component) : current + "/" + component
            let layerPath = try LayerPath(current)
            if let node = filesystem.node(current), node.kind == .directory {
                result.append(.directory(layerPath, mode: node.mode, uid: node.uid, gid: node.gid))
            } else {
                result.append(.directory(layerPath, uid: owner?.uid ?? 0, gid: owner?.gid ?? 0))
            }
        }
        return result
    }

    static func portKeys(_ text: String, _ instruction: Instruction) throws(BuildError) -> [String] {
        let parts = text.split(separator: "/", maxSplits: 1)
        let proto = parts.count == 2 ? parts[1].lowercased() : "tcp"
        guard ["tcp", "udp", "sctp"].contains(proto), let range = parts.first else {
            throw .input(
                "EXPOSE takes PORT[/tcp|udp|sctp] or a range START-END, not '\(text)'", location: instruction.location)
        }
        let bounds = range.split(separator: "-", maxSplits: 1).map { Int($0) }
        guard let low = bounds.first ?? nil, let high = bounds.last ?? nil, low <= high, low >= 0, high <= 65535 else {
            throw .input(
                "EXPOSE takes PORT[/tcp|udp|sctp] or a range START-END, not '\(text)'", location: instruction.location)
        }
        return (low...high).map { "\($0)/\(proto)" }
    }
}
