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
    package static let identityFormat = "kiln-run-identity/1"

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
        case unchanged(paths: Int)
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
        return .unchanged(paths: reads.touches.count)
    }

    /// The image after a reused step: `state` plus the recorded step's layer, with that step's
    /// history entry, recorded in the store as the checkpoint of `key`.
    static func rebase(
        _ state: ImageState, recorded: BaseImage, reads: RunReads, key: Digest, store: ContentStore
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
        let members = try MemberIndex.members(
            ofBlobAt: store.blobPath(layer.digest), index: store.memberIndexPath(layer.digest))
        for member in members where !member.path.isEmpty {
            var path = "/" + member.path
            let name = FilePaths.lastComponent(of: path)
            if name == ".wh..wh..opq" {
                path = FilePaths.directory(of: path)
                touches.insert(RunTrace.Touch(path: path, access: .tree))
                continue
            }
            if name.hasPrefix(".wh.") {
                path = FilePaths.join(FilePaths.directory(of: path), String(name.dropFirst(4)))
                touches.insert(RunTrace.Touch(path: path, access: .tree))
                continue
            }
            touches.insert(RunTrace.Touch(path: path, access: .entry))
        }
        var filesystem = try LowerFilesystem(layers: lower, store: store)
        var recorded = [Touch]()
        for touch in touches.sorted() {
            recorded.append(Touch(path: touch.path, access: touch.access, state: try filesystem.state(of: touch)))
        }
        return RunReads(
            format: RunTrace.format, identity: identity, processes: trace.processes, touches: recorded,
            lowerLayers: lower.map(\.digest), runLayers: earlierRuns + [layer.digest])
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

/// What became of a `RUN` whose positional key missed, for reports.
package struct RunDecision: Sendable, Equatable {
    package enum Outcome: Sendable, Equatable {
        /// Reused by its read set: it read `paths` paths, none changed.
        case reused(paths: Int)
        /// Ran: a recorded execution read `changed` (of `paths`), which differs now; nil
        /// `changed` when no execution of the step was recorded.
        case ran(changed: String?, paths: Int)
    }
    package var line: Int
    package var platform: Platform
    package var outcome: Outcome
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
