import Foundation
import KilnBuild
import KilnCore
import KilnLayers
import KilnOCI
import KilnProcessors
import KilnRegistry
import KilnStore
import Testing

@testable import KilnLane

/// Every input the lane can change reaches the keys derived from `KeyInputs`: the input key and
/// the key memo's fingerprint (a memo that missed one would give silent stale hits), and, where
/// the input reaches a step, the `RUN` step's key and its identity. Each case changes one setting
/// against the same processor; a control changes only how the lane runs, and must move nothing.
@Suite("Every lane input reaches the input key, the memo's fingerprint, the step key and the run identity")
struct KeyDerivationTests {
    enum Derived: String, CaseIterable, Sendable { case inputKey, fingerprint, stepKey, runIdentity }

    /// One change to the lane's settings, and the keys it must move (the others must stay).
    struct Change: Sendable, CustomStringConvertible {
        var description: String
        var moves: Set<Derived>
        var apply: @Sendable (inout LaneSettings) -> Void
    }

    static let every = Set(Derived.allCases)
    /// What the lane adds to the finished image only: no step sees it.
    static let imageOnly: Set<Derived> = [.inputKey, .fingerprint]

    static let changes: [Change] = [
        Change(description: "a build arg the RUN sees", moves: every) { $0.config.buildArgs["VERSION"] = "2" },
        Change(description: "a label", moves: imageOnly) { $0.labels["team"] = "kiln" },
        Change(description: "an annotation", moves: imageOnly) { $0.annotations["note"] = "x" },
        Change(description: "the source label", moves: imageOnly) { $0.source = "https://example.com/other" },
        Change(description: "the layer epoch", moves: every) { $0.layerOptions.epoch = 42 },
        Change(description: "the compression", moves: every) { $0.layerOptions.compression = .none },
        Change(description: "the gzip level", moves: every) { $0.layerOptions.compression = .gzip(level: 9) },
        Change(description: "--jobs (control)", moves: []) { $0.jobs = 9 },
        Change(description: "--check-jobs (control)", moves: []) { $0.checkJobs = 3 },
    ]

    /// Every derived key of the processor under `settings`.
    static func keys(_ settings: LaneSettings, processor: Processor, root: String) async throws -> [Derived: String] {
        var configuration = RegistryConfiguration()
        configuration.transport = InMemoryRegistry()
        let client = try RegistryClient(configuration: configuration)
        defer { Task { await client.shutdown() } }
        var settings = settings
        settings.executor = BuildahExecutor(runtimeRoot: root + "/.runtime")
        let lane = Lane(settings: settings, store: try ContentStore(root: root + "/.store"), client: client)
        let job = try ProcessorJob(
            processor: processor, lane: lane, pinFiles: [processor.file], platforms: [.linuxAMD64])
        let key = try #require(try await job.keys(downloadingLayers: false).first).key.digest
        let step = try #require(try await job.runStepKeys().first)
        let repository = try Lane.repository(try settings.config.repository(for: processor.ref))
        let decisions = try await lane.planRuns(job, platforms: [.linuxAMD64], repository: repository)
        let identity = try #require(decisions.first?.identity, "the plan decided the RUN: \(decisions)")
        return [
            .inputKey: key.hex, .fingerprint: lane.keyFingerprint(processor, platforms: [.linuxAMD64]),
            .stepKey: step.hex, .runIdentity: identity.hex,
        ]
    }

    @Test("each change moves exactly the keys it reaches", arguments: changes)
    func change(_ change: Change) async throws {
        let repo = try Processors()
        let folder = repo.root + "/tools/a/b/1"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try
            "ARG VERSION=1\nFROM scratch\nARG VERSION\nCOPY tools/a/b/1/app.txt /app.txt\nRUN [\"/app.txt\"]\nLABEL v=$VERSION\n"
            .write(toFile: folder + "/Dockerfile", atomically: true, encoding: .utf8)
        try "hello\n".write(toFile: folder + "/app.txt", atomically: true, encoding: .utf8)
        try "ref: a/b@1\nbuild: {context: ., dockerfile: Dockerfile}\n".write(
            toFile: folder + "/registry.yaml", atomically: true, encoding: .utf8)
        let processor = try Processor.load(file: folder + "/registry.yaml", root: repo.root)
        var config = LaneConfig(root: repo.root)
        config.owner = "acme"
        config.registry = InProcessLane.host
        let base = LaneSettings(config: config, layerOptions: LayerOptions())
        var changed = base
        change.apply(&changed)
        let before = try await Self.keys(base, processor: processor, root: repo.root)
        let after = try await Self.keys(changed, processor: processor, root: repo.root)
        for derived in Derived.allCases {
            let moved = before[derived] != after[derived]
            #expect(moved == change.moves.contains(derived), "\(derived), \(change)")
        }
    }
}
