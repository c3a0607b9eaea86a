import Foundation
import KilnCore
import KilnLane

/// Runs `kiln build --push --pin --json` on the scratch copy as a user would, in a process of its
/// own, and reads its per-processor reports.
struct LaneRunner: Sendable {
    let kiln: String
    let root: String
    let host: String
    let owner: String
    let extra: [String]
    let scratch: String

    init(kiln: String, root: String, host: String, owner: String, arguments: [String], scratch: String) {
        self.kiln = kiln
        self.root = root
        self.host = host
        self.owner = owner
        extra = arguments
        self.scratch = scratch
    }

    struct Outcome: Sendable {
        var result: ScenarioResult
        var platforms: [String]
        /// Repositories the run pushed to.
        var repositories: [String]
    }

    /// The lane's flags for the copy with the store `store` (a name under the scratch folder):
    /// every image goes to `HOST/OWNER/NS-NAME`, key tags included.
    func arguments(store: String) -> [String] {
        [
            "--root", root, "--registry", host, "--owner", owner, "--repository", "{registry}/{owner}/{ns}-{name}",
            "--cache-dir", scratch + "/store-" + store,
        ] + extra
    }

    /// One run in `kind`; `fresh` stores are emptied first (and the cold scenario's too).
    func run(_ kind: ScenarioResult.Kind, label: String, store: String) async throws -> Outcome {
        let storePath = scratch + "/store-" + store
        if kind == .cold || kind == .freshRunner { FilePaths.remove(storePath) }
        let output = scratch + "/lane-\(UInt32.random(in: 0...UInt32.max)).jsonl"
        defer { FilePaths.remove(output) }
        let environment = ProcessInfo.processInfo.environment.filter { name, _ in
            // The bench's runs are not the workflow's lane: no outputs, summary or annotations.
            !["GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"].contains(name)
        }.map { "\($0.key)=\($0.value)" }
        let started = Elapsed.now()
        let outcome: ChildProcess.Outcome
        do {
            outcome = try await ChildProcess.run(
                kiln, ["build", "--push", "--pin", "--json", "--progress", "plain"] + arguments(store: store),
                environment: environment, standardOutput: output)
        } catch {
            throw BenchError.laneFailed(scenario: label, status: -1, output: "\(error)")
        }
        let seconds = Elapsed.seconds(since: started)
        let lines = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        let reports = lines.split(separator: "\n").compactMap { line in
            try? JSONDecoder().decode(LaneLine.self, from: Data(line.utf8))
        }.filter { $0.ref != nil && $0.status != nil }
        guard !reports.isEmpty || outcome.status == 0 else {
            throw BenchError.laneFailed(
                scenario: label, status: outcome.status, output: String(outcome.output.suffix(4000)))
        }
        var result = ScenarioResult(kind: kind, tool: "kiln", label: label, seconds: seconds)
        result.processors = reports.map {
            ProcessorTiming(ref: $0.ref!, status: $0.status!, seconds: $0.seconds ?? 0, phases: $0.phases)
        }
        result.built = reports.filter { $0.status == "built" }.count
        result.failed = reports.filter { $0.status == "failed" }.count
        result.failure = reports.first { $0.status == "failed" }.map { "\($0.ref!): \($0.message ?? "failed")" }
        result.peakMemoryMiB = Double(outcome.peakMemory) / 1_048_576
        var platforms = [String]()
        for report in reports {
            for entry in report.platforms ?? [] where !platforms.contains(entry.platform) {
                platforms.append(entry.platform)
            }
        }
        return Outcome(
            result: result, platforms: platforms,
            repositories: Array(Set(reports.compactMap(\.repository))))
    }

    /// The fields of a `--json` report line the bench reads.
    struct LaneLine: Decodable {
        struct Platform: Decodable { var platform: String }
        var ref: String?
        var status: String?
        var seconds: Double?
        var phases: ProcessorReport.Phases?
        var message: String?
        var repository: String?
        var platforms: [Platform]?
    }
}
