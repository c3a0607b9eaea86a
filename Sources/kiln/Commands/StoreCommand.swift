import ArgumentParser
import KilnCore
import KilnStore

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Look after the local content-addressed store.",
        subcommands: [StorePut.self, StoreVerify.self])
}

struct StorePut: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "put",
        abstract: "Copy files into the store as blobs and print their digests.",
        discussion: "Example:\n  kiln store put --cache-dir ./cache layer.tar.gz")

    @Argument(help: ArgumentHelp("Files to store.", valueName: "file"))
    var files: [String]

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        struct Row: Encodable {
            var path: String
            var digest: String
            var size: Int64
        }
        try Output.reporting(json: output.json) {
            let store = try store.open()
            var rows = [Row]()
            for file in files {
                let (digest, size) = try store.putFile(at: file)
                rows.append(Row(path: file, digest: digest.description, size: size))
                if !output.json { Output.line("\(digest)  \(size)  \(file)") }
            }
            if output.json { Output.json(rows) }
        }
    }
}

struct StoreVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Re-hash every blob; remove corrupt blobs and what killed runs left behind.",
        discussion: """
            Removes blobs whose bytes do not match their digest, temporary files of interrupted writes, \
            and the scratch folders of kiln processes that are gone: build folders in the store, and the \
            private RUN folders outside it ($KILN_RUNTIME_DIR, else $TMPDIR/kiln-UID), where buildah's \
            storage and secret files live during a step. Exits with status 4 when a corrupt blob was found \
            (and removed).

              kiln store verify
              kiln store verify --cache-dir ~/.cache/kiln --json
            """)

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        struct Report: Encodable {
            var intact: Int
            var removedCorrupt: [String]
            var removedTemporary: Int
            var removedScratch: Int
        }
        var corrupt = false
        try Output.reporting(json: output.json) {
            let report = try store.open().verify()
            let runtime = ScratchDirectory.sweep(RuntimeDirectory.path(environment: Environment.current)).count
            corrupt = !report.removedCorrupt.isEmpty
            if output.json {
                Output.json(
                    Report(
                        intact: report.intact, removedCorrupt: report.removedCorrupt.map(\.description),
                        removedTemporary: report.removedTemporary, removedScratch: report.removedScratch + runtime))
            } else {
                Output.line("\(report.intact) blobs intact")
                for digest in report.removedCorrupt { Output.line("removed corrupt blob \(digest)") }
                if report.removedTemporary > 0 { Output.line("removed \(report.removedTemporary) temporary files") }
                if report.removedScratch + runtime > 0 {
                    Output.line("removed \(report.removedScratch + runtime) scratch folders of stopped runs")
                }
            }
        }
        if corrupt { throw ExitCode(ErrorCategory.integrity.rawValue) }
    }
}
