import ArgumentParser
import KilnBuild
import KilnCore
import KilnLane
import KilnOCI
import KilnPin
import KilnProcessors
import KilnRegistry
import KilnStore

/// Runs one lane mode and prints its reports: the body of `build` (without a context), `plan`,
/// `warm` and `verify`.
func runLaneCommand(
    _ mode: Lane.Mode, lane: LaneOptions, platforms: [String], registry: RegistryOptions, store: StoreOptions,
    output: OutputOptions,
    push: Bool = false, pin: Bool = false, summary: String? = nil, verifyProvenance: Bool = false,
    verifyingKey: String? = nil, failing: Set<ProcessorReport.Status>
) async throws {
    var status = ExitCode.success
    let started = Elapsed.now()
    try await Output.reportingAsync(json: output.json) {
        var settings = try lane.settings(platforms: platforms)
        settings.push = push
        settings.pin = pin
        settings.verifyProvenance = verifyProvenance || verifyingKey != nil
        if let verifyingKey { settings.verifyingKey = try VerifyingKey(pemFile: verifyingKey) }
        let store = try store.open()
        // Held for the whole run: a store prune waits for the lane instead of removing a blob
        // it is about to read.
        let using = try StoreLock(root: store.root, mode: .shared)
        defer { using.release() }
        settings.executor = try lane.executor(config: settings.config)
        let progress = LaneProgress(json: output.json, quiet: output.quiet, mode: output.progress)
        progress.begin(root: settings.config.root, jobs: settings.jobs)
        let reports = try await registry.withClient { client in
            try await Lane(settings: settings, store: store, client: client, observer: progress.observe).run(mode)
        }
        if output.json || !output.quiet {
            LaneOutput.render(reports, json: output.json)
        } else {
            // Quiet: only what went wrong.
            for report in reports where report.status == .failed || report.status == .stale {
                Output.errorLine("kiln: \(report.ref) \(report.status.rawValue): \(report.message ?? "")")
            }
        }
        for report in reports where report.status == .notBuildable && !output.quiet {
            Output.errorLine("warning: \(report.ref) was not built: \(report.message ?? "")")
        }
        let partial = reports.filter(\.partial)
        if pin, !partial.isEmpty {
            // A flag that did nothing says so.
            Output.errorLine(
                "note: --pin wrote no pin for \(partial.count) processor\(partial.count == 1 ? "" : "s") built for some of \(partial.count == 1 ? "its" : "their") platforms only (\(partial.prefix(3).map(\.ref).joined(separator: ", "))\(partial.count > 3 ? ", …" : "")): a pin names the index over every platform; kiln assemble --pin writes it once all are pushed"
            )
        }
        let seconds = Elapsed.seconds(since: started)
        let actions = GitHubActions(environment: Environment.current)
        if let summary {
            let commit = Environment.current["GITHUB_SHA"]
            try PinSummary.write(reports, to: summary, commit: commit, seconds: seconds)
            try actions.output("pr-title", PinSummary.title(reports, commit: commit))
        }
        try actions.report(
            reports, command: mode.commandName, seconds: seconds, budget: lane.budgetSeconds, json: output.json)
        status = LaneOutput.exitCode(reports, failing: failing)
    }
    if status != .success { throw status }
}

/// The flags `plan`, `warm` and `verify` share.
struct LaneRunOptions: ParsableArguments {
    @Option(
        name: [.customLong("platforms"), .customLong("platform")],
        help: ArgumentHelp("Only these platforms.", valueName: "os/arch,..."))
    var platforms: [String] = []

    @OptionGroup(title: "Lane options") var lane: LaneOptions
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func run(
        _ mode: Lane.Mode, failing: Set<ProcessorReport.Status> = [], verifyProvenance: Bool = false,
        verifyingKey: String? = nil
    ) async throws {
        try await runLaneCommand(
            mode, lane: lane, platforms: platforms, registry: registry, store: store, output: output,
            verifyProvenance: verifyProvenance, verifyingKey: verifyingKey, failing: failing)
    }
}

struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what the lane would build, and why, without building.",
        discussion: """
            Keys every processor and platform as `kiln build` would and looks each key up (this machine's \
            store, then the registry). A key that is missing is listed with the first input that differs from \
            the last build kiln knows of: a file a COPY reads, the Dockerfile, a build arg, or a base image \
            that moved.

              kiln plan
              kiln plan --ref llm/litellm@1 --json
              kiln plan --exit-code --quiet || echo "something to build"
            """)

    @Flag(name: .customLong("exit-code"), help: "Exit 1 when something would be built (0 when every key is built).")
    var exitCode = false

    @OptionGroup var options: LaneRunOptions

    func run() async throws {
        try await options.run(.plan, failing: exitCode ? [.wouldBuild] : [])
    }
}

