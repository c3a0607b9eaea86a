import Foundation
import KilnTestSupport
import Testing

/// The lane as a GitHub Actions step: run with the variables the runner sets, it writes the
/// step's outputs and summary files, and annotates failures and stale pins on their lines.
@Suite("kiln in a GitHub Actions step")
struct GitHubActionsTests {
    /// The runner's variables, pointing at files in the fixture's scratch folder.
    static func runner(_ fixture: LaneFixture, _ name: String) -> (
        environment: [String: String], output: String, summary: String
    ) {
        let output = fixture.scratch.path + "/\(name).output"
        let summary = fixture.scratch.path + "/\(name).summary"
        FileManager.default.createFile(atPath: output, contents: nil)
        FileManager.default.createFile(atPath: summary, contents: nil)
        return (
            ["GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_OUTPUT": output, "GITHUB_STEP_SUMMARY": summary],
            output, summary
        )
    }

    static func outputs(_ path: String) throws -> [String: String] {
        var values = [String: String]()
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return values
    }

    @Test("outputs say what changed and the pins; the summary has a row per processor and the budget")
    func outputsAndSummary() throws {
        let fixture = try LaneFixture("actions")
        let first = Self.runner(fixture, "first")
        _ = try fixture.run(["build", "--push", "--pin"], environment: first.environment)
        let outputs = try Self.outputs(first.output)
        #expect(outputs["changed"] == "true")
        let refs = try JSONSerialization.jsonObject(with: Data((outputs["refs"] ?? "").utf8)) as? [String]
        #expect(refs?.contains("text/echo@1") == true, "\(outputs)")
        let pins =
            try JSONSerialization.jsonObject(with: Data((outputs["pins"] ?? "").utf8)) as? [String: [String: String]]
        let echo = try #require(pins?["text/echo@1"], "\(outputs)")
        #expect(echo["image.oci"]?.contains("@sha256:") == true, "\(echo)")
        let pinned = try String(contentsOfFile: fixture.repo + "/tools/text/echo/1/registry.yaml", encoding: .utf8)
        #expect(pinned.contains(echo["image.oci"] ?? "-"), "the output is the pin written")

        let summary = try String(contentsOfFile: first.summary, encoding: .utf8)
        #expect(summary.contains("| processor | status | platforms | digests | seconds | why |"))
        for ref in ["text/echo@1", "llm/litellm@1"] { #expect(summary.contains("`\(ref)` | built"), "\(summary)") }
        #expect(summary.contains("of its 10 min budget"), "\(summary)")

        // Nothing changed: nothing built, no pin moved.
        let second = Self.runner(fixture, "second")
        _ = try fixture.run(["build", "--push", "--pin", "--budget", "90s"], environment: second.environment)
        let again = try Self.outputs(second.output)
        #expect(again["changed"] == "false" && again["refs"] == "[]" && again["pins"] == "{}", "\(again)")
        #expect(try String(contentsOfFile: second.summary, encoding: .utf8).contains("of its 1 min 30 s budget"))
    }

    @Test("the summary and the pull request body say what failed or is stale, first; ✅ only when all succeeded")
    func summaryFromOutcomes() throws {
        let fixture = try LaneFixture("actions-outcomes")
        _ = try fixture.lane()
        // A stale pin under --check: exit 1.
        try fixture.append("code/libs/textkit/normalize.py", "# changed\n")
        let check = Self.runner(fixture, "check")
        _ = try fixture.run(["build", "--check"], expect: 1, environment: check.environment)
        let checked = try String(contentsOfFile: check.summary, encoding: .utf8)
        #expect(!checked.contains("✅") && checked.contains("❌ "), "\(checked)")
        #expect(checked.contains("| `text/echo@1` | stale |"), "\(checked)")

        // A failure: exit 2, and the pull request body does not claim every pin is current.
        try fixture.append("tools/llm/litellm/1/Dockerfile", "COPY no/such/file /x\n")
        let run = Self.runner(fixture, "run")
        let body = fixture.scratch.path + "/pins.md"
        _ = try fixture.run(["build", "--push", "--pin", "--summary", body], expect: 2, environment: run.environment)
        let summary = try String(contentsOfFile: run.summary, encoding: .utf8)
        #expect(!summary.contains("✅"), "\(summary)")
        let verdict = try #require(summary.split(separator: "\n").first { $0.hasPrefix("❌") }, "\(summary)")
        #expect(verdict.contains("1 failed"), "\(verdict)")
        let failure = try #require(summary.range(of: "| `llm/litellm@1` | failed |"), "\(summary)")
        let table = try #require(summary.range(of: "| processor | status | platforms |"), "\(summary)")
        #expect(failure.lowerBound < table.lowerBound, "failures come before the table")
        let pr = try String(contentsOfFile: body, encoding: .utf8)
        #expect(pr.contains("**1 processor not pinned**") && pr.contains("`llm/litellm@1` failed"), "\(pr)")
        #expect(!pr.contains("Every pin already named"), "\(pr)")
    }

    @Test("--summary writes the pin pull request: its title, each pin old to new, and why it changed")
    func pinPullRequest() throws {
        let fixture = try LaneFixture("actions-pr")
        _ = try fixture.lane()
        let before = try String(contentsOfFile: fixture.repo + "/tools/text/echo/1/registry.yaml", encoding: .utf8)
        let old = try #require(before.split(separator: "\n").first { $0.contains("oci:") }?.split(separator: "@").last)
        try fixture.append("code/libs/textkit/normalize.py", "# changed\n")
        var runner = Self.runner(fixture, "pr")
        runner.environment["GITHUB_SHA"] = "0123456789abcdef0123456789abcdef01234567"
        let summary = fixture.scratch.path + "/pins.md"
        _ = try fixture.run(
            ["build", "--push", "--pin", "--ref", "text/echo@1", "--summary", summary], environment: runner.environment)
        let text = try String(contentsOfFile: summary, encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.first == "## Pin digest for `text/echo@1` @ 0123456789ab", "\(text)")
        let row = try #require(lines.first { $0.hasPrefix("| `text/echo@1` | `image.oci` |") }, "\(text)")
        #expect(row.contains("`sha256:\(old.dropFirst(7).prefix(12))…`"), "the old digest: \(row)")
        #expect(row.contains("normalize\\.py"), "why: the changed file (as Markdown text): \(row)")
        let after = try String(contentsOfFile: fixture.repo + "/tools/text/echo/1/registry.yaml", encoding: .utf8)
        let new = try #require(after.split(separator: "\n").first { $0.contains("oci:") }?.split(separator: "@").last)
        #expect(row.contains("`sha256:\(new.dropFirst(7).prefix(12))…`"), "the new digest: \(row)")
        #expect(try Self.outputs(runner.output)["pr-title"] == "Pin digest for text/echo@1 @ 0123456789ab")
    }

    @Test("a failing Dockerfile line and a stale pin are annotated on their lines, and --json carries file and line")
    func annotations() throws {
        let fixture = try LaneFixture("actions-errors")
        _ = try fixture.lane()
        let dockerfile = "tools/text/echo/1/Dockerfile"
        var lines = try String(contentsOfFile: fixture.repo + "/" + dockerfile, encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines.insert("COPY no/such/file /tool/missing", at: 3)
        try fixture.write(dockerfile, lines.joined(separator: "\n"))
        let runner = Self.runner(fixture, "failing")

        let failed = try fixture.runWithResult(
            ["build", "--push", "--pin", "--ref", "text/echo@1"], expect: nil, environment: runner.environment)
        #expect(failed.result.status != 0)
        let report = try #require(failed.reports["text/echo@1"])
        let location = report["location"] as? [String: Any]
        #expect(location?["file"] as? String == dockerfile && location?["line"] as? Int == 4, "\(report)")
        #expect(
            failed.result.stderr.contains("::error file=\(dockerfile),line=4,title=kiln%3A text/echo@1 failed::"),
            "\(failed.result.stderr.suffix(1500))")

        // The Dockerfile fixed but a library changed: the pin is stale, shown on its key's line.
        lines.remove(at: 3)
        try fixture.write(dockerfile, lines.joined(separator: "\n"))
        try fixture.append("code/libs/textkit/__init__.py", "# changed\n")
        let check = try fixture.runWithResult(
            ["build", "--check", "--ref", "text/echo@1"], expect: 1, environment: runner.environment)
        let registry = try String(contentsOfFile: fixture.repo + "/tools/text/echo/1/registry.yaml", encoding: .utf8)
        let keyLine =
            try #require(
                registry.split(separator: "\n", omittingEmptySubsequences: false).firstIndex {
                    $0.trimmingCharacters(in: .whitespaces).hasPrefix("oci:")
                }) + 1
        #expect(
            check.result.stderr.contains(
                "::error file=tools/text/echo/1/registry.yaml,line=\(keyLine),title=kiln%3A text/echo@1 has a stale pin::"
            ), "\(check.result.stderr.suffix(1500))")

