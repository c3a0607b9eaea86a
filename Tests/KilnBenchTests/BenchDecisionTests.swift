import Foundation
import KilnBench
import KilnLane
import KilnProcessors
import KilnTestSupport
import Testing

@Suite("kiln bench: what it edits, what it concludes, what it draws")
struct BenchDecisionTests {
    static let reads: [(ref: String, files: [String])] = [
        ("a/one@1", ["code/libs/shared/x.py", "code/libs/shared/y.bin", "tools/a/one/1/main.py"]),
        (
            "a/two@1",
            ["code/libs/shared/x.py", "code/libs/shared/y.bin", "code/libs/auth/t.py", "tools/a/two/1/main.py"]
        ),
        (
            "a/three@1",
            [
                "code/libs/shared/x.py", "code/libs/shared/y.bin", "code/libs/auth/t.py", "tools/a/three/1/model.bin",
                "tools/a/three/1/z.py",
            ]
        ),
    ]

    @Test("a processor's edit is a file only it reads, text first; libraries by how many read them")
    func picksEdits() {
        let plan = ChangePlan(reads: Self.reads, sample: 3, isText: { !$0.hasSuffix(".bin") })
        #expect(plan.processors.map(\.subject) == ["a/one@1", "a/three@1", "a/two@1"])
        #expect(
            plan.processors.map(\.file) == ["tools/a/one/1/main.py", "tools/a/three/1/z.py", "tools/a/two/1/main.py"])
        #expect(plan.processors.allSatisfy { $0.readers == 1 })
        #expect(plan.libraries.map(\.subject) == ["code/libs/shared", "code/libs/auth"])
        #expect(plan.libraries.map(\.file) == ["code/libs/shared/x.py", "code/libs/auth/t.py"])
        #expect(plan.libraries.map(\.readers) == [3, 2])
    }

    @Test("the sample is spread over the processors, and never more than there are")
    func spreadsTheSample() {
        let one = ChangePlan(reads: Self.reads, sample: 1, isText: { _ in true })
        #expect(one.processors.count == 1)
        #expect(one.libraries.count == 1)
        let many = ChangePlan(reads: Self.reads, sample: 10, isText: { _ in true })
        #expect(many.processors.count == 3)
        let zero = ChangePlan(reads: Self.reads, sample: 0, isText: { _ in true })
        #expect(zero.processors.isEmpty && zero.libraries.isEmpty)
        let none = ChangePlan(reads: [("a/b@1", [])], sample: 3, isText: { _ in true })
        #expect(none.processors.isEmpty && none.libraries.isEmpty)
    }

    static func scenario(_ label: String, seconds: Double, run: Double, push: Double) -> ScenarioResult {
        var result = ScenarioResult(kind: .cold, tool: "kiln", label: label, seconds: seconds)
        var phases = ProcessorReport.Phases()
        phases.run = run
        phases.push = push
        result.processors = [ProcessorTiming(ref: "a/one@1", status: "built", seconds: run + push, phases: phases)]
        return result
    }

    @Test("a scenario over the budget is named with what dominates it")
    func verdicts() {
        var report = BenchReport(
            root: "/r", processors: 1, platforms: ["linux/amd64"], budget: 600, registry: "r", kilnVersion: "0")
        report.scenarios = [Self.scenario("cold", seconds: 700, run: 600, push: 100)]
        #expect(report.judged.count == 1)
        #expect(report.judged[0].contains("cold does not fit: 11m 40s against 10m"))
        #expect(report.judged[0].contains("RUN steps take 86%"))
        report.scenarios = [Self.scenario("cold", seconds: 30, run: 20, push: 10)]
        #expect(report.judged == ["Every scenario fits the 10m budget; the slowest, cold, takes 30.0 s (5.0% of it)."])
    }

    @Test("the page has a bar per scenario and tool, the budget line, and escapes what it shows")
    func page() {
        var report = BenchReport(
            root: "/r<x>", processors: 1, platforms: ["linux/amd64"], budget: 600, registry: "r", kilnVersion: "0")
        report.scenarios = [
            Self.scenario("cold", seconds: 12, run: 10, push: 2),
            Self.scenario("one processor changed: a/<b>@1", seconds: 0.4, run: 0, push: 0.4),
        ]
        var peer = ScenarioResult(kind: .cold, tool: "buildah", label: "cold", seconds: 90)
        peer.processors = [ProcessorTiming(ref: "a/one@1", status: "built", seconds: 90)]
        report.scenarios.append(peer)
        let page = BenchPage.render(report)
        #expect(page.components(separatedBy: "class=\"bar\"").count - 1 == 3)
        #expect(page.components(separatedBy: "class=\"budget\"").count - 1 == 1)
        #expect(page.contains("a/&lt;b&gt;@1"))
        #expect(!page.contains("a/<b>@1"))
        #expect(page.contains("/r&lt;x&gt;"))
    }

    @Test("durations as people read them")
    func durations() {
        #expect(Duration.words(0.25) == "0.25 s")
        #expect(Duration.words(42.04) == "42.0 s")
        #expect(Duration.words(600) == "10m")
        #expect(Duration.words(245) == "4m 05s")
    }
}

@Suite("kiln bench --synthetic: the generated monorepo")
struct SyntheticRepositoryTests {
    @Test("N processors with distinct refs, two versions of every fourth name, libraries shared")
    func generates() throws {
        let scratch = try TemporaryDirectory("synthetic")
        let root = scratch.path + "/repo"
        try SyntheticRepository.generate(at: root, processors: 10)
        let config = try LaneConfig.load(root: root)
        let processors = try Discovery.processors(config)
        #expect(processors.count == 10)
        #expect(Set(processors.map(\.ref.description)).count == 10)
        #expect(processors.filter { $0.ref.version == "2" }.count == 2)
        #expect(config.platforms.map(\.architecture) == ["amd64", "arm64"])
        // The same N gives the same tree.
        let again = scratch.path + "/again"
        try SyntheticRepository.generate(at: again, processors: 10)
        let first = try String(contentsOfFile: root + "/tools/synthetic/p0003/2/src/main.py", encoding: .utf8)
        let second = try String(contentsOfFile: again + "/tools/synthetic/p0003/2/src/main.py", encoding: .utf8)
        #expect(first == second)
    }
}
