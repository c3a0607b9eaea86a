import ArgumentParser
import KilnCore
import KilnLane
import KilnLayers
import KilnOCI
import KilnStore

struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Assemble images.", subcommands: [ImageCreate.self])
}

struct ImageCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Make an image from scratch with one layer holding a directory, as an OCI layout.",
        discussion: """
            The layer is made once and shared by every platform's image; with more than one
            --platform the result is an OCI image index. The layout can be read by skopeo and umoci:

              kiln image create --from ./app --prefix /app \\
                  --platform linux/amd64,linux/arm64 \\
                  --workdir /app --cmd /app/run.sh -o oci:out:v1
              skopeo inspect --raw oci:out:v1
            """)

    @Option(help: ArgumentHelp("The directory whose contents become the layer.", valueName: "dir"))
    var from: String

    @Option(help: ArgumentHelp("Where the contents go in the image.", valueName: "path"))
    var prefix: String = "/"

    @Option(help: ArgumentHelp("Comma-separated platforms.", valueName: "os/arch,..."))
    var platform: String = "linux/amd64"

    @Option(help: ArgumentHelp("An environment variable for the image (repeatable).", valueName: "KEY=VALUE"))
    var env: [String] = []

    @Option(help: ArgumentHelp("The working directory.", valueName: "path"))
    var workdir: String?

    @Option(help: ArgumentHelp("One word of the entrypoint (repeat for each).", valueName: "word"))
    var entrypoint: [String] = []

    @Option(help: ArgumentHelp("One word of the default command (repeat for each).", valueName: "word"))
    var cmd: [String] = []

    @Option(
        name: [.short, .customLong("output")],
        help: ArgumentHelp("The OCI layout to write.", valueName: "oci:dir[:tag]"))
    var outputTarget: String

    @OptionGroup var encoding: LayerEncodingOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        for pair in env where !pair.contains("=") {
            throw ValidationError("--env takes KEY=VALUE, e.g. --env PORT=8000 (got '\(pair)').")
        }
    }

    func run() throws {
        try Output.reporting(json: output.json) {
            let platforms = try platform.split(separator: ",").map { (text) throws(PlatformError) in
                try Platform(buildable: String(text))
            }
            let target = try LayoutReference(parsing: outputTarget)
            let store = try store.open()
            var runtime = ContainerConfig()
            runtime.env = env.isEmpty ? nil : env
            runtime.workingDir = workdir
            runtime.entrypoint = entrypoint.isEmpty ? nil : entrypoint
            runtime.cmd = cmd.isEmpty ? nil : cmd
            let request = DirectoryImageRequest(
                entries: try encoding.scanner(prefix: prefix).entries(under: from), prefix: prefix,
                platforms: platforms,
                runtime: runtime, layerOptions: try encoding.layerOptions(), output: target)
            let (bundle, layer) = try DirectoryImage.create(request, store: store)
            render(bundle, layer: layer, target: target)
        }
    }

    private func render(_ bundle: ImageBundle, layer: LayerResult, target: LayoutReference) {
        if output.json {
            struct Report: Encodable {
                var target: String
                var digest: String
                var mediaType: String
                var layer: String
                var platforms: [String: String]
            }
            var platforms = [String: String]()
            for image in bundle.images {
                platforms[image.platform.description] = image.manifest.descriptor.digest.description
            }
            Output.json(
                Report(
                    target: target.description, digest: bundle.root.digest.description,
                    mediaType: bundle.root.mediaType.rawValue, layer: layer.digest.description, platforms: platforms))
        } else {
            Output.line("\(target)@\(bundle.root.digest)")
            for image in bundle.images {
                Output.line("  \(image.platform)  \(image.manifest.descriptor.digest)")
            }
        }
    }
}
