import KilnCore
import KilnDockerfile
import KilnLayers
import KilnOCI
import KilnStore

/// Reusing a `RUN` by what it read, when its positional key misses.
///
/// A step's *identity* is what makes two executions the same step apart from the files below
/// it: the platform, where the stage starts (the base image), the instruction with its heredocs,
/// the `ARG` values in scope, the config it runs with (environment, user, working directory,
/// shell) and the layer options (`SOURCE_DATE_EPOCH`, gzip level) its layer is written with.
/// Every layer below the step — the stage's earlier `RUN`s' included — is its lower file system,
/// compared by what the step observed of it. Each traced execution is recorded under its
/// identity with everything it observed (`StepReplay`) and each observation's state below it
/// (`RunReads`). A later build with the same identity whose lower file system gives every one
/// of those observations the same state gets the recorded layer on its own lower layers (a
/// rebase): no container runs. A step the replay could not model is never reused.
///
/// What a trace cannot see — the network, the clock, randomness — is not compared: as with any
/// cache, the first recorded result stands.
package enum RunReuse {
    package static let identityFormat = "kiln-run-identity/3"

    /// The identity of the `RUN` `instruction` about to run on `state`.
    static func identity(
        of instruction: Instruction, args: [String: String], state: ImageState, stageStart: Digest,
        platform: Platform, layerOptions: LayerOptions
    ) -> Digest {
        var text = "\(identityFormat)\nplatform \(platform)\nstart \(stageStart.hex)\n"
        text += "layers \(layerOptions.keyLine)\n"
        text += "instruction \(instruction.source)\n"
        if case .run(let run) = instruction.command {
            for heredoc in run.heredocs { text += "heredoc \(heredoc.name)\n\(heredoc.content)\n" }
        }
        for (name, value) in args.sorted(by: { $0.key < $1.key }) { text += "arg \(name)=\(value)\n" }
        let runtime = state.config.config
        for line in runtime?.env ?? [] { text += "env \(line)\n" }
        text += "user \(runtime?.user ?? "")\nworkdir \(runtime?.workingDir ?? "")\n"
        text += "shell \((runtime?.shell ?? []).joined(separator: "\u{0}"))\n"
        return Digest.sha256(of: Array(text.utf8))
    }

    /// What a reuse check found.
    package enum Verdict: Sendable, Equatable {
        /// Every observation has the state it had: the recorded layer fits. `changedBelow`
        /// paths below it changed (`changedBelow(from:to:)`).
        case unchanged(paths: Int, changedBelow: Int?)
        /// The first observed path whose state differs.
        case changed(path: String, paths: Int)
        /// The recorded execution could not be modelled, for `reason`.
        case unmodelled(reason: String)
    }

    /// Compares the recorded states with `lower`, the file system `layers` make (read once for
    /// every execution a build checks).
    static func check(_ reads: RunReads, lower: inout LowerFilesystem, layers: [Descriptor], store: ContentStore)
        throws -> Verdict
    {
        if let reason = reads.unmodelled { return .unmodelled(reason: reason) }
        for observed in reads.observations {
            let now = try? lower.state(of: Observation(observed.path, observed.kind))
            if now != observed.state { return .changed(path: observed.path, paths: reads.observations.count) }
        }
        let below = try changedBelow(from: reads.lowerLayers, to: layers.map(\.digest), after: &lower, store: store)
        return .unchanged(paths: reads.observations.count, changedBelow: below)
    }

    /// How many paths differ between the file system a recorded execution ran on (`recorded`)
    /// and the one `layers` make: each path of a layer the two do not share, compared by its
    /// state. Nil when a recorded layer is no longer in the store.
    package static func changedBelow(from recorded: [Digest], to layers: [Descriptor], store: ContentStore) throws
        -> Int?
    {
        var after = try LowerFilesystem(layers: layers, store: store)
        return try changedBelow(from: recorded, to: layers.map(\.digest), after: &after, store: store)
    }

    /// `changedBelow(from:to:store:)` with the file system of `now` already read (`after`).
    private static func changedBelow(
        from recorded: [Digest], to now: [Digest], after: inout LowerFilesystem, store: ContentStore
    ) throws -> Int? {
        guard recorded.allSatisfy({ store.contains($0) }) else { return nil }
        let differing = Set(now).symmetricDifference(recorded)
        var paths = Set<String>()
        for layer in differing {
            let members = try MemberIndex.members(ofBlobAt: store.blobPath(layer), index: store.memberIndexPath(layer))
            for member in members where !member.path.isEmpty {
                let name = FilePaths.lastComponent(of: "/" + member.path)
                if name == ".wh..wh..opq" { continue }
                let path =
                    name.hasPrefix(".wh.")
                    ? FilePaths.join(FilePaths.directory(of: "/" + member.path), String(name.dropFirst(4)))
                    : "/" + member.path
                paths.insert(path)
            }
        }
        var before = try LowerFilesystem(layerDigests: recorded, store: store)
        var changed = 0
        for path in paths {
            let observation = Observation(path, .entry)
            if (try? before.state(of: observation)) != (try? after.state(of: observation)) { changed += 1 }
        }
        return changed
    }

    /// The image after a reused step: `state` plus the recorded step's layer, with that step's
    /// history entry, recorded in the store as the checkpoint of `key` (unless only `planning`).
    static func rebase(
        _ state: ImageState, recorded: BaseImage, reads: RunReads, key: Digest, store: ContentStore,
        planning: Bool = false
    ) throws -> BaseImage {
        guard let layer = recorded.layers.last, let diffID = recorded.config.rootfs.diffIDs.last else {
            throw BuildError(.executor("the recorded step has no layer"))
        }
        var config = state.config
        config.rootfs.diffIDs.append(diffID)
        if let entry = recorded.config.history?.last { config.history = (config.history ?? []) + [entry] }
        let image = try PlatformImage(config: config, layers: state.layers + [layer])
        _ = try store.put(image.config.bytes, mediaType: image.config.descriptor.mediaType)
        let manifest = try store.put(image.manifest.bytes, mediaType: image.manifest.descriptor.mediaType)
        if planning { return try BuildahExecutor.Checkpoint.load(manifest, key: key, store: store) }
        var rebased = reads
        rebased.lowerLayers = state.layers.map(\.digest)
        let stored = try store.put(try CanonicalJSON.encode(rebased), mediaType: RunTrace.mediaType)
        return try BuildahExecutor.Checkpoint.record(manifest, reads: stored, key: key, store: store)
    }
}

