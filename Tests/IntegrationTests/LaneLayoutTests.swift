import Foundation
import Testing

/// The lane on repositories as they really are: contexts relative to the root or to the
/// processor's folder, paths that try to leave the repository, duplicate refs, placeholder pins,
/// platform lists that are empty, foreign or mistyped — each refused or handled before anything
/// is pushed, tagged or pinned that should not be.
@Suite("The lane on real repository layouts", .serialized)
struct LaneLayoutTests {
    typealias Fixture = LaneFixture

    /// The kiln command's write requests (PUT, POST, PATCH) since `mark`, for "nothing pushed".
    static func writes(_ fixture: Fixture, since mark: Int) -> [String] { fixture.uploads(since: mark) }

    @Test("an unknown platform is refused with exit 2 before any work: flag, kiln.yaml and registry.yaml")
    func unknownPlatform() throws {
        let fixture = try Fixture("layout-platforms")
        let before = try fixture.pins()
        var mark = fixture.registry.mark()
        let typo = try fixture.runWithResult(["build", "--push", "--pin", "--platforms", "linux/arm46"], expect: 2)
            .result
        #expect(typo.stderr.contains("arm46") && typo.stderr.contains("did you mean arm64"), "\(typo.stderr)")
        #expect(Self.writes(fixture, since: mark).isEmpty)
        #expect(try fixture.pins() == before)

        let original = try String(contentsOfFile: fixture.repo + "/kiln.yaml", encoding: .utf8)
        try original.replacingOccurrences(
            of: "platforms: [linux/amd64, linux/arm64]", with: "platforms: [linux/amd64, windows/amd64]"
        )
        .write(toFile: fixture.repo + "/kiln.yaml", atomically: true, encoding: .utf8)
        mark = fixture.registry.mark()
        let windows = try fixture.runWithResult(["build", "--push", "--pin"], expect: 2).result
        #expect(windows.stderr.contains("kiln.yaml:") && windows.stderr.contains("Linux images"), "\(windows.stderr)")
        #expect(Self.writes(fixture, since: mark).isEmpty)

        try original.write(toFile: fixture.repo + "/kiln.yaml", atomically: true, encoding: .utf8)
        let file = "tools/llm/litellm/1/registry.yaml"
        let yaml = try String(contentsOfFile: fixture.repo + "/" + file, encoding: .utf8)
        try yaml.replacingOccurrences(
            of: "  port: 8000\n", with: "  port: 8000\n  platforms: [linux/amd64, linux/arm46]\n"
        )
        .write(toFile: fixture.repo + "/" + file, atomically: true, encoding: .utf8)
        mark = fixture.registry.mark()
        let processor = try fixture.runWithResult(["build", "--push", "--pin"], expect: 2).result
        #expect(processor.stderr.contains("\(file):") && processor.stderr.contains("arm46"), "\(processor.stderr)")
        #expect(Self.writes(fixture, since: mark).isEmpty)
        #expect(try fixture.pins().filter { $0.key != "./" + file } == before.filter { $0.key != "./" + file })
    }

