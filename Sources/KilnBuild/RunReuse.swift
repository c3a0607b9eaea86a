import KilnCore
import KilnDockerfile
import KilnLayers
import KilnOCI
import KilnStore

/// Reusing a `RUN` by what it read, when its positional key misses.
///
/// A step's *identity* is what makes two executions the same step apart from the files below
/// it: the platform, where the stage starts (the base image), the layers earlier `RUN`s of the
/// stage made, the instruction with its heredocs, the `ARG` values in scope, and the config it
/// runs with (environment, user, working directory, shell). Each traced execution is recorded
/// under its identity with what it touched and each touched path's state below it
/// (`RunReads`). A later build with the same identity whose lower file system gives every one
/// of those paths the same state gets the recorded layer on its own lower layers (a rebase):
/// no container runs. The paths the step's layer holds count as touched, so a step whose layer
/// overwrites or deletes a path that changed below it is never reused.
///
/// What a trace cannot see — the network, the clock, randomness — is not compared: as with any
/// cache, the first recorded result stands.
package enum RunReuse {
    package static let identityFormat = "kiln-run-identity/2"

    /// The identity of the `RUN` `instruction` about to run on `state`.
    static func identity(
        of instruction: Instruction, args: [String: String], state: ImageState, stageStart: Digest,
        earlierRuns: [Digest], platform: Platform
    ) -> Digest {
        var text = "\(identityFormat)\nplatform \(platform)\nstart \(stageStart.hex)\n"
        for layer in earlierRuns { text += "run \(layer.hex)\n" }
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
        /// Every path the step touched has the state it had: the recorded layer fits.
        /// `changedBelow` paths below it changed (`changedBelow(from:to:)`).
        case unchanged(paths: Int, changedBelow: Int?)
        /// The first touched path whose state differs.
        case changed(path: String, paths: Int)
    }

    /// Compares the recorded states with the lower file system `layers` make.
    static func check(_ reads: RunReads, layers: [Descriptor], store: ContentStore) throws -> Verdict {
        var lower = try LowerFilesystem(layers: layers, store: store)
        for touch in reads.touches {
            let now = try lower.state(of: RunTrace.Touch(path: touch.path, access: touch.access))
            if now != touch.state { return .changed(path: touch.path, paths: reads.touches.count) }
        }
        let below = try changedBelow(from: reads.lowerLayers, to: layers.map(\.digest), after: &lower, store: store)
        return .unchanged(paths: reads.touches.count, changedBelow: below)
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
            for path in try RunReads.paths(ofLayer: layer, store: store) { paths.insert(path.path) }
        }
        var before = try LowerFilesystem(layerDigests: recorded, store: store)
        var changed = 0
        for path in paths {
            let touch = RunTrace.Touch(path: path, access: .entry)
            if try before.state(of: touch) != after.state(of: touch) { changed += 1 }
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

/// What a traced execution touched, each path with its state on the file system below the step
/// (`LowerFilesystem`), and where it belongs: the stored form of a read set.
package struct RunReads: Codable, Sendable, Equatable {
    package struct Touch: Codable, Sendable, Equatable {
        package var path: String
        package var access: RunTrace.Access
        package var state: String
    }

    package var format: String
    /// The step's identity (`RunReuse.identity`).
    package var identity: Digest?
    /// How many of the step's processes the trace showed.
    package var processes: Int
    package var touches: [Touch]
    /// The layers the step ran on.
    package var lowerLayers: [Digest]
    /// The layers `RUN`s of the stage made, this step's last: the next step's identity needs them.
    package var runLayers: [Digest]

    /// The states of `trace`'s touches, and of every path the step's own `layer` holds, on the
    /// file system `lower` makes.
    static func record(
        _ trace: RunTrace, layer: Descriptor, lower: [Descriptor], identity: Digest?, earlierRuns: [Digest],
        store: ContentStore
    ) throws -> RunReads {
        var touches = Set(trace.touches)
        // The step's own layer: whatever it wrote or deleted depends on what was there before.
        touches.formUnion(try paths(ofLayer: layer.digest, store: store))
        var filesystem = try LowerFilesystem(layers: lower, store: store)
        var recorded = [Touch]()
        for touch in touches.sorted() {
            recorded.append(Touch(path: touch.path, access: touch.access, state: try filesystem.state(of: touch)))
        }
        return RunReads(
            format: RunTrace.format, identity: identity, processes: trace.processes, touches: recorded,
            lowerLayers: lower.map(\.digest), runLayers: earlierRuns + [layer.digest])
    }

    /// Every path a layer blob writes or deletes: its members as entries, a whiteout as the
    /// deleted path's tree, an opaque directory as that directory's tree.
    static func paths(ofLayer layer: Digest, store: ContentStore) throws -> [RunTrace.Touch] {
        let members = try MemberIndex.members(ofBlobAt: store.blobPath(layer), index: store.memberIndexPath(layer))
        var touches = [RunTrace.Touch]()
        for member in members where !member.path.isEmpty {
            let path = "/" + member.path
            let name = FilePaths.lastComponent(of: path)
            if name == ".wh..wh..opq" {
                touches.append(RunTrace.Touch(path: FilePaths.directory(of: path), access: .tree))
            } else if name.hasPrefix(".wh.") {
                let deleted = FilePaths.join(FilePaths.directory(of: path), String(name.dropFirst(4)))
                touches.append(RunTrace.Touch(path: deleted, access: .tree))
            } else {
                touches.append(RunTrace.Touch(path: path, access: .entry))
            }
        }
        return touches
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
        /// `kiln plan` stopped at an earlier `RUN` that runs: this one is decided once it has.
        case undecided(after: Int)
    }
    package var location: SourceLocation
    package var platform: Platform
    package var outcome: Outcome
    /// How long the step took in this build: reusing it, or running it and recording its
    /// checkpoint (nil when it came from its key, or in a plan).
    package var seconds: Double?

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

/// A recorded execution found for an identity: the step key it was recorded under.
package struct RunExecution: Codable, Sendable {
    package var key: Digest

    package init(key: Digest) { self.key = key }

    static func find(_ identity: Digest, store: ContentStore) -> RunExecution? {
        try? store.record(RunExecution.self, kind: "run", key: identity)
    }

    static func record(_ identity: Digest, key: Digest, store: ContentStore) throws {
        try store.setRecord(RunExecution(key: key), kind: "run", key: identity)
    }
}