/// What a traced execution observed of the file system below it, each observation with its
/// state there (`LowerFilesystem`), and where it belongs: the stored form of a read set.
package struct RunReads: Codable, Sendable, Equatable {
    package struct Observed: Codable, Sendable, Equatable {
        package var path: String
        package var kind: Observation.Kind
        package var state: String
    }

    package var format: String
    /// The step's identity (`RunReuse.identity`).
    package var identity: Digest?
    /// How many of the step's processes the trace showed.
    package var processes: Int
    /// Why the step cannot be reused by what it read (nil: it can).
    package var unmodelled: String?
    package var observations: [Observed]
    /// The layers the step ran on.
    package var lowerLayers: [Digest]

    /// What buildah was asked to run, beyond the trace: for the replay's start.
    struct Launch {
        var workingDirectory: String
        /// An exec-form `RUN`'s program (buildah looks it up in `PATH`), nil for the shell form.
        var program: String?
        var path: String
        /// Secret files mounted over the image.
        var mountedFiles: [String] = []
    }

    /// Replays `trace` on the file system `lower` makes, with the step's own `layer` on top at
    /// the end, and records the state of everything the step observed.
    static func record(
        _ trace: RunTrace, layer: Descriptor, lower: [Descriptor], identity: Digest?, launch: Launch,
        store: ContentStore
    ) throws -> RunReads {
        var reads = RunReads(
            format: RunTrace.format, identity: identity, processes: trace.processes, unmodelled: trace.unmodelled,
            observations: [], lowerLayers: lower.map(\.digest))
        guard reads.unmodelled == nil else { return reads }
        let filesystem = try LowerFilesystem(layers: lower, store: store)
        var mounts = StepReplay.Mounts()
        mounts.files.formUnion(launch.mountedFiles)
        let members = try MemberIndex.members(
            ofBlobAt: store.blobPath(layer.digest), index: store.memberIndexPath(layer.digest))
        func replay(_ interpreters: [String: FileSummary.Interpreter]) -> StepReplay {
            var replay = StepReplay(lower: filesystem, mounts: mounts)
            replay.madeInterpreters = interpreters
            replay.start(workingDirectory: launch.workingDirectory, program: launch.program, path: launch.path)
            for event in trace.events {
                replay.apply(event)
                if replay.unmodelled != nil { break }
            }
            return replay
        }
        var replayed = replay([:])
        if replayed.unmodelled == nil, !replayed.executedMade.isEmpty {
            // The step ran files it wrote: what executing them opened is known from its layer,
            // when each is there as it was run; then the step is replayed again knowing it.
            let summaries = try LowerFilesystem.summaries(ofBlobAt: store.blobPath(layer.digest))
            let final = replayed.overlay
            var interpreters = [String: FileSummary.Interpreter]()
            for key in replayed.executedMade {
                let parts = key.split(separator: "\u{0}", maxSplits: 1)
                let path = String(parts[0])
                guard parts.count == 2, let version = Int(parts[1]), final[path] == .file(version: version),
                    let summary = summaries[String(path.dropFirst())]
                else {
                    reads.unmodelled = "the step ran \(path), which it wrote and then changed or removed"
                    return reads
                }
                interpreters[key] = summary.interpreter
            }
            replayed = replay(interpreters)
        }
        if let reason = replayed.unmodelled {
            reads.unmodelled = reason
            return reads
        }
        replayed.finish(layerMembers: members)
        var states = replayed.lower
        for observation in replayed.observations.sorted() {
            do {
                reads.observations.append(
                    Observed(path: observation.path, kind: observation.kind, state: try states.state(of: observation)))
            } catch {
                reads.unmodelled = "\(error)"
                reads.observations = []
                return reads
            }
        }
        return reads
    }

    /// The read set stored at `descriptor`, when it is one kiln can use.
    static func load(_ descriptor: Descriptor, store: ContentStore) -> RunReads? {
        guard let bytes = try? store.readBlob(descriptor.digest, limit: 256 << 20),
            let reads = try? CanonicalJSON.decode(RunReads.self, from: bytes, what: "read set"),
            reads.format == RunTrace.format
        else { return nil }
        return reads
    }
}

