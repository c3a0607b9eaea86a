import Foundation
import KilnCore
import KilnLane

/// How `kiln bench` runs.
package struct BenchSettings: Sendable {
    /// The repository measured; only its scratch copy is built and edited.
    package var root: String
    /// The kiln executable the lane runs as (this one).
    package var kiln: String
    /// A registry to push to instead of a throwaway one, into a scratch prefix.
    package var registry: String?
    /// Only these processors (`--ref`).
    package var refs: [String] = []
    /// Only these platforms (`--platform`).
    package var platforms: [String] = []
    /// `NAME=VALUE` build arguments, for the lane and the peer.
    package var buildArgs: [String] = []
    /// More flags for every lane run (`--jobs`, `--secret`, …).
    package var laneArguments: [String] = []
    /// Whether the repository keeps its key tags in one `cache-repo` (moved under the prefix too).
    package var cacheRepository = false
    /// Processors (and libraries) edited in turn.
    package var sample = 3
    package var budget: Double = 600
    /// `buildah`, to run the same scenarios with `buildah bud --layers` + push.
    package var peer: String?
    /// Where the scratch folder goes.
    package var scratchParent: String
    /// Keep the scratch folder (the copy, the stores, the registry's data).
    package var keep = false
    /// Measure a generated monorepo of this many processors instead of `root`.
    package var synthetic: Int?

    package init(root: String, kiln: String, scratchParent: String) {
        self.root = root
        self.kiln = kiln
        self.scratchParent = scratchParent
    }
}

/// What the bench needs from the rest of kiln, given as closures so this module stays free of the
/// command line and the registry client.
package struct BenchHooks: Sendable {
    /// The files each processor of the copy reads, relative to the copy's root; called with the
    /// lane's flags for the copy (as `kiln build` would take them).
    package var inputs: @Sendable (_ laneArguments: [String]) async throws -> [(ref: String, files: [String])]
    /// Deletes what was pushed to these repositories of a `--registry` (not the throwaway one);
    /// returns what it could not delete, in words.
    package var cleanup: @Sendable (_ repositories: [String]) async -> [String]
    /// A line of progress.
    package var progress: @Sendable (String) -> Void

    package init(
        inputs: @escaping @Sendable ([String]) async throws -> [(ref: String, files: [String])],
        cleanup: @escaping @Sendable ([String]) async -> [String],
        progress: @escaping @Sendable (String) -> Void
    ) {
        self.inputs = inputs
        self.cleanup = cleanup
        self.progress = progress
    }
}

