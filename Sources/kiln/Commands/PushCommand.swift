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
            Pushes every blob, manifest and index of the layout's image: blobs the repository has are skipped, \
            the rest go up in parallel (--upload-jobs), then the platform manifests, then the index under the \
            reference's tag. Prints the pushed digest.

            Examples:
              kiln push out:v1 ghcr.io/acme/tools/llm-litellm:v1
              kiln push oci:out:v1 127.0.0.1:5000/acme/app:v1 --json
              echo "$TOKEN" | kiln push out:v1 registry.example.com/app:v1 \\
                  --username ci --password-stdin
              kiln push a:v1 ghcr.io/acme/a:v1 b:v1 ghcr.io/acme/b:v1   # two images

            With several pairs, images go up --jobs at a time (each with its own --upload-jobs), and --json \
            prints an array.
            """)

    @Argument(
        help: ArgumentHelp(
            "An OCI layout (with the tag to push when it holds several) and where to push it; repeat the pair to push several images in one run.",
            valueName: "layout[:tag] registry/repository:tag"))
    var pairs: [String]

    @Option(
        name: .customLong("mount-from"),
        help: ArgumentHelp("Try to mount blobs from this repository of the same registry.", valueName: "repository"))
    var mountFrom: String?

    @Option(help: ArgumentHelp("Images pushed at once (with several pairs).", valueName: "n"))
    var jobs: Int = 4

    @OptionGroup var registry: RegistryOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if jobs < 1 { throw ValidationError("--jobs takes a positive number, e.g. --jobs 4.") }
        guard !pairs.isEmpty, pairs.count % 2 == 0 else {
            throw ValidationError("Give pairs of LAYOUT[:TAG] REFERENCE, e.g. 'kiln push out:v1 ghcr.io/acme/app:v1'.")
        }
    }

    func run() async throws {
        try await Output.reportingAsync(json: output.json) {
            var images = [(layout: OCILayout, root: Descriptor, target: ImageReference)]()
            for index in stride(from: 0, to: pairs.count, by: 2) {
                let source = try LayoutReference(parsing: pairs[index])
                let target = try ImageReference(parsing: pairs[index + 1])
                let oci = try OCILayout(existingAt: source.directory)
                images.append((oci, try oci.entry(tag: source.tag), target))
            }
            let mount = try mountFrom.map { (text) throws(ReferenceError) in
                try ImageReference(parsing: text).repository
            }
            let width = jobs
            let reports = try await registry.withClient { client in
                try await images.mapConcurrently(width: width) { job in
                    try await ImagePusher(client: client).push(
                        job.root, from: job.layout, to: job.target, mountFrom: mount)
                }
            }
            render(reports)
        }
    }

    private func render(_ reports: [PushReport]) {
        if output.json {
            let rows = reports.map(Self.row)
            if rows.count == 1 { Output.json(rows[0]) } else { Output.json(rows) }
            return
        }
        for report in reports { renderText(report) }
    }

    private struct Row: Encodable {
        struct Platform: Encodable {
            var platform: String?
            var digest: String
        }
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

    private static func row(_ report: PushReport) -> Row {
        Row(
            reference: report.reference.description,
            pinned: report.reference.pinned(to: report.root.digest).description,
            digest: report.root.digest.description, mediaType: report.root.mediaType.rawValue,
            platforms: report.platforms.map {
                Row.Platform(platform: $0.platform?.description, digest: $0.digest.description)
            },
            blobsUploaded: report.uploaded, blobsSkipped: report.skipped, blobsMounted: report.mounted,
            bytesUploaded: report.bytesUploaded, alreadyPresent: report.alreadyPresent)
    }

    private func renderText(_ report: PushReport) {
        Output.line(report.reference.pinned(to: report.root.digest).description)
        for entry in report.platforms {
            if let platform = entry.platform { Output.line("  \(platform)  \(entry.digest)") }
        }
        if report.alreadyPresent {
            Output.errorLine("\(report.reference): the tag already names this image; nothing to push")
        } else {
            Output.errorLine(
                "\(report.reference): uploaded \(report.uploaded) blobs (\(report.bytesUploaded) bytes), "
                    + "skipped \(report.skipped), mounted \(report.mounted)")
        }
    }
}
