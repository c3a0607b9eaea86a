import ArgumentParser
import KilnCore
import KilnOCI
import KilnRegistry

struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show an image's manifest, platforms and config.",
        discussion: """
            Without --platform, lists the platforms of an index (or describes a single image). With \
            --platform, resolves that platform's manifest and config. --raw prints the manifest bytes exactly \
            as the registry sent them.

            Examples:
              kiln inspect python:3.11-slim
              kiln inspect python:3.11-slim --platform linux/arm64 --json
              kiln inspect --raw ghcr.io/acme/llm-litellm:v1 | sha256sum
            """)

    @Argument(help: ArgumentHelp("The image.", valueName: "reference"))
    var reference: String

    @Flag(help: "Print the manifest bytes as received.")
    var raw = false

    @Option(help: ArgumentHelp("The platform to resolve.", valueName: "os/arch[/variant]"))
    var platform: String?

    @OptionGroup var registry: RegistryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await Output.reportingAsync(json: output.json) {
            let parsed = try ImageReference(parsing: reference)
            let wanted = try platform.map { (text) throws(PlatformError) in try Platform(parsing: text) }
            try await registry.withClient { client in
                if raw {
                    let manifest = try await client.fetchManifest(parsed)
                    Output.raw(manifest.bytes)
                    return
                }
                if let wanted {
                    let resolved = try await client.resolve(parsed, platforms: [wanted])
                    render(resolved, image: resolved.images[0])
                } else {
                    let manifest = try await client.fetchManifest(parsed)
                    try render(manifest, reference: parsed)
                }
            }
        }
    }

    private struct Summary: Encodable {
        var reference: String
        var digest: String
        var mediaType: String
        var platforms: [String: String]?
        var platform: String?
        var config: ContainerConfig?
        var layers: [String]?
    }

    private func render(_ manifest: FetchedManifest, reference: ImageReference) throws {
        var summary = Summary(
            reference: reference.description, digest: manifest.digest.description,
            mediaType: manifest.mediaType.rawValue)
        if manifest.mediaType.isIndex {
            let index = try CanonicalJSON.decode(ImageIndex.self, from: manifest.bytes, what: "index")
            var platforms = [String: String]()
            for entry in index.manifests {
                platforms[entry.platform?.description ?? "unknown"] = entry.digest.description
            }
            summary.platforms = platforms
        } else {
            let image = try CanonicalJSON.decode(ImageManifest.self, from: manifest.bytes, what: "manifest")
            summary.layers = image.layers.map(\.digest.description)
        }
        emit(summary)
    }

    private func render(_ resolved: ResolvedImage, image: ResolvedPlatformImage) {
        emit(
            Summary(
                reference: resolved.reference.description, digest: image.manifest.digest.description,
                mediaType: image.manifest.mediaType.rawValue, platform: image.platform.description,
                config: image.config.config,
                layers: image.imageManifest.layers.map(\.digest.description)))
    }

    private func emit(_ summary: Summary) {
        if output.json {
            Output.json(summary)
            return
        }
        Output.line("\(summary.reference)@\(summary.digest)")
        Output.line("  media type  \(summary.mediaType)")
        for (platform, digest) in (summary.platforms ?? [:]).sorted(by: { $0.key < $1.key }) {
            Output.line("  \(platform)  \(digest)")
        }
        if let platform = summary.platform { Output.line("  platform    \(platform)") }
        for layer in summary.layers ?? [] { Output.line("  layer       \(layer)") }
        if let config = summary.config {
            if let entrypoint = config.entrypoint { Output.line("  entrypoint  \(entrypoint)") }
            if let cmd = config.cmd { Output.line("  cmd         \(cmd)") }
        }
    }
}
