import ArgumentParser
import KilnCore

struct DigestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "digest",
        abstract: "Print the SHA-256 digest and size of files.",
        discussion: """
            Files are read in 1 MiB chunks, so any size works. Output is `sha256:HEX  SIZE  FILE` per file, or \
            a JSON array with --json.

            Example:
              kiln digest app.tar.gz config.json
            """)

    @Argument(help: ArgumentHelp("Files to hash.", valueName: "file"))
    var files: [String]

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if files.isEmpty { throw ValidationError("Name at least one file, e.g. 'kiln digest layer.tar.gz'.") }
    }

    func run() throws {
        struct Row: Encodable {
            var path: String
            var digest: String
            var size: Int64
        }
        try Output.reporting(json: output.json) {
            var rows = [Row]()
            for file in files {
                let (digest, size) = try Digest.sha256(ofFileAt: file)
                rows.append(Row(path: file, digest: digest.description, size: size))
                if !output.json { Output.line("\(digest)  \(size)  \(file)") }
            }
            if output.json { Output.json(rows) }
        }
    }
}