/// Copies a repository to a scratch folder and measures its lane in the scenarios that decide CI
/// latency: cold, nothing changed, a fresh runner, one processor edited (a sample, each in turn),
/// one shared library edited; with a peer, the same scenarios with the peer.
package struct Bench: Sendable {
    package let settings: BenchSettings
    package let hooks: BenchHooks

    package init(settings: BenchSettings, hooks: BenchHooks) {
        self.settings = settings
        self.hooks = hooks
    }

    /// Runs every scenario; returns the report and notes (what was left behind, and why).
    package func run() async throws -> (report: BenchReport, notes: [String]) {
        let scratch = try ScratchDirectory(in: settings.scratchParent, prefix: "kiln-bench")
        defer { if settings.keep { scratch.keep() } else { scratch.remove() } }
        let copy = scratch.path + "/repo"
        if let count = settings.synthetic {
            hooks.progress("generating a monorepo of \(count) processors in \(copy)")
            try SyntheticRepository.generate(at: copy, processors: count)
        } else {
            hooks.progress("copying \(settings.root) to \(copy)")
            try RepositoryCopy.copy(settings.root, to: copy)
        }

        var registry: ThrowawayRegistry?
        let host: String
        let owner: String
        if let given = settings.registry {
            host = given
            owner = "kiln-bench-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        } else {
            guard let binary = ThrowawayRegistry.binary() else { throw BenchError.noRegistry }
            try FilePaths.makeDirectories(scratch.path + "/registry")
            registry = try ThrowawayRegistry(binary: binary, directory: scratch.path + "/registry")
            host = registry!.host
            owner = "kiln-bench"
        }
        defer { registry?.stop() }
        let destination =
            registry != nil
            ? "docker-registry on \(host) (throwaway)" : "\(host)/\(owner)/* (a scratch prefix, deleted afterwards)"

        var flags = settings.refs.flatMap { ["--ref", $0] } + settings.buildArgs.flatMap { ["--build-arg", $0] }
        if !settings.platforms.isEmpty { flags += ["--platform", settings.platforms.joined(separator: ",")] }
        if settings.cacheRepository { flags += ["--cache-repo", "\(host)/\(owner)/kiln-cache"] }
        let lane = LaneRunner(
            kiln: settings.kiln, root: copy, host: host, owner: owner, arguments: flags + settings.laneArguments,
            scratch: scratch.path)
        var report = BenchReport(
            root: settings.root, processors: 0, platforms: [], budget: settings.budget, registry: destination,
            kilnVersion: KilnVersion.current)
        var notes = [String]()
        var pushedTo = Set<String>()

        func record(_ outcome: LaneRunner.Outcome) {
            report.scenarios.append(outcome.result)
            pushedTo.formUnion(outcome.repositories)
            let result = outcome.result
            hooks.progress(
                "\(result.tool): \(result.label): \(Duration.words(result.seconds)), \(result.built) built"
                    + (result.failed > 0 ? ", \(result.failed) failed" : ""))
        }

        hooks.progress("kiln: cold (empty cache, empty registry)…")
        let cold = try await lane.run(.cold, label: ScenarioResult.Kind.cold.title, store: "warm")
        record(cold)
        report.processors = cold.result.processors.count
        report.platforms = cold.platforms
        guard report.processors > 0 else { throw BenchError.nothingToMeasure("the lane selected no processor") }
        record(try await lane.run(.unchanged, label: ScenarioResult.Kind.unchanged.title, store: "warm"))
        record(try await lane.run(.freshRunner, label: ScenarioResult.Kind.freshRunner.title, store: "fresh"))

        hooks.progress("reading what each processor reads…")
        let reads = try await hooks.inputs(lane.arguments(store: "warm"))
        let plan = ChangePlan(
            reads: reads, sample: settings.sample, isText: { ChangePlan.looksLikeText(copy + "/" + $0) })
        let edits =
            plan.processors.map { (ScenarioResult.Kind.processorChanged, $0) }
            + plan.libraries.map { (ScenarioResult.Kind.libraryChanged, $0) }
        if plan.libraries.isEmpty { notes.append("no file is read by two processors: no shared-library scenario") }
        for (kind, edit) in edits {
            try ChangePlan.edit(copy + "/" + edit.file)
            var outcome = try await lane.run(kind, label: "\(kind.title): \(edit.subject)", store: "warm")
            outcome.result.changed = edit.file
            outcome.result.readers = edit.readers
            record(outcome)
        }

        if let peer = settings.peer {
            precondition(peer == "buildah")
            let buildah = try BuildahPeer(
                root: copy, host: host, owner: owner + "-buildah", insecure: registry != nil, settings: settings,
                scratch: scratch.path)
            for kind in [ScenarioResult.Kind.cold, .unchanged, .freshRunner] {
                hooks.progress("buildah: \(kind.title)…")
                record(try await buildah.run(kind, label: kind.title))
            }
            for (kind, edit) in edits {
                try ChangePlan.edit(copy + "/" + edit.file)
                var outcome = try await buildah.run(kind, label: "\(kind.title): \(edit.subject)")
                outcome.result.changed = edit.file
                outcome.result.readers = edit.readers
                record(outcome)
            }
        }

        if registry == nil {
            notes += await hooks.cleanup(pushedTo.sorted())
        }
        if settings.keep { notes.append("kept the scratch folder \(scratch.path)") }
        report.verdicts = report.judged
        return (report, notes)
    }
}

/// Copies a repository tree (not its `.git`), keeping symbolic links as links and modes.
enum RepositoryCopy {
    static func copy(_ source: String, to destination: String) throws {
        let manager = FileManager.default
        try manager.createDirectory(atPath: destination, withIntermediateDirectories: true)
        for name in try manager.contentsOfDirectory(atPath: source) where name != ".git" {
            try manager.copyItem(atPath: source + "/" + name, toPath: destination + "/" + name)
        }
    }
}
