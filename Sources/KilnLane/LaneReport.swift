import KilnBuild
import KilnCore
import KilnOCI
import KilnProcessors

/// What the lane did with one processor: one JSON object per processor with `--json`.
package struct ProcessorReport: Encodable, Sendable {
    package enum Status: String, Encodable, Sendable {
        /// Every platform's key was already built: nothing was built or uploaded.
        case hit
        /// At least one platform was built (and pushed, with `--push`).
        case built
        /// `kiln plan` / `--check`: at least one platform would be built.
        case wouldBuild = "would-build"
        /// `enabled: false`.
        case disabled
        /// Nothing to build in this run: no platform of the processor is one of the run's (or it
        /// declares none); `message` says which.
        case skipped
        /// `kiln assemble`: every platform's image was there; the index is tagged (and pinned).
        case assembled
        /// The Dockerfile needs something kiln cannot do yet (a `RUN` step).
        case notBuildable = "not-buildable"
        /// A pin does not match the current inputs (`--check`, `kiln verify`).
        case stale
        /// Pins match (`--check`, `kiln verify`).
        case ok
        case failed
    }

    /// One platform of the processor.
    package struct PlatformReport: Encodable, Sendable {
        package var platform: String
        /// The input key (SHA-256 over everything that decides the image).
        package var key: String?
        /// Where the key was found: `local`, `registry`, or `miss`.
        package var cache: String?
        /// The platform manifest digest.
        package var digest: String?
        /// Why it must be built: the first input that differs from the last build of this
        /// processor and platform kiln knows of.
        package var reason: String?
    }

    package var ref: String
    package var file: String
    package var repository: String?
    package var status: Status
    package var platforms: [PlatformReport] = []
    /// The image index digest over the platform manifests.
    package var index: String?
    /// Pins written (or, with `--check` and `verify`, found stale), as `key.path: value`.
    package var pins: [String] = []
    /// The same pins with what the file held before and the line of the key: what a pin pull
    /// request and CI annotations show.
    package var pinChanges: [PinChange] = []
    package var pinned = false
    /// A per-platform run: only some of the processor's platforms were built and pushed; the
    /// version tag and the pins wait for `kiln assemble`.
    package var partial = false
    package var pushedBytes: Int64 = 0
    /// `RUN` steps buildah ran (0 when every step came from a checkpoint).
    package var stepsRun = 0
    /// `RUN` steps reused by what they read (rebased; no container ran).
    package var stepsReused = 0
    /// `kiln plan`: the first `RUN` that must run (for processors with `RUN`), and why.
    package var firstStep: String?
    /// `kiln plan` and builds: what became of each `RUN` on each platform built.
    package var runSteps: [RunStepReport] = []
    /// `kiln plan`: step-order suggestions (never applied by kiln).
    package var advice: [String] = []
    package var seconds: Double = 0
    /// How the keys were had: `memo` when nothing the last keying looked at had changed (a few
    /// `lstat`s, no Dockerfile or context read), else `inputs` (absent when nothing was keyed).
    package var keyedFrom: String?
    /// Where those seconds went (a run that looked keys up: build, plan, warm…).
    package var phases: Phases?
    /// Why the processor is not-buildable, stale or failed.
    package var message: String?
    package var category: String?
    /// Where a failure is, when it is on a line of a file the user wrote (a Dockerfile
    /// instruction, a registry.yaml key): the path relative to the repository root.
    package var location: Location?

    /// A processor's seconds by phase: what `kiln bench` stacks per processor. Phases of one
    /// processor run one after the other, so they add up to about its `seconds`.
    package struct Phases: Codable, Sendable, Equatable {
        /// Reading the Dockerfile, resolving bases and hashing the files it copies: the keys.
        package var hash: Double = 0
        /// Looking each key up in the store, then the registry.
        package var lookup: Double = 0
        /// `RUN` steps run or reused by their read set (loading the image, the step, its layer).
        package var run: Double = 0
        /// The rest of the build: the layers `COPY`/`ADD` write, configs and manifests.
        package var layers: Double = 0
        /// Uploading blobs, manifests, the index and provenance.
        package var push: Double = 0
        /// Writing the pins.
        package var pin: Double = 0

        package init() {}

        package static let names = ["hash", "lookup", "run", "layers", "push", "pin"]

        /// The phases in `names` order.
        package var values: [Double] { [hash, lookup, run, layers, push, pin] }
    }

    /// A line of a file in the repository.
    package struct Location: Encodable, Sendable, Equatable {
        package var file: String
        package var line: Int

        package init(file: String, line: Int) {
            self.file = file
            self.line = line
        }
    }

    /// A pin that changed (or, with `--check`, that would): its key, the value the file held
    /// (nil when the key was missing), the new value, and the key's line in the file.
    package struct PinChange: Encodable, Sendable, Equatable {
        package var key: String
        package var old: String?
        /// nil: the pin is taken out (a platform no longer built).
        package var new: String?
        package var line: Int
    }

    package init(processor: Processor, status: Status) {
        ref = processor.ref.description
        file = processor.displayPath
        self.status = status
    }
}

/// What became of one `RUN` on one platform (`RunDecision`), as `--json` gives it.
package struct RunStepReport: Encodable, Sendable {
    package var line: Int
    package var platform: String
    /// `key` (from its checkpoint), `reused` (by its read set), `run`, or `undecided` (`kiln
    /// plan` stopped at an earlier `RUN` that runs).
    package var outcome: String
    /// Paths the recorded execution read (`reused`, and `run` when one was recorded).
    package var paths: Int?
    /// The first of them that changed (`run`).
    package var changed: String?
    /// Paths below the step that changed, none of which it read (`reused`).
    package var changedBelow: Int?
    /// Why the recorded execution cannot be reused by what it read (`run`): it did something
    /// kiln does not model.
    package var unmodelled: String?
    /// The same in words.
    package var reason: String
    /// How long it took in this build, reused or run (absent when it came from its key).
    package var seconds: Double?

    package init(_ decision: RunDecision) {
        line = decision.line
        seconds = decision.seconds
        platform = decision.platform.description
        reason = decision.reason
        switch decision.outcome {
        case .key:
            outcome = "key"
        case .reused(let paths, let below):
            outcome = "reused"
            self.paths = paths
            changedBelow = below
        case .runs(let changed, let paths):
            outcome = "run"
            self.changed = changed
            self.paths = changed == nil ? nil : paths
        case .positional:
            outcome = "run"
        case .unmodelled(let reason):
            outcome = "run"
            unmodelled = reason
        case .undecided:
            outcome = "undecided"
        }
    }
}

/// A step of the lane, for the progress display.
package struct LaneEvent: Sendable {
    package enum Kind: Sendable {
        case started
        case hashing
        case building(Platform)
        case pushing(bytes: Int64)
        /// A line buildah printed while running a `RUN` step.
        case output(String)
        /// Something the user should act on that fails nothing (a lying mirror).
        case warning(String)
        case finished(ProcessorReport)
    }

    package var ref: ProcessorRef
    package var kind: Kind
}
