import Foundation
import KilnProcessors
import Testing

@testable import KilnLane

@Suite("The step summary, from the outcomes")
struct LaneSummaryTests {
    static func reports(_ count: Int, built: Int, failed: Int) throws -> [ProcessorReport] {
        let repo = try Processors()
        let processor = try repo.processor("a/b@1", folder: "tools/a/b/1")
        return (0..<count).map { index in
            var report = ProcessorReport(
                processor: processor, status: index < failed ? .failed : index < failed + built ? .built : .hit)
            report.ref = "gen/p\(index)@1"
            report.file = "tools/gen/p\(index)/1/registry.yaml"
            for platform in ["linux/amd64", "linux/arm64/v8"] {
                var entry = ProcessorReport.PlatformReport(platform: platform, key: String(repeating: "a", count: 64))
                entry.digest = "sha256:" + String(repeating: "b", count: 64)
                entry.reason =
                    "tools/gen/p\(index)/1/protocol/main.py changed" + String(repeating: ", and more", count: 20)
                report.platforms.append(entry)
            }
            if report.status == .failed {
                report.message = "COPY failed: no such file tools/gen/p\(index)/1/missing.py\nsecond line"
                report.location = .init(file: "tools/gen/p\(index)/1/Dockerfile", line: 4)
            }
            return report
        }
    }

    @Test("✅ only when everything succeeded within the budget")
    func verdict() throws {
        let fine = LaneSummary.markdown(
            try Self.reports(3, built: 1, failed: 0), command: "build", seconds: 5, budget: 600)
        #expect(fine.contains("✅ Every processor succeeded"))
        let late = LaneSummary.markdown(
            try Self.reports(3, built: 1, failed: 0), command: "build", seconds: 700, budget: 600)
        #expect(!late.contains("✅") && late.contains("over by"))
        let failed = LaneSummary.markdown(
            try Self.reports(3, built: 1, failed: 1), command: "build", seconds: 5, budget: 600)
        #expect(!failed.contains("✅") && failed.contains("❌ 1 failed"))
        #expect(failed.contains("`tools/gen/p0/1/Dockerfile:4`") && !failed.contains("second line"))
    }

    @Test("2,400 processors, every one built, stay under GitHub's 1 MiB summary limit, failures first")
    func bounded() throws {
        let text = LaneSummary.markdown(
            try Self.reports(2_400, built: 2_390, failed: 10), command: "build", seconds: 500, budget: 600)
        #expect(text.utf8.count < 1 << 20, "\(text.utf8.count) bytes")
        #expect(text.contains("more (every processor is in the `--json` output)"))
        let failure = try #require(text.range(of: "| `gen/p9@1` | failed |"))
        let table = try #require(text.range(of: "| processor | status | platforms |"))
        #expect(failure.lowerBound < table.lowerBound)
    }

    @Test("hits are counted, not listed")
    func hitsCounted() throws {
        let text = LaneSummary.markdown(
            try Self.reports(50, built: 2, failed: 0), command: "build", seconds: 5, budget: 600)
        #expect(text.contains("48 more processors unchanged"))
        #expect(!text.contains("`gen/p10@1`"))
    }
}
