import ArgumentParser
import KilnCore
import KilnOCI
import KilnRegistry
import KilnStore

struct PushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Push an image from an OCI layout to a registry.",
        discussion: """
            Pushes every blob, manifest and index of the layout's image: blobs the repository has
            are skipped, the rest go up in parallel (--jobs), then the platform manifests, then
            the index under the reference's tag. Prints the pushed digest.

            Examples:
              kiln push out:v1 ghcr.io/acme/tools/llm-litellm:v1
              kiln push oci:out:v1 127.0.0.1:5000/acme/app:v1 --json
              echo "$TOKEN" | kiln push out:v1 registry.example.com/app:v1 --username ci --password-stdin
            """)

    @Argument(help: ArgumentHelp("The OCI layout, with the tag to push when it holds several.", valueName: "layout[:tag]"))
    var layout: String

    @Argument(help: ArgumentHelp("Where to push.", valueName: "registry/repository:tag"))
    var reference: String

    @Option(name: .customLong("mount-from"), help: ArgumentHelp("Try to mount blobs from this repository of the same registry.", valueName: "repository"))
    var mountFrom: String?

    @OptionGroup var registry: RegistryOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await Output.reportingAsync(json: output.json) {
            let source = try LayoutReference(parsing: layout)
            let target = try ImageReference(parsing: reference)
            let mount = try mountFrom.map { (text) throws(RegistryError) in
                try ImageReference(parsing: text).repository
            }
            let oci = try OCILayout(existingAt: source.directory)
            let root = try oci.entry(tag: source.tag)
            let report = try await registry.withClient { client in
                try await ImagePusher(client: client).push(root, from: oci, to: target, mountFrom: mount)
            }
            render(report)
        }
    }

    private func render(_ report: PushReport) {
        let pinned = report.reference.pinned(to: report.root.digest)
        if output.json {
            struct Platform: Encodable {
                var platform: String?
                var digest: String
            }
            struct Report: Encodable {
                var reference: String
                var pinned: String
                var digest: String
                var mediaType: String
                var platforms: [Platform]
                var blobsUploaded: Int
                var blobsSkipped: Int
                var blobsMounted: Int
                var bytesUploaded: Int64
                var alreadyPresent: Bool
            }
            Output.json(
                Report(
                    reference: report.reference.description, pinned: pinned.description,
                    digest: report.root.digest.description, mediaType: report.root.mediaType.rawValue,
                    platforms: report.platforms.map { Platform(platform: $0.platform?.description, digest: $0.digest.description) },
                    blobsUploaded: report.uploaded, blobsSkipped: report.skipped, blobsMounted: report.mounted,
                    bytesUploaded: report.bytesUploaded, alreadyPresent: report.alreadyPresent))
        } else {
            Output.line(pinned.description)
            for entry in report.platforms where entry.platform != nil {
                Output.line("  \(entry.platform!)  \(entry.digest)")
            }
            if report.alreadyPresent {
                Output.errorLine("the tag already names this image; nothing to push")
                return
            }
            Output.errorLine(
                "uploaded \(report.uploaded) blobs (\(report.bytesUploaded) bytes), skipped \(report.skipped), mounted \(report.mounted)")
        }
    }
}