/// What became of a `RUN`, for the progress log, `kiln plan` and `--json`.
package struct RunDecision: Sendable, Equatable, CustomStringConvertible {
    package enum Outcome: Sendable, Equatable {
        /// Its positional key was recorded: it comes from that checkpoint.
        case key
        /// Reused by its read set: it read `paths` paths, none of which differs now; `changedBelow`
        /// paths of the file system below it did change (nil when the layers it ran on are no
        /// longer in the store to compare).
        case reused(paths: Int, changedBelow: Int?)
        /// Runs: a recorded execution read `changed` (of `paths`), which differs now; nil
        /// `changed` when no execution of the step was recorded.
        case runs(changed: String?, paths: Int)
        /// Runs, reused by position only, for `reason` (a bind or cache mount, reuse by reads off).
        case positional(reason: String)
        /// Runs: the recorded execution did something kiln does not model (`reason`).
        case unmodelled(reason: String)
        /// `kiln plan` stopped at an earlier `RUN` that runs: this one is decided once it has.
        case undecided(after: Int)
    }
    package var location: SourceLocation
    package var platform: Platform
    package var outcome: Outcome
    /// How long the step took in this build: reusing it, or running it and recording its
    /// checkpoint (nil when it came from its key, or in a plan).
    package var seconds: Double?
    /// The step's identity (`RunReuse.identity`), when a plan decided it.
    package var identity: Digest?

    package var line: Int { location.line }

    /// The words for `outcome`, e.g. "reused by its read set: read 3,883 paths, none of the 2
    /// that changed below it".
    package var reason: String {
        switch outcome {
        case .key:
            return "from its checkpoint (the step key was recorded)"
        case .reused(let paths, let changedBelow):
            let below =
                switch changedBelow {
                case nil: "none changed"
                case 0: "nothing below it changed"
                case 1: "not the 1 path that changed below it"
                case let count?: "none of the \(Self.grouped(count)) that changed below it"
                }
            return "reused by its read set: read \(Self.grouped(paths)) paths, \(below)"
        case .runs(let changed?, let paths):
            return "runs: it read \(Self.grouped(paths)) paths and \(changed) changed"
        case .runs(nil, _):
            return "runs: no recorded execution of this step to reuse"
        case .positional(let reason):
            return "runs (reused by position only: \(reason))"
        case .unmodelled(let reason):
            return "runs: \(reason); kiln reuses only steps it can model"
        case .undecided(let line):
            return "decided once line \(line) has run"
        }
    }

    package var description: String { "[\(platform)] line \(line): \(reason)" }

    /// `count` with thousands separated by commas.
    package static func grouped(_ count: Int) -> String {
        var digits = Array(String(count))
        var index = digits.count - 3
        while index > 0 {
            digits.insert(",", at: index)
            index -= 3
        }
        return String(digits)
    }
}

/// The traced executions recorded for an identity: the step keys they were recorded under,
/// newest first, so two branches whose steps read different files both find theirs.
package struct RunExecution: Codable, Sendable {
    package var keys: [Digest]

    /// How many executions an identity keeps: processors made from one template share their
    /// steps' identities (the same `RUN pip install -r requirements.txt`), each with its own
    /// read files, and each must find its own.
    package static let kept = 32

    package init(keys: [Digest]) { self.keys = keys }

    private enum CodingKeys: String, CodingKey { case keys, key }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let keys = try container.decodeIfPresent([Digest].self, forKey: .keys) {
            self.keys = keys
        } else {
            keys = [try container.decode(Digest.self, forKey: .key)]
        }
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(keys, forKey: .keys)
    }

    /// `key` first, then `earlier` without it, at most `kept`.
    package static func merged(_ key: Digest, before earlier: [Digest]) -> [Digest] {
        Array(([key] + earlier.filter { $0 != key }).prefix(kept))
    }

    static func find(_ identity: Digest, store: ContentStore) -> [Digest] {
        (try? store.record(RunExecution.self, kind: "run", key: identity))?.keys ?? []
    }

    /// Adds `key` first to the executions of `identity` (processors sharing the step record
    /// theirs at once: one update at a time).
    static func record(_ identity: Digest, key: Digest, store: ContentStore) throws {
        try store.updateRecord(RunExecution.self, kind: "run", key: identity) { current in
            RunExecution(keys: merged(key, before: current?.keys ?? []))
        }
    }
}
