import ArgumentParser
import Foundation
import KilnBench
import KilnCore
import KilnLane
import KilnOCI
import KilnProcessors
import KilnRegistry

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure this repository's lane in the scenarios that decide CI latency, against a budget.",
        discussion: """
            Copies the repository to a scratch folder (the repository itself is never touched) and \
            runs the lane there as `kiln build --push --pin` would, into a throwaway docker-registry \
            on 127.0.0.1 (or, with --registry, into a scratch prefix of that registry, deleted \
            afterwards). Scenarios: cold (empty cache and registry); nothing changed; a fresh runner \
            (empty local cache, warm registry); one processor's file edited (--sample processors, \
            each in turn); one shared library edited (the files several processors read). Each \
            processor's time is split into hashing, lookups, RUN steps, layers, push and pin. With \
            --peer buildah, the same scenarios run with `buildah bud --layers` + push.

              kiln bench                              # the table and the verdicts
              kiln bench --budget 10m --report out    # out/index.html: the charts
              kiln bench --peer buildah --sample 2 --json > bench.json
              kiln bench --build-arg BASE_IMAGE=ghcr.io/acme/base:1 --platform linux/amd64
              kiln bench --synthetic 2400 --sample 1  # 2,400 processors
            """)

    @Option(
        help: ArgumentHelp(
            "The repository root (default: the nearest folder up holding kiln.yaml, else .git).", valueName: "dir"))
    var root: String?

    @Option(
        help: ArgumentHelp(
            "Push here, into a scratch prefix, instead of a throwaway local docker-registry.", valueName: "host[:port]")
    )
    var registry: String?

    @Option(
        name: .customLong("ref"),
        help: ArgumentHelp("Only this processor (repeatable or comma-separated).", valueName: "ns/name@ver"))
    var refs: [String] = []

    @Option(
        name: [.customLong("platforms"), .customLong("platform")],
        help: ArgumentHelp("Only these platforms.", valueName: "os/arch,..."))
    var platforms: [String] = []

    @Option(
        name: .customLong("build-arg"),
        help: ArgumentHelp(
            "Set an ARG (repeatable); NAME alone takes it from the environment.", valueName: "NAME=VALUE"))
    var buildArgs: [String] = []

    @Option(help: ArgumentHelp("Processors worked on at once (default: the lane's).", valueName: "n"))
    var jobs: Int?

    @Option(help: ArgumentHelp("Processors (and libraries) edited, each in turn.", valueName: "n"))
    var sample = 3

    @Option(
        help: ArgumentHelp("The lane's budget (e.g. 10m, 90s; the runbooks' target is 10m).", valueName: "duration"))
    var budget = "10m"

    @Option(help: ArgumentHelp("Also run every scenario with this builder (buildah).", valueName: "tool"))
    var peer: String?

    @Option(help: ArgumentHelp("Write index.html (charts) and bench.json here.", valueName: "dir"))
    var report: String?

    @Option(
        name: .customLong("insecure-registry"),
        help: ArgumentHelp("Allow plain HTTP or unverified TLS for this host[:port] (repeatable).", valueName: "host"))
    var insecureRegistries: [String] = []

    @Flag(help: "Keep the scratch folder (the copy, the stores, the throwaway registry's data).")
    var keep = false

    @Option(
        help: ArgumentHelp(
            "Measure a generated monorepo of N processors (shared libraries, two versions of every fourth, both platforms) instead of a repository.",
            valueName: "N"))
    var synthetic: Int?

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if LaneOptions.seconds(budget) == nil {
            throw ValidationError("--budget takes a duration such as 10m, 90s or 1h, not '\(budget)'.")
        }
        if sample < 0 { throw ValidationError("--sample takes 0 or more, e.g. --sample 3.") }
        if let synthetic, synthetic < 1 {
            throw ValidationError("--synthetic takes a number of processors, e.g. --synthetic 240.")
        }
        if synthetic != nil && root != nil { throw ValidationError("Give --root or --synthetic, not both.") }
        if let jobs, jobs < 1 { throw ValidationError("--jobs takes a positive number, e.g. --jobs 4.") }
        if let peer, peer != "buildah" { throw ValidationError("--peer takes buildah, not '\(peer)'.") }
        for text in refs.flatMap({ $0.split(separator: ",") }) where ProcessorRef(parsing: String(text)) == nil {
            throw ValidationError("--ref takes NAMESPACE/NAME@VERSION, e.g. --ref llm/litellm@1, not '\(text)'.")
        }
    }

    func run() async throws {
        try await Output.reportingAsync(json: output.json) {
            let root =
                synthetic.map { "synthetic monorepo of \($0) processors" }
                ?? LaneConfig.findRoot(explicit: self.root, from: ".")
            let config = synthetic == nil ? try LaneConfig.load(root: root) : LaneConfig(root: root)
            guard let kiln = FilePaths.realPath("/proc/self/exe") else {
                throw BenchError.nothingToMeasure("cannot find kiln's own executable")
            }
            var settings = BenchSettings(
                root: root, kiln: kiln,
                scratchParent: Environment.current["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp")
            settings.registry = registry
            settings.refs = refs
            settings.platforms = platforms.flatMap { $0.split(separator: ",").map(String.init) }
            settings.buildArgs = buildArgs
            settings.sample = sample
            settings.budget = LaneOptions.seconds(budget) ?? 600
            settings.peer = peer
            settings.keep = keep
            settings.synthetic = synthetic
            settings.cacheRepository = config.cacheRepository != nil
            settings.laneArguments =
                (jobs.map { ["--jobs", "\($0)"] } ?? []) + insecureRegistries.flatMap { ["--insecure-registry", $0] }
            let quiet = output.quiet
            let insecure = insecureRegistries
            let hooks = BenchHooks(
                inputs: { flags in try await Self.reads(flags: flags, insecure: insecure) },
                cleanup: { repositories in await Self.cleanup(repositories, insecure: insecure) },
                progress: { line in if !quiet { Output.errorLine("bench: " + line) } })
            let (report, notes) = try await Bench(settings: settings, hooks: hooks).run()
            let json = Output.jsonText(report)
            if let directory = self.report {
                let page = try BenchPage.write(report, to: directory, json: Array((json + "\n").utf8))
                if !quiet { Output.errorLine("bench: wrote \(page)") }
            }
            if output.json {
                Output.json(report)
            } else {
                BenchTable.print(report)
            }
            for note in notes where !quiet { Output.errorLine("bench: " + note) }
        }
    }

    /// What each processor of the copy reads, through the lane's own input pass.
    static func reads(flags: [String], insecure: [String]) async throws -> [(ref: String, files: [String])] {
        let probe = try ProbeArguments.parse(flags)
        let settings = try probe.lane.settings(platforms: probe.platforms)
        let store = try probe.store.open()
        var configuration = RegistryConfiguration()
        configuration.insecureHosts = Set(insecure)
        let client = try RegistryClient(configuration: configuration)
        let inputs: [Lane.Inputs]
        do {
            inputs = try await Lane(settings: settings, store: store, client: client, observer: { _ in }).inputs()
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
        let root = settings.config.root
        return inputs.map { entry in
            (entry.processor.ref.description, entry.files.map { FilePaths.relative($0, to: root) })
        }
    }

    /// Empties the scratch repositories of a `--registry`.
    static func cleanup(_ repositories: [String], insecure: [String]) async -> [String] {
        var configuration = RegistryConfiguration()
        configuration.insecureHosts = Set(insecure)
        guard let client = try? RegistryClient(configuration: configuration) else { return [] }
        var notes = [String]()
        for text in repositories {
            guard let slash = text.firstIndex(of: "/") else { continue }
            let repository = Repository(
                registry: String(text[..<slash]), path: String(text[text.index(after: slash)...]))
            if let note = await Lane.deleteEverything(in: repository, client: client) { notes.append(note) }
        }
        await client.shutdown()
        return notes
    }

    /// The lane flags the bench gives its runs, parsed as `kiln build` parses them.
    struct ProbeArguments: ParsableArguments {
        @Option(name: [.customLong("platforms"), .customLong("platform")]) var platforms: [String] = []
        @OptionGroup var lane: LaneOptions
        @OptionGroup var store: StoreOptions
        @Option(name: .customLong("insecure-registry")) var insecureRegistries: [String] = []
    }
}