struct WarmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warm",
        abstract: "Pre-warm this machine's cache so the next lane run starts hot.",
        discussion: """
            Resolves every base image and downloads its layers, hashes every processor's inputs (filling the \
            stat cache, so the next run re-checks files without reading them), and fetches the cache records \
            of keys already built elsewhere. For a processor with RUN steps that is built already, fetches \
            each step's checkpoint and read set and the indexes of the layers below it, so the reuse check \
            after a code edit needs nothing more from the registry; for one not built yet, builds its RUN \
            checkpoints (kept in the store, pushed by the next build). Pushes nothing.

              kiln warm
              kiln warm --ref llm/litellm@1 --cache-dir /mnt/cache/kiln
            """)

    @OptionGroup var options: LaneRunOptions

    func run() async throws {
        try await options.run(.warm)
    }
}

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Audit pins: each exists in its registry and matches the current inputs.",
        discussion: """
            For every processor, checks that each pinned digest (image.platforms.*, image.oci) is in its \
            registry, and that it is the image kiln builds from the processor's current inputs. Lists the \
            drifted ones and exits 1 if there are any.

              kiln verify
              kiln verify --provenance --json

            With --provenance, each pinned image must also have a provenance statement attached (an \
            in-toto artifact whose subject is the image, found through the referrers API or the \
            sha256-HEX tag) that records what the current inputs give: the key, each file and base by \
            digest, the parameters, and a builder that is kiln or this repository's workflow. With \
            --key, only statements signed by that public key count (DSSE envelopes under the image's \
            sha256-HEX.att tag, as kiln build --sign-key pushes them): an unsigned, re-signed or \
            altered statement makes the pin stale.

              kiln verify --provenance --key kiln-provenance.pub
            """)

    @Flag(help: "Also check each pinned image's provenance against the current inputs.")
    var provenance = false

    @Option(
        name: .customLong("key"),
        help: ArgumentHelp(
            "A PEM public key (ECDSA P-256 or Ed25519): only provenance it signed counts (implies --provenance).",
            valueName: "path"))
    var key: String?

    @OptionGroup var options: LaneRunOptions

    func run() async throws {
        try await options.run(.verify, failing: [.stale], verifyProvenance: provenance, verifyingKey: key)
    }
}

struct AssembleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assemble",
        abstract: "After per-platform runs: tag (and pin) each processor's multi-platform index. Builds nothing.",
        discussion: """
            When a lane is split across runners — one per platform (native arm64 runners need no QEMU), or \
            --shard I/N over many — each `kiln build --push --platforms P` pushes its platform manifests and \
            their kiln-KEY tags, and moves no version tag and writes no pin. This final step keys every \
            processor again, finds each platform's image by its key tag in the registry, and pushes the index \
            over all of them under the version tag; with --pin it writes the pins. A processor with a platform \
            that no run pushed fails, naming the platform; the others are still assembled.

              kiln build --push --platforms linux/amd64      # on an amd64 runner
              kiln build --push --platforms linux/arm64      # on an arm64 runner
              kiln assemble --pin                            # once both are done
            """)

    @Flag(help: "Rewrite each registry.yaml's pins once its index is pushed.")
    var pin = false

    @Option(
        help: ArgumentHelp(
            "Write the pin pull request's title (first line) and body (each pin, old → new, and why) here.",
            valueName: "file"))
    var summary: String?

    @OptionGroup(title: "Lane options") var lane: LaneOptions
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await runLaneCommand(
            .assemble, lane: lane, platforms: [], registry: registry, store: store, output: output, push: true,
            pin: pin, summary: summary, failing: [])
    }
}