        // An error before any processor: the JSON object names the file and line.
        try fixture.write("kiln.yaml", "processors:\n  - tools/**/registry.yaml\njobs: many\n")
        let broken = try Tools.kiln(["plan", "--root", fixture.repo, "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(broken.stderr.split(separator: "\n")[0].utf8))
        let error = (object as? [String: Any])?["error"] as? [String: Any]
        #expect(error?["file"] as? String != nil && error?["line"] as? Int == 3, "\(broken.stderr)")
    }

    @Test("buildah's output is folded into a group per processor, with workflow commands off inside it")
    func foldedOutput() throws {
        let fixture = try LaneFixture("actions-run")
        let folder = fixture.repo + "/tools/run/noisy/1"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try
            "ref: run/noisy@1\nbuild:\n  context: .\n  dockerfile: Dockerfile\nimage:\n  platforms:\n    amd64: sha256:pending\n"
            .write(toFile: folder + "/registry.yaml", atomically: true, encoding: .utf8)
        try "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo '::error::injected by the step' && echo step-done\n"
            .write(toFile: folder + "/Dockerfile", atomically: true, encoding: .utf8)
        let runner = Self.runner(fixture, "run")
        let result = try Tools.kiln(
            [
                "build", "--push", "--ref", "run/noisy@1", "--platforms", "linux/amd64", "--root", fixture.repo,
                "--registry",
                fixture.registryHost, "--build-arg", "BASE_IMAGE=\(fixture.baseReference)", "--cache-dir",
                fixture.cache,
            ],
            environment: runner.environment)
        #expect(result.status == 0, "\(result.stderr.suffix(1500))")
        let text = result.stderr
        let group = try #require(text.range(of: "::group::run/noisy@1: RUN output\n"), "\(text.suffix(1500))")
        let stop = try #require(text.range(of: "::stop-commands::", range: group.upperBound..<text.endIndex))
        let token = text[stop.upperBound...].prefix { $0 != "\n" }
        let injected = try #require(text.range(of: "::error::injected by the step"))
        let resume = try #require(text.range(of: "::\(token)::", range: stop.upperBound..<text.endIndex))
        #expect(stop.upperBound < injected.lowerBound && injected.upperBound < resume.lowerBound)
        #expect(text.range(of: "::endgroup::", range: resume.upperBound..<text.endIndex) != nil)
    }

    /// The commands a log gives that kiln did not mean: any but its annotations and RUN groups.
    static func foreignCommands(_ log: String) -> [WorkflowRunner.Command] {
        WorkflowRunner().commands(in: log).filter { command in
            switch command.name {
            case "group", "endgroup", "stop-commands": false
            case "error": !command.line.hasPrefix("::error file=") && !command.line.hasPrefix("::error title=")
            default: true
            }
        }
    }

    @Test("names from the repository and errors print no workflow command, markup or mention, in text and --json")
    func outsideTextSaysNothing() throws {
        let fixture = try LaneFixture("actions-injection")
        _ = try fixture.lane()
        // A file name carrying commands (old and new syntax), HTML and a mention, COPY'd but absent.
        let name = "evil <img src=x> @org/team `t` | c ##[error]e\\n::add-mask::x\\r::warning::w"
        try fixture.append("tools/llm/litellm/1/Dockerfile", "COPY [\"\(name)\", \"/x\"]\n")
        let run = Self.runner(fixture, "run")
        let body = fixture.scratch.path + "/pins.md"
        let json = try fixture.runWithResult(
            ["build", "--push", "--pin", "--summary", body], expect: 2, environment: run.environment
        ).result
        let plain = try Tools.kiln(
            ["build", "--push", "--progress", "plain", "--cache-dir", fixture.cache]
                + fixture.common.filter { $0 != "--json" }, environment: run.environment)
        #expect(plain.status == 2, "\(plain.stderr.suffix(2000))")
        let failure = try #require(LaneFixture.reports(json.stdout)["llm/litellm@1"]?["message"] as? String)
        #expect(failure.contains("::add-mask::x"), "the name reaches the message: \(failure)")
        for (label, log) in [
            ("json stdout", json.stdout), ("json stderr", json.stderr), ("stdout", plain.stdout),
            ("stderr", plain.stderr),
        ] {
            #expect(Self.foreignCommands(log).isEmpty, "\(label): \(Self.foreignCommands(log))\n\(log.suffix(2000))")
        }
        #expect(plain.stderr.contains("add-mask"), "the failure is still told: \(plain.stderr.suffix(2000))")
        // The summary and the pull request body, rendered as GitHub renders Markdown.
        for file in [run.summary, body] {
            let markdown = try String(contentsOfFile: file, encoding: .utf8)
            #expect(markdown.contains("evil"), "\(markdown)")
            let html = try OutsideTextRendering.html(markdown)
            #expect(!html.contains("raw HTML omitted") && !html.contains("<img"), "\(html)")
            // GitHub mentions no one inside code; elsewhere every @ is cut from the name after it.
            var prose = html
            while let open = prose.range(of: "<code>"),
                let close = prose.range(of: "</code>", range: open.upperBound..<prose.endIndex)
            {
                prose.removeSubrange(open.lowerBound..<close.upperBound)
            }
            let mentions = prose.components(separatedBy: "@").dropFirst().filter { !$0.hasPrefix("\u{200B}") }
            #expect(mentions.isEmpty, "a mention: \(mentions)\n\(html)")
        }
    }
}

/// Markdown rendered by cmark-gfm (GitHub's flavour: tables, autolinks).
enum OutsideTextRendering {
    static func html(_ markdown: String) throws -> String {
        try #require(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/cmark-gfm"),
            "cmark-gfm is missing: apt-get install cmark-gfm (scripts/install-deps.sh installs it)")
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-md-\(UUID().uuidString).md")
        try markdown.write(to: input, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: input) }
        let result = try Tools.run(["cmark-gfm", "-e", "table", "-e", "autolink", input.path])
        return result.stdout
    }
}
