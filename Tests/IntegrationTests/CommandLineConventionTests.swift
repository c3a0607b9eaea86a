import Foundation
import Testing

/// Command-line conventions: help that reads well at 80 columns, completions, `--quiet`,
/// `--progress`, a live display that fits the terminal, and `kiln plan --exit-code`.
@Suite("Command-line conventions")
struct CommandLineConventionTests {
    /// Every command and subcommand, from the help's SUBCOMMANDS sections.
    static func commands() throws -> [[String]] {
        var found = [[String]]()
        var pending: [[String]] = [[]]
        while let command = pending.popLast() {
            found.append(command)
            let help = try Tools.kiln(command + ["--help"], environment: ["COLUMNS": "200"]).stdout
            guard let section = help.range(of: "SUBCOMMANDS:\n") else { continue }
            for line in help[section.upperBound...].split(separator: "\n") {
                guard line.hasPrefix("  "), !line.hasPrefix("   "), let name = line.split(separator: " ").first,
                    name != "help", !name.hasPrefix("See")
                else { continue }
                pending.append(command + [String(name)])
            }
        }
        return found
    }

    @Test("every help example stays whole at 80 columns: no command is wrapped in its middle")
    func helpExamples() throws {
        let commands = try Self.commands()
        #expect(commands.count > 15, "\(commands)")
        for command in commands {
            let wide = try Tools.kiln(command + ["--help"], environment: ["COLUMNS": "200"]).stdout
            let narrow = try Tools.kiln(command + ["--help"], environment: ["COLUMNS": "80"]).stdout
            let examples = wide.split(separator: "\n").filter { line in
                let text = line.trimmingCharacters(in: .whitespaces)
                return line.hasPrefix("  ") && (text.hasPrefix("kiln ") || text.contains("| kiln "))
            }
            let narrowLines = Set(narrow.split(separator: "\n"))
            for example in examples {
                #expect(
                    narrowLines.contains(example), "kiln \(command.joined(separator: " ")) --help wraps: \(example)")
            }
        }
    }

    @Test("completion scripts for bash, zsh and fish name the subcommands")
    func completions() throws {
        for shell in ["bash", "zsh", "fish"] {
            let script = try Tools.kiln(["--generate-completion-script", shell])
            #expect(script.status == 0)
            for word in ["build", "plan", "assemble", "verify"] {
                #expect(script.stdout.contains(word), "\(shell) completions lack \(word)")
            }
        }
    }

    @Test(
        "plan --exit-code is 1 while something would build, 0 after; --quiet says nothing on success, and with --json only the reports"
    )
    func planExitCodeAndQuiet() throws {
        let fixture = try LaneFixture("cli-quiet")
        let common = [
            "--root", fixture.repo, "--registry", fixture.registryHost, "--build-arg",
            "BASE_IMAGE=\(fixture.baseReference)", "--cache-dir", fixture.cache,
        ]
        let before = try Tools.kiln(["plan", "--exit-code", "--quiet"] + common)
        #expect(before.status == 1 && before.stdout.isEmpty && before.stderr.isEmpty, "\(before.stderr)")
        let quiet = try Tools.kiln(["build", "--push", "--pin", "--quiet"] + common)
        #expect(quiet.status == 0, "\(quiet.stderr)")
        #expect(quiet.stdout.isEmpty && quiet.stderr.isEmpty, "--quiet printed: \(quiet.stdout)\(quiet.stderr)")
        // --quiet --json: the reports on stdout, no progress events on stderr.
        let quietJSON = try Tools.kiln(["build", "--push", "--pin", "--quiet", "--json"] + common)
        #expect(quietJSON.status == 0, "\(quietJSON.stderr)")
        #expect(quietJSON.stdout.contains("\"status\":\"hit\""), "\(quietJSON.stdout)")
        #expect(quietJSON.stderr.isEmpty, "--quiet --json printed progress: \(quietJSON.stderr.prefix(300))")
        let after = try Tools.kiln(["plan", "--exit-code"] + common)
        #expect(after.status == 0, "\(after.stdout)")
        #expect(try Tools.kiln(["plan"] + common + ["--ref", "text/echo@1", "--level", "1"]).status == 0)
        let changed = try Tools.kiln(["plan", "--exit-code", "--ref", "text/echo@1", "--level", "1"] + common)
        #expect(changed.status == 1, "another compression level would build: \(changed.stdout)")

        // Quiet, a failure still says what failed.
        try fixture.write("tools/text/echo/1/Dockerfile", "FROM \(fixture.baseReference)\nCOPY nothing/here /x\n")
        let failed = try Tools.kiln(["build", "--push", "--pin", "--quiet", "--ref", "text/echo@1"] + common)
        #expect(failed.status != 0 && failed.stdout.isEmpty)
        #expect(
            failed.stderr.contains("text/echo@1 failed") && failed.stderr.contains("nothing/here"), "\(failed.stderr)")
    }

    @Test("the live display fits a narrow or short terminal; --progress plain writes a line per step")
    func progress() throws {
        try Tools.require("script", package: "bsdutils")
        let fixture = try LaneFixture("cli-progress")
        let arguments = [
            "build", "--root", fixture.repo, "--registry", fixture.registryHost, "--build-arg",
            "BASE_IMAGE=\(fixture.baseReference)", "--cache-dir", fixture.cache,
        ]
        for columns in [30, 60] {
            let command = ([Tools.kiln] + arguments + ["--progress", "tty"]).map { "'\($0)'" }.joined(separator: " ")
            let typed = try Tools.run(
                ["script", "-qfec", "stty cols \(columns) rows 40; env -u CI \(command) > /dev/null", "/dev/null"])
            #expect(typed.status == 0, "\(typed.stdout.suffix(1000))")
            let redrawn = typed.stdout.components(separatedBy: "\u{1B}[2K").dropFirst().map { piece in
                String(piece.prefix { !$0.isNewline && $0 != "\u{1B}" })
            }
            #expect(!redrawn.isEmpty, "the display was redrawn: \(typed.stdout.suffix(500))")
            for line in redrawn {
                #expect(line.count < columns, "\(columns) columns: '\(line)' (\(line.count))")
            }
            _ = try Tools.shell("rm -rf '\(fixture.cache)'/keys")
        }
        // A short terminal: the live region never grows taller than it (the redraw climbs back
        // to its top with a cursor-up of at most rows - 2), the rest summed up in one line.
        let rows = 4
        let command = ([Tools.kiln] + arguments + ["--progress", "tty"]).map { "'\($0)'" }.joined(separator: " ")
        let short = try Tools.run(
            ["script", "-qfec", "stty cols 80 rows \(rows); env -u CI \(command) > /dev/null", "/dev/null"])
        #expect(short.status == 0, "\(short.stdout.suffix(1000))")
        let climbs = short.stdout.components(separatedBy: "\u{1B}[").dropFirst().compactMap { piece -> Int? in
            let digits = piece.prefix { $0.isNumber }
            return piece.dropFirst(digits.count).first == "A" ? Int(digits) : nil
        }
        #expect(!climbs.isEmpty && climbs.allSatisfy { $0 <= rows - 2 }, "cursor-up counts \(climbs) on \(rows) rows")
        #expect(short.stdout.contains("more under way"), "\(short.stdout.suffix(800))")
        _ = try Tools.shell("rm -rf '\(fixture.cache)'/keys")
        let plain = try Tools.kiln(arguments + ["--progress", "plain"])
        #expect(plain.status == 0)
        #expect(plain.stderr.contains("text/echo@1: started") && !plain.stderr.contains("\u{1B}["), "\(plain.stderr)")
    }
}