struct PinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pin",
        abstract: "Pin a digest into a processor's registry.yaml by hand.",
        discussion: """
            Writes REPOSITORY@sha256:… under image.platforms.ARCH (with --platform) or image.oci, changing \
            only that value (or adding the key with the file's indentation), atomically. The same rules as the \
            lane's --pin. The registry is asked first: a digest the repository does not have, or (with \
            --platform) an image for another platform, is refused (--offline skips the check).

              kiln pin --ref llm/litellm@1 --platform amd64 \\
                  --oci ghcr.io/acme/llm-litellm@sha256:…
              kiln pin --ref llm/litellm@1 --oci ghcr.io/acme/llm-litellm@sha256:…
            """)

    @Option(help: ArgumentHelp("The processor.", valueName: "ns/name@ver"))
    var ref: String

    @Option(help: ArgumentHelp("Pin under image.platforms.ARCH instead of image.oci.", valueName: "arch"))
    var platform: String?

    @Option(help: ArgumentHelp("The image to pin.", valueName: "repository@sha256:..."))
    var oci: String

    @Option(
        help: ArgumentHelp(
            "The repository root (default: the nearest folder up holding kiln.yaml, else .git).", valueName: "dir"))
    var root: String?

    @Flag(help: "Pin without asking the registry whether it has the image.")
    var offline = false

    @OptionGroup var registryOptions: RegistryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await Output.reportingAsync(json: output.json) {
            guard let ref = ProcessorRef(parsing: ref) else {
                throw LaneError.badFlag(
                    flag: "--ref", problem: "it takes NAMESPACE/NAME@VERSION, e.g. llm/litellm@1, not '\(self.ref)'")
            }
            guard let at = oci.firstIndex(of: "@"), oci[oci.index(after: at)...].hasPrefix("sha256:"),
                (try? Digest(parsing: String(oci[oci.index(after: at)...]))) != nil
            else {
                throw LaneError.badFlag(flag: "--oci", problem: "it takes REPOSITORY@sha256:<64 hex>, not '\(oci)'")
            }
            let config = try LaneConfig.load(root: LaneConfig.findRoot(explicit: root, from: "."))
            guard let processor = try Discovery.processors(config).first(where: { $0.ref == ref }) else {
                throw LaneError.unknownRef(
                    ref.description, known: try Discovery.processors(config).map(\.ref.description))
            }
            let key: String?
            do {
                key = try platform.map { Lane.pinKey(try Platform(buildable: $0)) }
            } catch {
                throw LaneError.badFlag(flag: "--platform", problem: "\(error)")
            }
            if !offline {
                let reference = try ImageReference(parsing: oci)
                let expected = try platform.map { try Platform(buildable: $0) }
                try await registryOptions.withClient { client in
                    try await Self.check(reference, platform: expected, client: client)
                }
            }
            let edit = PinEdit(path: key.map { ["image", "platforms", $0] } ?? ["image", "oci"], value: oci)
            let changed = try YAMLPins.write([edit], toFileAt: processor.file, displayPath: processor.displayPath)
            if output.json {
                struct Report: Encodable {
                    var ref: String
                    var file: String
                    var key: String
                    var value: String
                    var changed: Bool
                }
                Output.json(
                    Report(
                        ref: ref.description, file: processor.displayPath, key: edit.dottedPath, value: oci,
                        changed: changed))
            } else {
                Output.line("\(processor.displayPath): \(edit.dottedPath) \(changed ? "pinned to" : "already") \(oci)")
            }
        }
    }
}

extension PinCommand {
    /// Refuses a pin the registry cannot serve: a digest the repository does not have, or (for a
    /// platform pin) anything but an image for that platform.
    static func check(_ reference: ImageReference, platform: Platform?, client: RegistryClient) async throws {
        guard let digest = reference.digest else { return }
        let offline = "(--offline pins it without asking)"
        guard let head = try await client.headManifest(reference) else {
            throw LaneError.badFlag(
                flag: "--oci",
                problem: "\(reference.repository) has no sha256:\(digest.short): push it first \(offline)")
        }
        guard let platform else { return }
        let fetched = try await client.fetchManifest(reference)
        guard head.mediaType.isImageManifest,
            let manifest = try? CanonicalJSON.decode(ImageManifest.self, from: fetched.bytes, what: "image")
        else {
            throw LaneError.badFlag(
                flag: "--oci",
                problem:
                    "sha256:\(digest.short) is no image manifest (an index?): a platform pin takes the platform's image \(offline)"
            )
        }
        let bytes = try await client.fetchBlob(manifest.config.digest, from: reference.repository, limit: 16 << 20)
        guard let config = try? CanonicalJSON.decode(ImageConfig.self, from: bytes, what: "config") else { return }
        guard config.os == platform.os, config.architecture == platform.architecture else {
            throw LaneError.badFlag(
                flag: "--oci",
                problem: "sha256:\(digest.short) is an image for \(config.platform), not \(platform) \(offline)")
        }
    }
}

extension Lane.Mode {
    /// The command a user typed for this mode.
    var commandName: String {
        switch self {
        case .plan: "plan"
        case .build: "build"
        case .check: "build --check"
        case .warm: "warm"
        case .verify: "verify"
        case .assemble: "assemble"
        }
    }
}
