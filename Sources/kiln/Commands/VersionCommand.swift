import ArgumentParser
import KilnCore

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print kiln's version.")

    @OptionGroup var output: OutputOptions

    func run() throws {
        if output.json {
            Output.json(["version": KilnVersion.current])
        } else {
            Output.line("kiln \(KilnVersion.current)")
        }
    }
}
