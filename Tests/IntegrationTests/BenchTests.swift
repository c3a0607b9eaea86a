import Foundation
import Testing

/// `kiln bench` on a generated repository (COPY processors sharing a library, one with `RUN`),
/// both platforms, the buildah peer side by side, the report page checked in headless Chromium.
@Suite("kiln bench", .serialized)
struct BenchTests {
    @Test(
        "every scenario for kiln and buildah, the repository untouched, nothing left in TMPDIR, the page draws its bars and the budget line"
    )
    func benchesTheLane() throws {
        try Tools.require("chromium-headless-shell", package: "chromium-headless-shell")
        try Tools.require("buildah", package: "buildah")
        try ARM64Emulation.register()
        let fixture = try LaneFixture("bench", example: false)
        try GeneratedRepository.copyProcessors(in: fixture, names: 3, versions: 1)
        try GeneratedRepository.runProcessors(in: fixture, count: 1, platforms: "[linux/amd64]")
        let before = try Tools.shell("cd '\(fixture.repo)' && find . -type f -print0 | sort -z | xargs -0 sha256sum")
        let temporary = try fixture.scratch.sub("tmp")
        let page = fixture.scratch.path + "/report"

        let result = try Tools.kiln(
            [
                "bench", "--root", fixture.repo, "--build-arg", "BASE_IMAGE=\(fixture.baseReference)", "--sample", "2",
                "--budget", "0.5s", "--peer", "buildah", "--report", page, "--json",
            ], environment: ["TMPDIR": temporary])
        try #require(result.status == 0, "kiln bench exited \(result.status): \(result.stderr.suffix(4000))")
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
        let scenarios = try #require(report["scenarios"] as? [[String: Any]])
        func runs(_ tool: String, _ kind: String) -> [[String: Any]] {
            scenarios.filter { $0["tool"] as? String == tool && $0["kind"] as? String == kind }
        }
        #expect(report["processors"] as? Int == 4)
        #expect((report["platforms"] as? [String] ?? []).map { $0.split(separator: "/")[1] } == ["amd64", "arm64"])

        // What kiln built in each scenario.
        #expect(runs("kiln", "cold").first?["built"] as? Int == 4)
        #expect(runs("kiln", "unchanged").first?["built"] as? Int == 0)
        #expect(runs("kiln", "fresh-runner").first?["built"] as? Int == 0)
        let edits = runs("kiln", "processor-changed")
        #expect(edits.count == 2)
        #expect(edits.allSatisfy { $0["built"] as? Int == 1 && $0["readers"] as? Int == 1 }, "\(edits)")
        let library = runs("kiln", "library-changed")
        #expect(library.count == 1)
        #expect(library.first?["changed"] as? String == "code/libs/shared/__init__.py")
        #expect(library.first?["built"] as? Int == 3 && library.first?["readers"] as? Int == 3)
        #expect(scenarios.allSatisfy { $0["failed"] as? Int == 0 }, "\(scenarios.compactMap { $0["failure"] })")

        // Phases: the RUN processor's cold build spent time in its RUN step; everything pushed.
        let cold = try #require(runs("kiln", "cold").first?["processors"] as? [[String: Any]])
        let stepPhases = cold.first { $0["ref"] as? String == "steps/r0@1" }?["phases"] as? [String: Double]
        #expect((stepPhases?["run"] ?? 0) > 0, "\(cold)")
        #expect(cold.allSatisfy { (($0["phases"] as? [String: Double])?["push"] ?? 0) > 0 })
        #expect((runs("kiln", "unchanged").first?["peakMemoryMiB"] as? Double ?? 0) > 1)

        // The peer ran the same scenarios.
        for kind in ["cold", "unchanged", "fresh-runner", "processor-changed", "library-changed"] {
            #expect(runs("buildah", kind).count == runs("kiln", kind).count, "\(kind)")
        }
        #expect(runs("buildah", "cold").first?["built"] as? Int == 4)

        // A half-second budget: the cold lane (a RUN step) does not fit, and the verdict says what dominates.
        let verdicts = report["verdicts"] as? [String] ?? []
        #expect(
            verdicts.contains { $0.hasPrefix("cold does not fit") && $0.contains("% of the processors' time") },
            "\(verdicts) \(scenarios.map { "\($0["label"] ?? "") \($0["seconds"] ?? "")" })")

        // The repository itself was never touched; the scratch copy and registry are gone.
        let after = try Tools.shell("cd '\(fixture.repo)' && find . -type f -print0 | sort -z | xargs -0 sha256sum")
        #expect(before.stdout == after.stdout)
        // Only kiln's runtime folder (kept, 0700), and empty.
        let runtime = "kiln-\(getuid())"
        let left = try FileManager.default.contentsOfDirectory(atPath: temporary).filter { $0 != runtime }
        #expect(left.isEmpty, "left in TMPDIR: \(left)")
        let inRuntime = (try? FileManager.default.contentsOfDirectory(atPath: temporary + "/" + runtime)) ?? []
        #expect(inRuntime.isEmpty, "left in \(runtime): \(inRuntime)")

        // The page, drawn by a real browser: a bar per scenario and tool, the budget line.
        let dom = try Tools.run([
            "chromium-headless-shell", "--no-sandbox", "--disable-gpu", "--headless", "--dump-dom",
            "file://\(page)/index.html",
        ])
        try #require(dom.status == 0, "chromium: \(dom.stderr.suffix(2000))")
        let marker = try #require(
            dom.stdout.range(of: #"data-rendered="([^"]*)""#, options: .regularExpression), "\(dom.stdout.prefix(3000))"
        )
        let rendered = String(dom.stdout[marker]).dropFirst("data-rendered=\"".count).dropLast()
            .replacingOccurrences(of: "&quot;", with: "\"")
        let drawn = try #require(try JSONSerialization.jsonObject(with: Data(rendered.utf8)) as? [String: Any])
        let labels = Set(scenarios.compactMap { $0["label"] as? String })
        #expect(drawn["bars"] as? Int == scenarios.count, "\(drawn)")
        #expect(drawn["scenarios"] as? Int == labels.count, "\(drawn)")
        #expect(drawn["budget"] as? Bool == true, "\(drawn)")
        #expect((drawn["phases"] as? Int ?? 0) > 0, "\(drawn)")
        #expect(FileManager.default.fileExists(atPath: page + "/bench.json"))
    }
}
