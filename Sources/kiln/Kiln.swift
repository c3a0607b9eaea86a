import ArgumentParser
import Foundation
import KilnCore

@main
struct Kiln: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "A content-addressed build cache and image factory for container images.",
        discussion: """
            kiln builds container images for a repository of processors without a Docker daemon: \
            it keys every processor by its real inputs, skips what is already built (locally or in \
            the registry), assembles byte-identical OCI layers itself, pushes multi-arch images, \
            and pins their digests into each registry.yaml.

            The lane (run from the repository root):
              kiln plan                      what would be built, and why
              kiln build --push --pin        build what changed, push, pin
              kiln build --check             exit 1 if a pin is stale
              kiln verify                    every pin exists and is current
              kiln assemble --pin            tag and pin after per-platform runs

            One image:
              kiln build -f app/Dockerfile --platform linux/amd64,linux/arm64 -t REF .
              kiln layer create --from ./app --prefix /app -o app.tar.gz
              kiln push out:v1 ghcr.io/acme/app:v1
            """,
        version: KilnVersion.current,
        subcommands: [
            BuildCommand.self, PlanCommand.self, AssembleCommand.self, PinCommand.self, WarmCommand.self,
            VerifyCommand.self, PruneCommand.self, BenchCommand.self,
            LayerCommand.self, ImageCommand.self, PushCommand.self, InspectCommand.self, ResolveCommand.self,
            DigestCommand.self, StoreCommand.self, VersionCommand.self,
        ]
    )

    /// Installs the SIGINT/SIGTERM handlers (which stop buildah and remove temporary files and
    /// secrets) before any command runs.
    static func main() async {
        Interruption.install()
        // Folders removed in the background (buildah's storage) are gone before kiln exits,
        // whichever way it exits.
        atexit { ScratchDirectory.waitForRemovals() }
        await main(nil)
    }
}
