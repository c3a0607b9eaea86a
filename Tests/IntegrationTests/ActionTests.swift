import Foundation
import Testing

/// The GitHub action at the repository's root (`action.yml`) and the workflows docs/lane.md
/// shows: linted with actionlint, and the action's lane step run as the runner would run it.
@Suite("The kiln GitHub action and the documented workflows")
struct ActionTests {
    /// Every workflow docs/lane.md shows (a yaml block starting `# .github/workflows/`).
    static func documentedWorkflows() throws -> [String] {
        let text = try String(contentsOfFile: Tools.packageRoot + "/docs/lane.md", encoding: .utf8)
        return text.components(separatedBy: "```yaml\n").dropFirst().compactMap { block in
            guard let end = block.range(of: "```") else { return nil }
            let body = String(block[..<end.lowerBound])
            return body.hasPrefix("# .github/workflows/") ? body : nil
        }
    }

    @Test("the documented workflows pass actionlint, with the kiln action checked against this action.yml")
    func workflowsLint() throws {
        try Tools.require("git", package: "git")
        let installed = try Tools.run([
            "bash", Tools.packageRoot + "/Tests/Fixtures/actionlint.sh",
            Tools.packageRoot + "/cache/fixtures/actionlint",
        ])
        try #require(installed.status == 0, "\(installed.stderr)")
        let actionlint = installed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let workflows = try Self.documentedWorkflows()
        #expect(workflows.count >= 4, "the PR lane, the direct-commit lane, the PR check and the matrix")

        let scratch = try Scratch("actionlint")
        let repo = try scratch.sub("repo")
        try #require(try Tools.run(["git", "init", "-q", repo]).status == 0)
        try FileManager.default.createDirectory(atPath: repo + "/.github/workflows", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Tools.packageRoot + "/action.yml", toPath: repo + "/action.yml")
        for (number, workflow) in workflows.enumerated() {
            // The published action is this repository's: actionlint then checks every input
            // and output a workflow uses against action.yml.
            #expect(workflow.contains("acme/kiln@v0.1.0"))
            try workflow.replacingOccurrences(of: "acme/kiln@v0.1.0", with: "./").write(
                toFile: repo + "/.github/workflows/documented-\(number + 1).yml", atomically: false, encoding: .utf8)
        }
        let linted = try Tools.run([actionlint, "-no-color"], directory: repo)
        #expect(linted.status == 0, "actionlint:\n\(linted.stdout)\(linted.stderr)")

        // It would catch a wrong input or output name.
        let broken = workflows[0].replacingOccurrences(of: "acme/kiln@v0.1.0", with: "./")
            .replacingOccurrences(of: "outputs.pr-title", with: "outputs.title")
        try broken.write(toFile: repo + "/.github/workflows/documented-1.yml", atomically: false, encoding: .utf8)
        let caught = try Tools.run([actionlint, "-no-color"], directory: repo)
        #expect(caught.status != 0 && caught.stdout.contains("\"title\" is not defined"), "\(caught.stdout)")
    }

    @Test("the action's lane step builds, pushes, pins, and sets changed, refs, pins and pr-title")
    func laneStep() throws {
        let fixture = try LaneFixture("action-step")
        let output = fixture.scratch.path + "/output"
        let summary = fixture.scratch.path + "/summary"
        let pins = fixture.scratch.path + "/pins.md"
        FileManager.default.createFile(atPath: output, contents: nil)
        FileManager.default.createFile(atPath: summary, contents: nil)
        var environment = [
            "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": output, "GITHUB_STEP_SUMMARY": summary,
            "GITHUB_SHA": "feedface00112233", "KILN": Tools.kiln, "KILN_CACHE_DIR": fixture.cache,
            "INPUT_ROOT": fixture.repo, "INPUT_REFS": "text/echo@1,\nllm/litellm@1", "INPUT_SUMMARY": pins,
            "INPUT_ARGS":
                "--registry \(fixture.registryHost) --build-arg BASE_IMAGE=\(fixture.baseReference) --jobs 2",
        ]
        let step = Tools.packageRoot + "/scripts/action-run.sh"
        let ran = try Tools.run(["bash", step], environment: environment)
        #expect(ran.status == 0, "\(ran.stderr.suffix(2000))")
        let values = try GitHubActionsTests.outputs(output)
        #expect(values["changed"] == "true", "\(values)")
        #expect(values["refs"] == "[\"llm/litellm@1\",\"text/echo@1\"]", "only the refs asked for: \(values)")
        #expect(values["pr-title"] == "Pin digests for 2 processors @ feedface0011", "\(values)")
        #expect(try String(contentsOfFile: pins, encoding: .utf8).hasPrefix("## Pin digests for 2 processors"))
        #expect(try String(contentsOfFile: summary, encoding: .utf8).contains("`text/echo@1` | built"))

        // The PR check on the pinned tree passes; verify finds every pin in the registry.
        environment["INPUT_CHECK"] = "true"
        let check = try Tools.run(["bash", step], environment: environment)
        #expect(check.status == 0, "\(check.stderr.suffix(1500))")
        environment["INPUT_CHECK"] = nil
        environment["INPUT_COMMAND"] = "verify"
        let verify = try Tools.run(["bash", step], environment: environment)
        #expect(verify.status == 0, "\(verify.stderr.suffix(1500))")
        environment["INPUT_COMMAND"] = "deploy"
        let unknown = try Tools.run(["bash", step], environment: environment)
        #expect(unknown.status == 2 && unknown.stdout.contains("::error::the kiln action's command is build"))
    }

    @Test("the action runs kiln through sudo with only the variables kiln reads: the runner's other secrets stay out")
    func sudoEnvironment() throws {
        try Tools.require("sudo", package: "sudo")
        let scratch = try Scratch("action-sudo")
        let dump = scratch.path + "/environment"
        let fake = scratch.path + "/kiln"
        try "#!/bin/sh\nenv > '\(dump)'\n".write(toFile: fake, atomically: true, encoding: .utf8)
        chmod(fake, 0o755)
        let ran = try Tools.run(
            ["bash", Tools.packageRoot + "/scripts/action-run.sh"],
            environment: [
                "KILN": fake, "KILN_ACTION_SUDO": "always", "GITHUB_TOKEN": "token-for-kiln",
                "GITHUB_ACTIONS": "true", "KILN_CACHE_DIR": scratch.path + "/cache",
                "AWS_SECRET_ACCESS_KEY": "canary-aws", "ACTIONS_RUNTIME_TOKEN": "canary-runtime",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "canary-oidc", "NPM_TOKEN": "canary-npm",
            ])
        #expect(ran.status == 0, "\(ran.stderr)")
        let seen = try String(contentsOfFile: dump, encoding: .utf8)
        #expect(seen.contains("GITHUB_TOKEN=token-for-kiln"), "kiln gets the token it logs in with")
        #expect(seen.contains("KILN_CACHE_DIR=" + scratch.path + "/cache"))
        #expect(!seen.contains("canary"), "the runner's other variables reached kiln:\n\(seen)")
    }
}
