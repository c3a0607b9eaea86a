import ArgumentParser
import KilnOCI
import KilnRegistry

struct ResolveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve",
        abstract: "Print a reference pinned to its digest.",
        discussion: """
            Asks the registry which manifest or index the tag names now and prints REF@sha256:….

            Examples:
              kiln resolve python:3.11-slim
              kiln resolve ghcr.io/acme/llm-litellm:v1 --json
            """)

    @Argument(help: ArgumentHelp("The image.", valueName: "reference"))
    var reference: String

    @OptionGroup var registry: RegistryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await Output.reportingAsync(json: output.json) {
            let parsed = try ImageReference(parsing: reference)
            let manifest = try await registry.withClient { client in try await client.fetchManifest(parsed) }
            let pinned = ImageReference(repository: parsed.repository, tag: parsed.tag, digest: manifest.digest)
            if output.json {
                Output.json([
                    "reference": parsed.description, "pinned": pinned.description,
                    "digest": manifest.digest.description,
                    "mediaType": manifest.mediaType.rawValue,
                ])
            } else {
                Output.line(pinned.description)
            }
        }
    }
}
