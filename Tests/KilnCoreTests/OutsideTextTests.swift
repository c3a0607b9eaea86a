import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Outside text (a step's output, a registry's error, names from the repository) printed where a
/// CI runner reads commands or a forge renders Markdown: it says nothing to either.
@Suite("Outside text in CI logs and Markdown")
struct OutsideTextTests {
    /// What an attacker puts in a file name, a build arg, a step's output or an error text.
    static let injections = [
        "\n::add-mask::x", "\n::error::pwned", "a\r::warning::x", "a\r\n::set-output name=a::b", "\n  ::error::x",
        "\n\t::group::x", "x ##[error]y", "##[set-output name=a;]b", "%0A::error::x", "::stop-commands::t\n::error::x",
        "::", "a\n::\n::x::",
    ]

    @Test("the runner simulation sees the commands in each injection as written (the test can fail)")
    func simulationSeesInjections() {
        let runner = WorkflowRunner()
        for text in Self.injections where text != "::" && text != "%0A::error::x" && text != "a\n::\n::x::" {
            #expect(!runner.commands(in: "kiln: error: " + text).isEmpty, "\(text.debugDescription)")
        }
        // Inside stop-commands nothing counts, until the token.
        let stopped = runner.commands(in: "::stop-commands::tok\n::error::a\n::tok::\n::warning::b\n")
        #expect(stopped.map(\.name) == ["stop-commands", "warning"])
    }

    @Test("workflow-safe text starts no command on any line, and reads the same")
    func workflowSafe() {
        let runner = WorkflowRunner()
        for text in Self.injections {
            let line = "kiln: error: copying " + text + " failed"
            let safe = OutsideText.workflowSafe(line)
            #expect(runner.commands(in: safe).isEmpty, "\(safe.debugDescription)")
            #expect(safe.replacingOccurrences(of: "\u{200B}", with: "") == line)
        }
        #expect(OutsideText.workflowSafe("plain text: a::b") == "plain text: a::b")
    }

    @Test("JSON lines stay the same value and start no command")
    func jsonSafe() throws {
        let value = ["message": "x ##[error]y\n::add-mask::z"]
        let json = String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
        let safe = OutsideText.jsonWorkflowSafe(json)
        #expect(WorkflowRunner().commands(in: safe).isEmpty, "\(safe)")
        #expect(try JSONDecoder().decode([String: String].self, from: Data(safe.utf8)) == value)
    }

    /// `markdown` through cmark-gfm (GitHub's Markdown, tables and autolinks on), as HTML.
    static func rendered(_ markdown: String) throws -> String {
        try #require(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/cmark-gfm"),
            "cmark-gfm is missing: apt-get install cmark-gfm (scripts/install-deps.sh installs it)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/cmark-gfm")
        process.arguments = ["-e", "table", "-e", "autolink", "-e", "strikethrough"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(markdown.utf8))
        try input.fileHandleForWriting.close()
        let html = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return html
    }

    /// HTML text back to plain text: entities decoded, the zero-width splits dropped.
    static func text(ofHTML html: String) -> String {
        var text = html
        for (entity, character) in [("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&amp;", "&")] {
            text = text.replacingOccurrences(of: entity, with: character)
        }
        return text.replacingOccurrences(of: "\u{200B}", with: "")
    }

    static let markupInjections = [
        "<img src=x onerror=alert(1)>", "@org/team please look", "**bold** _em_ ~~gone~~",
        "[link](https://evil.example)",
        "https://evil.example/x", "`code` and ``more``", "a | b | c", "# heading", "1. list", "&amp; &#x41;",
        "line\n\n| a | b |\n| - | - |", "<script>alert(1)</script>", "!\\[x\\](y) \\*", "name\r\n@someone",
    ]

    @Test("Markdown text renders as exactly the text: no markup, no links, no mentions")
    func markdownText() throws {
        for text in Self.markupInjections {
            let html = try Self.rendered(OutsideText.markdown(text))
            #expect(!html.contains("raw HTML omitted") && !html.contains("<img") && !html.contains("<a "), "\(html)")
            for tag in ["<strong>", "<em>", "<del>", "<code>", "<h1>", "<ol>", "<table>", "<script"] {
                #expect(!html.contains(tag), "\(text.debugDescription) → \(html)")
            }
            let expected = text.replacingOccurrences(of: "\r\n", with: " ").replacingOccurrences(of: "\n", with: " ")
            let shown = Self.text(ofHTML: html).replacingOccurrences(of: "<p>", with: "")
                .replacingOccurrences(of: "</p>", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(shown == expected.trimmingCharacters(in: .whitespaces), "\(text.debugDescription) → \(html)")
            // Every @ is cut from the name after it: GitHub mentions no one.
            let mentions = OutsideText.markdown(text).components(separatedBy: "@").dropFirst()
            #expect(mentions.allSatisfy { $0.hasPrefix("\u{200B}") }, "\(text.debugDescription)")
        }
    }

    @Test("a code span in a table cell shows exactly the text, in one cell")
    func markdownCode() throws {
        for text in Self.markupInjections + ["`", "a`b``c", " x "] {
            let table = "| a | b |\n| --- | --- |\n| \(OutsideText.markdownCode(text)) | end |\n"
            let html = try Self.rendered(table)
            #expect(html.components(separatedBy: "<td>").count == 3, "\(text.debugDescription) → \(html)")
            let code = try #require(
                html.range(of: "<code>").flatMap { open in
                    html.range(of: "</code>", range: open.upperBound..<html.endIndex).map {
                        html[open.upperBound..<$0.lowerBound]
                    }
                }, "\(html)")
            let expected = text.replacingOccurrences(of: "\r\n", with: " ").replacingOccurrences(of: "\n", with: " ")
                .replacingOccurrences(of: "\r", with: " ")
            #expect(Self.text(ofHTML: String(code)) == expected, "\(text.debugDescription) → \(html)")
        }
    }
}
