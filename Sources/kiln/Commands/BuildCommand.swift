import ArgumentParser
import KilnBuild
import KilnCore
import KilnDockerfile
import KilnLayers
import KilnOCI
import KilnRegistry
import KilnStore

struct BuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build a Dockerfile natively, without a daemon, for one or more platforms.",
        discussion: """
            Reads the Dockerfile as BuildKit does, pulls each base image by digest and reuses its
            layers untouched, writes one deterministic layer per COPY/ADD, and writes the config
            itself. Times come from SOURCE_DATE_EPOCH (or 0), so the same inputs always give the
            same digests. With several platforms the result is an OCI image index, and layers that
            come out the same for every platform are one blob.

            The result goes to an OCI layout (-o, default oci:kiln-out:latest) or a registry (-t).
            RUN needs a container runtime and is refused before any work is done.

            Examples:
              kiln build -f tools/llm/litellm/1/Dockerfile .
              kiln build -f app/Dockerfile --platform linux/amd64,linux/arm64 -t ghcr.io/acme/app:v1 .
              kiln build -f Dockerfile --build-arg VERSION=1.2 -o oci:out:v1 --json ./context
            """)

    @Argument(help: ArgumentHelp("The build context: the directory COPY and ADD sources are relative to.", valueName: "context"))
    var context: String

    @Option(name: [.short, .customLong("file")], help: ArgumentHelp("The Dockerfile (default: CONTEXT/Dockerfile).", valueName: "path"))
    var file: String?

    @Option(help: ArgumentHelp("Comma-separated platforms to build (repeatable).", valueName: "os/arch,..."))
    var platform: [String] = []

    @Option(name: .customLong("build-arg"), help: ArgumentHelp("Set an ARG (repeatable); NAME alone takes it from the environment.", valueName: "NAME=VALUE"))
    var buildArgs: [String] = []

    @Option(help: ArgumentHelp("Build this stage instead of the last one.", valueName: "stage"))
    var target: String?

    @Option(name: [.short, .customLong("tag")], help: ArgumentHelp("Push the result to this registry reference.", valueName: "registry/repository:tag"))
    var tag: String?

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Write the result to this OCI layout.", valueName: "oci:dir[:tag]"))
    var outputTarget: String?

    @Option(help: "gzip compression level of new layers, 0 (none) to 9 (smallest).")
    var level: Int = 6

    @OptionGroup var registry: RegistryOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard (0...9).contains(level) else { throw ValidationError("--level takes 0 to 9, e.g. --level 6.") }
        if tag != nil && outputTarget != nil { throw ValidationError("Give either -t REFERENCE (push) or -o oci:DIR[:TAG] (layout), not both.") }
    }

    func run() async throws {
        try await Output.reportingAsync(json: output.json) {
            let dockerfilePath = file ?? FilePaths.join(context, "Dockerfile")
            let text = String(decoding: try ReadableFile.readAll(path: dockerfilePath, limit: 4 << 20), as: UTF8.self)
            let dockerfile = try Dockerfile(parsing: text, file: dockerfilePath)
            let buildContext = try BuildContext(root: context, dockerfile: dockerfilePath)
            let platforms = try parsePlatforms()
            let target = try tag.map { (text) throws(RegistryError) in try ImageReference(parsing: text) }
            let layout = try LayoutReference(parsing: outputTarget ?? "oci:kiln-out:latest")
            var layerOptions = try LayerOptions.standard(environment: Environment.current)
            layerOptions.compression = .gzip(level: level)
            var options = BuildOptions(platforms: platforms, layerOptions: layerOptions)
            options.buildArgs = try parseBuildArgs()
            options.target = self.target
            let store = try store.open()
            try await registry.withClient { client in
                let builder = Builder(
                    dockerfile: dockerfile, context: buildContext, store: store,
                    bases: RegistryBaseImages(client: client, store: store), options: options)
                _ = try builder.preflight()
                let result = try await builder.build()
                for name in result.unusedBuildArgs {
                    Output.errorLine("warning: --build-arg \(name) was not used by any ARG")
                }
                if let target {
                    try Self.stage(result.bundle, in: store)
                    let mount = result.bases.compactMap { try? ImageReference(parsing: $0).repository }
                        .first { $0.registry == target.repository.registry }
                    let report = try await ImagePusher(client: client).push(result.bundle.root, from: store, to: target, mountFrom: mount)
                    render(result, destination: report.reference.description)
                } else {
                    try OCILayout(root: layout.directory).write(result.bundle, tag: layout.tag, layersFrom: store)
                    render(result, destination: layout.description)
                }
            }
        }
    }

    /// Puts configs, manifests and the index in the store, so it can serve the whole image to a push.
    static func stage(_ bundle: ImageBundle, in store: ContentStore) throws(StoreError) {
        for image in bundle.images {
            _ = try store.put(image.config.bytes, mediaType: image.config.descriptor.mediaType)
            _ = try store.put(image.manifest.bytes, mediaType: image.manifest.descriptor.mediaType)
        }
        if case let .multiPlatform(index, _) = bundle { _ = try store.put(index.bytes, mediaType: index.descriptor.mediaType) }
    }

    private func parsePlatforms() throws(PlatformError) -> [Platform] {
        let texts = platform.flatMap { $0.split(separator: ",").map(String.init) }
        guard !texts.isEmpty else { return [.host] }
        var result = [Platform]()
        for text in texts {
            let parsed = try Platform(parsing: text)
            if !result.contains(parsed) { result.append(parsed) }
        }
        return result
    }

    private func parseBuildArgs() throws(BuildError) -> [String: String] {
        var result = [String: String]()
        for pair in buildArgs {
            if let equals = pair.firstIndex(of: "=") {
                result[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            } else if let value = Environment.current[pair] {
                result[pair] = value
            } else {
                throw .input("--build-arg \(pair) has no value and no environment variable \(pair) is set", location: nil)
            }
        }
        return result
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
            }
            var platforms = [String: String]()
            for image in result.bundle.images { platforms[image.platform.description] = image.manifest.descriptor.digest.description }
            Output.json(
                Report(
                    destination: destination, digest: result.bundle.root.digest.description,
                    mediaType: result.bundle.root.mediaType.rawValue, platforms: platforms, bases: result.bases,
                    unusedBuildArgs: result.unusedBuildArgs))
        } else {
            Output.line("\(destination)@\(result.bundle.root.digest)")
            for image in result.bundle.images {
                Output.line("  \(image.platform)  \(image.manifest.descriptor.digest)")
            }
        }
    }
}
