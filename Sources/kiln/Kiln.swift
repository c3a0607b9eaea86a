import ArgumentParser
import KilnCore

@main
struct Kiln: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "A content-addressed build cache and image factory for container images.",
        discussion: """
            kiln builds OCI image layers itself, byte-identical on every machine, keeps them in a
            content-addressed store, and writes images as OCI layouts.

            Examples:
              kiln layer create --from ./app --prefix /app -o app.tar.gz
              kiln build -f tools/llm/litellm/1/Dockerfile --platform linux/amd64,linux/arm64 .
              kiln image create --from ./app --prefix /app --platform linux/amd64,linux/arm64 -o oci:out:v1
              kiln push out:v1 ghcr.io/acme/app:v1
              kiln resolve python:3.11-slim
              kiln digest app.tar.gz
            """,
        version: KilnVersion.current,
        subcommands: [
            BuildCommand.self, LayerCommand.self, ImageCommand.self, PushCommand.self, InspectCommand.self, ResolveCommand.self,
            DigestCommand.self, StoreCommand.self, VersionCommand.self,
        ]
    )
}
