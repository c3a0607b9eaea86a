import ArgumentParser
import KilnBuild
import KilnCore
import KilnLane
import KilnLayers
import KilnOCI
import KilnProcessors

/// Flags of the lane commands (`build` without a context, `plan`, `warm`, `verify`): which
/// repository, which processors, and the `kiln.yaml` settings a flag may override.
struct LaneOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The repository root (default: the nearest folder up holding kiln.yaml, else .git).", valueName: "dir"))
    var root: String?

    @Option(
        name: .customLong("ref"),
        help: ArgumentHelp("Only this processor (repeatable or comma-separated).", valueName: "ns/name@ver"))
    var refs: [String] = []

    @Option(
        help: ArgumentHelp(
            "Registry for the repository template's {registry} (kiln.yaml: registry).", valueName: "host[:port]"))
    var registry: String?

    @Option(
        help: ArgumentHelp(
            "Owner for the template's {owner} (kiln.yaml: owner; default $GITHUB_REPOSITORY_OWNER).", valueName: "name")
    )
    var owner: String?

    @Option(
        name: .customLong("repository"),
        help: ArgumentHelp("Where each processor's image goes (kiln.yaml: repository).", valueName: "template"))
    var repositoryTemplate: String?

    @Option(
        name: .customLong("cache-repo"),
        help: ArgumentHelp(
            "Keep the key tags in this repository instead of each target (kiln.yaml: cache-repo).",
            valueName: "repository"))
    var cacheRepository: String?

    @Option(
        name: .customLong("build-arg"),
        help: ArgumentHelp(
            "Set an ARG (repeatable); NAME alone takes it from the environment.", valueName: "NAME=VALUE"))
    var buildArgs: [String] = []

    @Option(
        name: .customLong("label"),
        help: ArgumentHelp(
            "Set a label in every image's config, over its Dockerfile's (repeatable; kiln.yaml: labels).",
            valueName: "KEY=VALUE"))
    var labels: [String] = []

    @Option(
        name: .customLong("annotation"),
        help: ArgumentHelp(
            "Set an annotation on every image's manifests and index (repeatable; kiln.yaml: annotations).",
            valueName: "KEY=VALUE"))
    var annotations: [String] = []

    @Option(
        name: .customLong("secret"),
        help: ArgumentHelp(
            "A secret for RUN --mount=type=secret,id=NAME (repeatable); its value never reaches a layer, log or report.",
            valueName: "id=NAME[,env=VAR|,src=FILE]"))
    var secrets: [String] = []

    @Option(
        help: ArgumentHelp(
            "Only this runner's share of the processors: share I of N, dealt out by repository (a CI matrix).",
            valueName: "I/N"))
    var shard: String?

    @Option(help: "gzip compression level of new layers, 0 (none) to 9 (smallest).")
    var level: Int = 6

    @Option(
        help: ArgumentHelp(
            "Processors keyed, built and pushed at once (kiln.yaml: jobs; default \(LaneSettings.defaultJobs)). Each processor's blob uploads have their own bound, --upload-jobs.",
            valueName: "n"))
    var jobs: Int?

    @Option(
        help: ArgumentHelp(
            "Unchanged processors (keyed from their memos: one registry HEAD each) checked at once, beside --jobs (default \(LaneSettings.defaultCheckJobs)); more hides a distant registry's round trips.",
            valueName: "n"))
    var checkJobs: Int?

    @Option(
        help: ArgumentHelp(
            "The lane's time budget, for the CI step summary (e.g. 10m, 90s; the runbooks' target is 10m).",
            valueName: "duration"))
    var budget: String = "10m"

    @Option(
        name: .customLong("sign-key"),
        help: ArgumentHelp(
            "Also push each provenance statement signed with this PEM private key (ECDSA P-256 or Ed25519), as a DSSE envelope under the image's sha256-HEX.att tag, as cosign attest does (kiln.yaml: sign-key).",
            valueName: "path"))
    var signKey: String?

    @Flag(
        name: .customLong("no-provenance"),
        help: "Push no provenance statement next to the images (kiln.yaml: provenance: false).")
    var noProvenance = false

    @Flag(
        name: .customLong("no-reuse-by-reads"),
        help:
            "Reuse RUN steps by their position only: no tracing, and a step after a changed COPY always runs (kiln.yaml: reuse-by-reads: false)."
    )
    var noReuseByReads = false

    @Option(
        name: .customLong("isolation"),
        help: ArgumentHelp(
            "How RUN steps are kept apart from this machine: oci (each step in its own mount, PID, IPC and UTS namespaces with runc; the default where runc is installed) or chroot (buildah's chroot: code in a step can reach the host as root) (kiln.yaml: isolation).",
            valueName: "oci|chroot"))
    var isolation: StepIsolation.Choice?

    /// `--budget` in seconds.
    var budgetSeconds: Double { Self.seconds(budget) ?? 600 }

    /// `90s`, `10m`, `1h`, or plain seconds.
    static func seconds(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
        if let unit = text.last, let scale = units[unit], let value = Double(text.dropLast()), value > 0 {
            return value * scale
        }
        return Double(text).flatMap { $0 > 0 ? $0 : nil }
    }

    func validate() throws {
        guard (0...9).contains(level) else { throw ValidationError("--level takes 0 to 9, e.g. --level 6.") }
        if Self.seconds(budget) == nil {
            throw ValidationError("--budget takes a duration such as 10m, 90s or 1h, not '\(budget)'.")
        }
        if let jobs, jobs < 1 { throw ValidationError("--jobs takes a positive number, e.g. --jobs 4.") }
        if let checkJobs, checkJobs < 1 {
            throw ValidationError("--check-jobs takes a positive number, e.g. --check-jobs 16.")
        }
        if let shard, Shard(parsing: shard) == nil {
            throw ValidationError(
                "--shard takes I/N with 1 <= I <= N, e.g. --shard 2/4 for the second of four runners; not '\(shard)'.")
        }
        for text in secrets where BuildahExecutor.Secret(parsing: text) == nil {
            throw ValidationError(
                "--secret takes id=NAME with env=VARIABLE or src=FILE, e.g. --secret id=pip_token,env=PIP_TOKEN; '\(text.split(separator: ",").first ?? "")…' is not that."
            )
        }
        for (flag, values) in [("--label", labels), ("--annotation", annotations)] {
            for text in values where !text.contains("=") || text.hasPrefix("=") {
                throw ValidationError(
                    "\(flag) takes KEY=VALUE, e.g. \(flag) org.opencontainers.image.vendor=Acme; not '\(text)'.")
            }
        }
        for text in refs.flatMap({ $0.split(separator: ",") }) where ProcessorRef(parsing: String(text)) == nil {
            throw ValidationError("--ref takes NAMESPACE/NAME@VERSION, e.g. --ref llm/litellm@1, not '\(text)'.")
        }
    }

    /// The settings for a run, from kiln.yaml and these flags.
    func settings(platforms: [String]) throws -> LaneSettings {
        let root = LaneConfig.findRoot(explicit: self.root, from: ".")
        var config = try LaneConfig.load(root: root)
        if let registry { config.registry = registry }
        if let owner { config.owner = owner }
        if config.owner == nil { config.owner = Environment.current["GITHUB_REPOSITORY_OWNER"] }
        if let repositoryTemplate { config.repositoryTemplate = repositoryTemplate }
        if let cacheRepository { config.cacheRepository = cacheRepository }
        var layerOptions = try LayerOptions.standard(environment: Environment.current)
        layerOptions.compression = .gzip(level: level)
        config.buildArgs.merge(try parsedBuildArgs()) { _, flag in flag }
        var settings = LaneSettings(config: config, layerOptions: layerOptions)
        settings.baseSources = try config.baseSources()
        settings.refs = refs.flatMap { $0.split(separator: ",") }.compactMap { ProcessorRef(parsing: String($0)) }
        let texts = platforms.flatMap { $0.split(separator: ",").map(String.init) }
        if !texts.isEmpty {
            do {
                settings.platforms = try Platform.buildable(texts)
            } catch {
                throw LaneError.badFlag(flag: "--platforms", problem: error.description)
            }
        }
        // The flag beats kiln.yaml, which beats the default.
        settings.jobs = jobs ?? config.jobs ?? LaneSettings.defaultJobs
        settings.checkJobs = checkJobs ?? LaneSettings.defaultCheckJobs
        settings.binfmtDirectory = Emulation.directory(environment: Environment.current)
        settings.shard = shard.flatMap(Shard.init(parsing:))
        settings.labels = config.labels.merging(Self.pairs(labels)) { _, flag in flag }
        settings.annotations = config.annotations.merging(Self.pairs(annotations)) { _, flag in flag }
        // The same everywhere: kiln.yaml's, else the checkout's origin (a developer's and a
        // runner's agree), else the runner's variables.
        settings.source = config.source ?? GitRemote.source(root: root) ?? Self.githubSource(Environment.current)
        settings.provenance = !noProvenance && (config.provenance ?? true)
        if let path = signKey ?? config.signKey, settings.provenance {
            let full =
                path.hasPrefix("/") ? path : (signKey != nil ? FilePaths.absolute(path) : config.root + "/" + path)
            settings.signingKey = try SigningKey(pemFile: full)
        }
        let environment = Environment.current
        settings.revision = GitRevision.current(root: root, environment: environment)
        if let repository = Self.githubSource(environment), let run = environment["GITHUB_RUN_ID"], !run.isEmpty {
            settings.builderID = repository + "/actions/runs/" + run
            settings.invocationID = run + "/" + (environment["GITHUB_RUN_ATTEMPT"] ?? "1")
        }
        return settings
    }

    /// `KEY=VALUE` flags as a dictionary (a later flag for a key wins).
    static func pairs(_ texts: [String]) -> [String: String] {
        var result = [String: String]()
        for text in texts {
            guard let equals = text.firstIndex(of: "=") else { continue }
            result[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        return result
    }

    /// The repository's URL on GitHub, from the runner's variables: what GHCR links a package
    /// to. Nil outside Actions (set `source` in kiln.yaml for the same digests everywhere).
    static func githubSource(_ environment: [String: String]) -> String? {
        guard let server = environment["GITHUB_SERVER_URL"], let repository = environment["GITHUB_REPOSITORY"],
            !server.isEmpty, !repository.isEmpty
        else { return nil }
        return server + "/" + repository
    }

    /// `--label` and `--annotation` for one Dockerfile's build (no lane defaults).
    var metadata: ImageMetadata {
        ImageMetadata(labels: Self.pairs(labels), annotations: Self.pairs(annotations))
    }

    /// The executor for RUN steps, with the `--secret`s; its working folders are private and
    /// outside the store (`RuntimeDirectory`).
    /// - Parameter config: the repository's kiln.yaml, when the caller has loaded it already.
    /// - Throws: `BuildError` when the isolation asked for is not available here.
    func executor(config: LaneConfig? = nil) throws(BuildError) -> BuildahExecutor {
        var executor = BuildahExecutor(runtimeRoot: RuntimeDirectory.path(environment: Environment.current))
        executor.secrets = secrets.compactMap(BuildahExecutor.Secret.init(parsing:))
        // A kiln.yaml that does not load is reported by the lane's settings; here it only means
        // the default.
        let config = config ?? (try? LaneConfig.load(root: LaneConfig.findRoot(explicit: root, from: ".")))
        executor.reusesByReads = !noReuseByReads && (config?.reuseByReads ?? true)
        let choice = isolation ?? config?.isolation.flatMap(StepIsolation.Choice.init(rawValue:))
        (executor.isolation, executor.isolationWarning) = try StepIsolation.resolve(choice)
        return executor
    }

    /// `--build-arg`s as a dictionary.
    func parsedBuildArgs() throws(BuildError) -> [String: String] {
        var result = [String: String]()
        for pair in buildArgs {
            if let equals = pair.firstIndex(of: "=") {
                result[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            } else if let value = Environment.current[pair] {
                result[pair] = value
            } else {
                throw .input(
                    "--build-arg \(pair) has no value and no environment variable \(pair) is set", location: nil)
            }
        }
        return result
    }
}

extension StepIsolation.Choice: ExpressibleByArgument {}