    @Test(
        "platforms: [] and a processor whose platforms the run does not build are skipped: nothing pushed, tagged or pinned"
    )
    func skippedPlatforms() throws {
        let fixture = try Fixture("layout-skipped")
        let file = "tools/llm/litellm/1/registry.yaml"
        let yaml = try String(contentsOfFile: fixture.repo + "/" + file, encoding: .utf8)
        try yaml.replacingOccurrences(of: "  port: 8000\n", with: "  port: 8000\n  platforms: []\n")
            .write(toFile: fixture.repo + "/" + file, atomically: true, encoding: .utf8)
        let before = try fixture.pins()
        let mark = fixture.registry.mark()
        // text/echo builds for linux/amd64 only; this run builds linux/arm64 only.
        let reports = try fixture.run(["build", "--push", "--pin", "--platforms", "linux/arm64"])
        #expect(reports["llm/litellm@1"]?["status"] as? String == "skipped")
        #expect((reports["llm/litellm@1"]?["message"] as? String)?.contains("lists no platform") == true)
        #expect(reports["text/echo@1"]?["status"] as? String == "skipped")
        #expect((reports["text/echo@1"]?["message"] as? String)?.contains("linux/amd64") == true)
        let touched = fixture.registry.requests(since: mark).filter {
            $0.contains("/acme/llm-litellm/") || $0.contains("/acme/text-echo/")
        }
        #expect(touched.isEmpty, "\(touched)")
        let after = try fixture.pins()
        #expect(
            after["./" + file] == before["./" + file]
                && after["./tools/text/echo/1/registry.yaml"] == before["./tools/text/echo/1/registry.yaml"])
        // text/summarize builds for both; an arm64-only run leaves its tag and pins alone.
        #expect(reports["text/summarize@3"]?["partial"] as? Bool == true)
        #expect(
            after["./code/apps/core/processors/text_summarize/registry.yaml"]
                == before["./code/apps/core/processors/text_summarize/registry.yaml"])
        let tags = try Tools.run([
            "skopeo", "list-tags", "--tls-verify=false", "docker://\(fixture.registry.host)/acme/text-summarize",
        ])
        #expect(
            tags.status == 0 && !tags.stdout.contains("\"3\""),
            "an arm64-only run moved the version tag: \(tags.stdout)")
    }

    @Test(
        "build.context relative to the processor's folder: the error names the setting, and context-relative-to: processor builds it"
    )
    func contextRelativeToProcessor() throws {
        let fixture = try Fixture("layout-context", example: false)
        try fixture.write(
            "kiln.yaml",
            "processors: [code/apps/core/processors/**/registry.yaml]\nowner: acme\nplatforms: [linux/amd64]\n")
        let folder = "code/apps/core/processors/llm_litellm"
        try fixture.write(
            "\(folder)/registry.yaml",
            "build:\n  context: .\n  dockerfile: Dockerfile\nimage:\n  oci: sha256:pending\nref: llm/litellm@1\n")
        try fixture.write(
            "\(folder)/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY app/ /work/app/\nCMD [\"sh\"]\n")
        try fixture.write("\(folder)/app/main.py", "print('hello')\n")
        let wrong = try fixture.run(["build", "--push", "--pin"], expect: 2)
        let message = wrong["llm/litellm@1"]?["message"] as? String ?? ""
        #expect(
            message.contains("'app/' is not in the build context")
                && message.contains("context-relative-to: processor"), "\(message)")
        try fixture.append("kiln.yaml", "context-relative-to: processor\n")
        let right = try fixture.run(["build", "--push", "--pin"])
        #expect(right["llm/litellm@1"]?["status"] as? String == "built")
        let pinned = try String(contentsOfFile: fixture.repo + "/\(folder)/registry.yaml", encoding: .utf8)
        #expect(pinned.contains("oci: \(fixture.registry.host)/acme/llm-litellm@sha256:"), "\(pinned)")
    }

    @Test(
        "build.context and build.dockerfile cannot leave the repository",
        arguments: [
            ("  context: /etc\n", "absolute path '/etc'"),
            ("  context: ../../../../..\n", "leads out of the repository"),
            ("  context: outside-link\n", "through a symlink"),
            ("  dockerfile: /etc/passwd\n", "absolute path '/etc/passwd'"),
            ("  dockerfile: ../../../../../../../../etc/passwd\n", "leads out of the repository"),
        ])
    func confined(_ line: String, _ expected: String) throws {
        let fixture = try Fixture("layout-confined")
        let file = "tools/llm/litellm/1/registry.yaml"
        try FileManager.default.createSymbolicLink(atPath: fixture.repo + "/outside-link", withDestinationPath: "/etc")
        let yaml = try String(contentsOfFile: fixture.repo + "/" + file, encoding: .utf8)
        let key = line.contains("context") ? "  context: .\n" : "  dockerfile: Dockerfile\n"
        try yaml.replacingOccurrences(of: key, with: line).write(
            toFile: fixture.repo + "/" + file, atomically: true, encoding: .utf8)
        let mark = fixture.registry.mark()
        let result = try fixture.runWithResult(["build", "--push", "--pin"], expect: 2).result
        #expect(result.stderr.contains("\(file):") && result.stderr.contains(expected), "\(result.stderr)")
        #expect(
            !result.stderr.contains("root:x:0:0") && !result.stdout.contains("root:"), "the host's file was printed")
        #expect(Self.writes(fixture, since: mark).isEmpty)
    }

    @Test(
        "two registry.yaml with one ref: a disabled copy conflicts with nothing; two enabled fail just themselves, naming both"
    )
    func duplicateRefs() throws {
        let fixture = try Fixture("layout-duplicates")
        let copy = try Tools.shell("cp -r '\(fixture.repo)/tools/llm/litellm' '\(fixture.repo)/tools/llm/litellm_old'")
        try #require(copy.status == 0)
        let oldFile = "tools/llm/litellm_old/1/registry.yaml"
        let yaml = try String(contentsOfFile: fixture.repo + "/" + oldFile, encoding: .utf8)
        try yaml.replacingOccurrences(of: "enabled: true", with: "enabled: false").write(
            toFile: fixture.repo + "/" + oldFile, atomically: true, encoding: .utf8)
        let (_, planned) = try fixture.runWithResult(["plan"])
        let byFile = Dictionary(
            planned.stdout.split(separator: "\n").compactMap { line -> (String, String)? in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    return nil
                }
                return (object["file"] as? String ?? "?", object["status"] as? String ?? "?")
            }, uniquingKeysWith: { first, _ in first })
        #expect(
            byFile["tools/llm/litellm/1/registry.yaml"] == "would-build" && byFile[oldFile] == "disabled", "\(byFile)")

        try yaml.write(toFile: fixture.repo + "/" + oldFile, atomically: true, encoding: .utf8)
        let before = try fixture.pins()
        let (_, result) = try fixture.runWithResult(["build", "--push", "--pin"], expect: 2)
        var failures = [String]()
        var statuses = [String: String]()
        for line in result.stdout.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                continue
            }
            statuses[object["file"] as? String ?? "?"] = object["status"] as? String
            if object["ref"] as? String == "llm/litellm@1" { failures.append(object["message"] as? String ?? "") }
        }
        #expect(
            failures.count == 2 && failures.allSatisfy { $0.contains("is also given by tools/llm/litellm") },
            "\(failures)")
        #expect(
            statuses["tools/text/echo/1/registry.yaml"] == "built"
                && statuses["code/apps/core/processors/text_summarize/registry.yaml"] == "built")
        let after = try fixture.pins()
        #expect(after["./tools/llm/litellm/1/registry.yaml"] == before["./tools/llm/litellm/1/registry.yaml"])
        #expect(after["./" + oldFile] == before["./" + oldFile])
    }

    @Test("no processor found, a glob that matches nothing, and a --check or verify that checked nothing: exit 2")
    func nothingFound() throws {
        let fixture = try Fixture("layout-nothing", example: false)
        try fixture.write("README.md", "no processors here\n")
        let none = try fixture.runWithResult(["plan"], expect: 2).result
        #expect(
            none.stderr.contains("no registry.yaml") && none.stderr.contains("tools/**/registry.yaml"), "\(none.stderr)"
        )

        try GeneratedRepository.copyProcessors(
            in: fixture, names: 1, versions: 1,
            kilnYAML: "processors: [tools/**/registry.yaml, services/**/registry.yaml]\nowner: acme\n")
        let typo = try fixture.runWithResult(["plan"], expect: 2).result
        #expect(
            typo.stderr.contains("kiln.yaml:") && typo.stderr.contains("'services/**/registry.yaml' matches no file"),
            "\(typo.stderr)")

        try fixture.write("kiln.yaml", "processors: [tools/**/registry.yaml]\nowner: acme\n")
        let folder = GeneratedRepository.folder(0, 1)
        try fixture.append("\(folder)/registry.yaml", "enabled: false\n")
        for command in [["build", "--check"], ["verify"]] {
            let empty = try fixture.runWithResult(command, expect: 2).result
            #expect(empty.stderr.contains("nothing was checked"), "\(command): \(empty.stderr)")
        }
    }

    @Test(
        "placeholder pins (sha256:pending, @sha256:REPLACE_AMD64, :latest) are stale for --check and replaced by the lane"
    )
    func placeholders() throws {
        let fixture = try Fixture("layout-placeholders")
        let file = "tools/llm/litellm/1/registry.yaml"
        let yaml = try String(contentsOfFile: fixture.repo + "/" + file, encoding: .utf8)
        try yaml.replacingOccurrences(
            of: "    amd64: sha256:pending\n", with: "    amd64: ghcr.io/acme/llm-litellm@sha256:REPLACE_AMD64\n"
        )
        .replacingOccurrences(of: "    arm64: sha256:pending\n", with: "    arm64: ghcr.io/acme/llm-litellm:latest\n")
        .write(toFile: fixture.repo + "/" + file, atomically: true, encoding: .utf8)
        _ = try fixture.run(["build", "--push"])
        let stale = try fixture.run(["build", "--check"], expect: 1)
        #expect(
            stale["llm/litellm@1"]?["status"] as? String == "stale"
                && stale["legacy/old@1"]?["status"] as? String == "disabled")
        _ = try fixture.lane()
        let pinned = try String(contentsOfFile: fixture.repo + "/" + file, encoding: .utf8)
        #expect(!pinned.contains("REPLACE") && !pinned.contains(":latest") && !pinned.contains("pending"), "\(pinned)")
        #expect(pinned.contains("amd64: \(fixture.registry.host)/acme/llm-litellm@sha256:"))
        let echo = try String(contentsOfFile: fixture.repo + "/tools/text/echo/1/registry.yaml", encoding: .utf8)
        #expect(!echo.contains(":latest\""), "\(echo)")
        let fresh = try fixture.run(["build", "--check"])
        #expect(fresh["llm/litellm@1"]?["status"] as? String == "ok")
    }
}
