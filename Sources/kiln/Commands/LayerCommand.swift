import ArgumentParser
import KilnCore
import KilnLayers
import KilnStore

struct LayerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layer", abstract: "Make image layers.", subcommands: [LayerCreate.self])
}

/// Flags that choose how a layer is encoded, shared by commands that make layers.
struct LayerEncodingOptions: ParsableArguments {
    @Option(help: "gzip compression level, 0 (none) to 9 (smallest).")
    var level: Int = LayerOptions.defaultGzipLevel

    @Flag(help: "Write a plain tar layer (blob digest = diffID).")
    var uncompressed = false

    @Flag(name: .customLong("preserve-owner"), help: "Keep files' numeric owners instead of 0:0.")
    var preserveOwner = false

    @Flag(help: "Copy extended attributes into the layer.")
    var xattrs = false

    func validate() throws {
        guard (0...9).contains(level) else { throw ValidationError("--level takes 0 to 9, e.g. --level 6.") }
    }

    func layerOptions() throws(EpochError) -> LayerOptions {
        var options = try LayerOptions.standard(environment: Environment.current)
        options.compression = uncompressed ? .none : .gzip(level: level)
        return options
    }

    func scanner(prefix: String) throws(LayerError) -> DirectoryScanner {
        let trimmed = String(prefix.drop { $0 == "/" })
        var scanner = DirectoryScanner(prefix: trimmed.isEmpty ? nil : try LayerPath(trimmed))
        scanner.preserveOwnership = preserveOwner
        scanner.includeXattrs = xattrs
        return scanner
    }
}

struct LayerCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Make one reproducible layer from a directory.",
        discussion: """
            The directory's contents go under --prefix in the image. The layer is the same bytes on every \
            machine: entries sorted, times set to $SOURCE_DATE_EPOCH (or 0), owners 0:0, a fixed gzip header. \
            Prints the diffID (sha256 of the tar), the blob digest and size.

            Without -o the blob goes into the local store (see --cache-dir).

            Examples:
              kiln layer create --from ./app --prefix /app -o app.tar.gz
              SOURCE_DATE_EPOCH=1700000000 kiln layer create --from ./app --json
            """)

    @Option(help: ArgumentHelp("The directory whose contents become the layer.", valueName: "dir"))
    var from: String

    @Option(help: ArgumentHelp("Where the contents go in the image.", valueName: "path"))
    var prefix: String = "/"

    @Option(
        name: [.short, .customLong("output")], help: ArgumentHelp("Write the blob to this file.", valueName: "file"))
    var outputFile: String?

    @OptionGroup var encoding: LayerEncodingOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try Output.reporting(json: output.json) {
            let entries = try encoding.scanner(prefix: prefix).entries(under: from)
            let options = try encoding.layerOptions()
            let result: LayerResult
            var location: String
            if let outputFile {
                let file = try AtomicFileWriter(destination: FilePaths.absolute(outputFile))
                result = try LayerWriter.write(entries, options: options, to: file)
                try file.commit()
                location = outputFile
            } else {
                let store = try store.open()
                let ingest = try store.beginIngest()
                result = try LayerWriter.write(entries, options: options, to: ingest)
                try ingest.commit(expected: result.digest)
                location = store.blobPath(result.digest)
            }
            render(result, location: location)
        }
    }

    private func render(_ result: LayerResult, location: String) {
        if output.json {
            struct Report: Encodable {
                var diffID: String
                var digest: String
                var size: Int64
                var uncompressedSize: Int64
                var mediaType: String
                var path: String
            }
            Output.json(
                Report(
                    diffID: result.diffID.description, digest: result.digest.description, size: result.size,
                    uncompressedSize: result.uncompressedSize, mediaType: result.mediaType.rawValue, path: location))
        } else {
            Output.line("diffID  \(result.diffID)")
            Output.line("digest  \(result.digest)")
            Output.line("size    \(result.size)")
            Output.line("path    \(location)")
        }
    }
}
