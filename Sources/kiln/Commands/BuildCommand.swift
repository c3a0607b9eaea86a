import ArgumentParser
import KilnBuild
import KilnCore
import KilnDockerfile
import KilnLane
import KilnLayers
import KilnOCI
import KilnRegistry
import KilnStore

struct BuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build a Dockerfile natively, or (without CONTEXT) run the build-and-pin lane.",
        discussion: """
            Without CONTEXT this is the lane: it finds every processor (registry.yaml files, see kiln.yaml), \
            keys each platform by exactly the files its COPY/ADD read, the Dockerfile, the build args and the \
            base image's digest, skips keys already built (this machine's store, then a kiln-KEY tag in the \
            registry), builds the rest, and with --push and --pin pushes them and rewrites each \
            registry.yaml's image pins, touching nothing else. With --check it builds nothing and exits 1 when \
            a pin does not match the current inputs.

              kiln build --push --pin
              kiln build --ref llm/litellm@1 --push --pin
              kiln build --check

            A run that builds only some of a processor's platforms (--platforms on a native runner) pushes \
            those platform manifests and their key tags, and moves no version tag and writes no pin: \
            kiln assemble --pin does both once every platform is pushed. --shard I/N builds one runner's \
            share of the processors (dealt out by repository) for a CI matrix.

              kiln build --push --platforms linux/arm64 --shard 2/4

            With CONTEXT it builds one Dockerfile. It reads the Dockerfile as BuildKit does, pulls each base \
            image by digest and reuses its layers untouched, writes one deterministic layer per COPY/ADD, and \
            writes the config itself. Times come from SOURCE_DATE_EPOCH (or 0), so the same inputs always give \
            the same digests. With several platforms the result is an OCI image index, and layers that come \
            out the same for every platform are one blob.

            The result goes to an OCI layout (-o, default oci:kiln-out:latest) or a registry (-t). RUN steps go \
            to buildah (--isolation oci with runc, each step in its own namespaces; storage in a private folder), one segment at a time from the deepest \
            checkpoint already recorded under the step's key, so an unchanged RUN never runs again; the steps \
            after a stage's last RUN are built natively. A RUN for another architecture needs QEMU registered \
            with binfmt_misc.

            Examples:
              kiln build -f tools/llm/litellm/1/Dockerfile .
              kiln build -f app/Dockerfile --platform linux/amd64,linux/arm64 \\
                  -t ghcr.io/acme/app:v1 .
              kiln build -f Dockerfile --build-arg VERSION=1.2 -o oci:out:v1 ./context
            """)

    @Argument(
        help: ArgumentHelp(
            "The build context of a single Dockerfile build; omit it to run the lane.", valueName: "context"))
    var context: String?

    @Option(
        name: [.short, .customLong("file")],
        help: ArgumentHelp("The Dockerfile (default: CONTEXT/Dockerfile).", valueName: "path"))
    var file: String?

    @Option(
        name: [.customLong("platform"), .customLong("platforms")],
        help: ArgumentHelp("Comma-separated platforms to build (repeatable).", valueName: "os/arch,..."))
    var platform: [String] = []

    @Option(help: ArgumentHelp("Build this stage instead of the last one.", valueName: "stage"))
    var target: String?

    @Option(
        name: [.short, .customLong("tag")],
        help: ArgumentHelp("Push the result to this registry reference.", valueName: "registry/repository:tag"))
    var tag: String?

    @Option(
        name: [.short, .customLong("output")],
        help: ArgumentHelp("Write the result to this OCI layout.", valueName: "oci:dir[:tag]"))
    var outputTarget: String?

    @Flag(help: "Lane: push what was built, and the key tags that let other runners skip it.")
    var push = false

    @Flag(help: "Lane: rewrite each registry.yaml's pins once its pushes succeeded (needs --push).")
    var pin = false

    @Flag(help: "Lane: build nothing; exit 1 when a pin does not match the current inputs.")
    var check = false

    @Option(
        help: ArgumentHelp(
            "Lane, with --pin: write the pin pull request's title (first line) and body (each pin, old → new, and why) here.",
            valueName: "file"))
    var summary: String?

    @OptionGroup(title: "Lane options") var lane: LaneOptions

    @OptionGroup var registry: RegistryOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if tag != nil && outputTarget != nil {
            throw ValidationError("Give either -t REFERENCE (push) or -o oci:DIR[:TAG] (layout), not both.")
        }
        if context != nil {
            if push || pin || check || summary != nil || !lane.refs.isEmpty {
                throw ValidationError(
                    "--push, --pin, --check, --summary and --ref belong to the lane: run kiln build without a CONTEXT (use -t REFERENCE to push one build)."
                )
            }
        } else {
            if tag != nil || outputTarget != nil || file != nil || target != nil {
                throw ValidationError(
                    "-f, -t, -o and --target need a CONTEXT (kiln build -f Dockerfile CONTEXT); without one kiln build runs the lane."
                )
            }
            if pin && !push {
                throw ValidationError("--pin needs --push: a digest is pinned only once the registry has the image.")
            }
            if summary != nil && !pin {
                throw ValidationError("--summary describes the pins a run writes: add --push --pin.")
            }
            if check && (push || pin) {
                throw ValidationError("--check builds and pushes nothing; drop --push and --pin.")
            }
        }
    }

    func run() async throws {
        guard let context else { return try await runLane() }
        try await Output.reportingAsync(json: output.json) {
            var layerOptions = try LayerOptions.standard(environment: Environment.current)
            layerOptions.compression = .gzip(level: lane.level)
            var options = BuildOptions(platforms: try parsePlatforms(), layerOptions: layerOptions)
            options.buildArgs = try lane.parsedBuildArgs()
            options.metadata = lane.metadata
            options.target = target
            options.binfmtDirectory = Emulation.directory(environment: Environment.current)
            var executor = try lane.executor()
            let json = output.json
            executor.log = { line in
                Output.errorLine(json ? Output.jsonText(["event": "output", "line": line]) : "buildah | \(line)")
            }
            options.executor = executor
            let destination: BuildRequest.Output =
                try tag.map { .registry(try ImageReference(parsing: $0)) }
                ?? .layout(try LayoutReference(parsing: outputTarget ?? "oci:kiln-out:latest"))
            let request = BuildRequest(
                dockerfile: file ?? FilePaths.join(context, "Dockerfile"), context: context, options: options,
                output: destination)
            let store = try store.open()
            store.sweepLeftovers()
            let outcome = try await registry.withClient { client in
                try await ImageBuild.run(request, client: client, store: store)
            }
            for name in outcome.result.unusedBuildArgs {
                Output.errorLine("warning: --build-arg \(name) was not used by any ARG")
            }
            render(outcome.result, destination: outcome.destination)
        }
    }

    private func runLane() async throws {
        try await runLaneCommand(
            check ? .check : .build, lane: lane, platforms: platform, registry: registry, store: store, output: output,
            push: push, pin: pin, summary: summary, failing: [.stale])
    }

    private func parsePlatforms() throws(PlatformError) -> [Platform] {
        let texts = platform.flatMap { $0.split(separator: ",").map(String.init) }
        return texts.isEmpty ? [.host] : try Platform.buildable(texts)
    }

    private func render(_ result: BuildResult, destination: String) {
        if output.json {
            struct Report: Encodable {
                var destination: String
                var digest: String
                var mediaType: String
                var platforms: [String: String]
                var bases: [String]
                var unusedBuildArgs: [String]
                var executorRuns: Int
                var stepsRun: Int
                var stepsReused: Int
                /// Each RUN: from its checkpoint, reused by what it read, or run (and the first
                /// changed path it had read).
                var runSteps: [RunStepReport]
            }
            let runSteps = result.runDecisions.map(RunStepReport.init)
            var platforms = [String: String]()
            for image in result.bundle.images {
                platforms[image.platform.description] = image.manifest.descriptor.digest.description
            }
            Output.json(
                Report(
                    destination: destination, digest: result.bundle.root.digest.description,
                    mediaType: result.bundle.root.mediaType.rawValue, platforms: platforms,
                    bases: result.bases.map(\.reference.description),
                    unusedBuildArgs: result.unusedBuildArgs, executorRuns: result.executorRuns,
                    stepsRun: result.stepsRun, stepsReused: result.stepsReused, runSteps: runSteps))
        } else {
            Output.line("\(destination)@\(result.bundle.root.digest)")
            for image in result.bundle.images {
                Output.line("  \(image.platform)  \(image.manifest.descriptor.digest)")
            }
        }
    }
}
