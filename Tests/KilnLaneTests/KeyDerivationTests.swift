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

/// Every input the lane can change reaches both the input key and the key memo's fingerprint:
/// a memo that missed one would give silent stale hits (a hit from the memo for inputs whose
/// image differs). Each case changes one setting against the same processor; a control changes
/// only how the lane runs, and must move neither.
@Suite("Every lane input reaches the input key and the memo's fingerprint")
struct KeyDerivationTests {
    /// One change to the lane's settings, and whether the image (so both keys) must change.
    struct Change: Sendable, CustomStringConvertible {
        var description: String
        var changesImage: Bool
        var apply: @Sendable (inout LaneSettings) -> Void
    }

    static let changes: [Change] = [
        Change(description: "a build arg", changesImage: true) { $0.config.buildArgs["VERSION"] = "2" },
        Change(description: "a label", changesImage: true) { $0.labels["team"] = "kiln" },
        Change(description: "an annotation", changesImage: true) { $0.annotations["note"] = "x" },
        Change(description: "the source label", changesImage: true) { $0.source = "https://example.com/other" },
        Change(description: "the layer epoch", changesImage: true) { $0.layerOptions.epoch = 42 },
        Change(description: "the compression", changesImage: true) { $0.layerOptions.compression = .none },
        Change(description: "the gzip level", changesImage: true) { $0.layerOptions.compression = .gzip(level: 9) },
        Change(description: "--jobs (control)", changesImage: false) { $0.jobs = 9 },
        Change(description: "--check-jobs (control)", changesImage: false) { $0.checkJobs = 3 },
    ]

    static func keys(_ settings: LaneSettings, processor: Processor, root: String) async throws -> (
        key: Digest, fingerprint: String
    ) {
        let client = try RegistryClient()
        defer { Task { await client.shutdown() } }
        let lane = Lane(settings: settings, store: try ContentStore(root: root + "/.store"), client: client)
        let job = try ProcessorJob(
            processor: processor, lane: lane, pinFiles: [processor.file], platforms: [.linuxAMD64])
        let keys = try await job.keys(downloadingLayers: false)
        return (try #require(keys.first).key.digest, lane.keyFingerprint(processor, platforms: [.linuxAMD64]))
    }

    @Test("each change moves both keys, or neither", arguments: changes)
    func change(_ change: Change) async throws {
        let repo = try Processors()
        let folder = repo.root + "/tools/a/b/1"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try "ARG VERSION=1\nFROM scratch\nARG VERSION\nCOPY tools/a/b/1/app.txt /app.txt\nLABEL v=$VERSION\n".write(
            toFile: folder + "/Dockerfile", atomically: true, encoding: .utf8)
        try "hello\n".write(toFile: folder + "/app.txt", atomically: true, encoding: .utf8)
        try "ref: a/b@1\nbuild: {context: ., dockerfile: Dockerfile}\n".write(
            toFile: folder + "/registry.yaml", atomically: true, encoding: .utf8)
        let processor = try Processor.load(file: folder + "/registry.yaml", root: repo.root)
        var config = LaneConfig(root: repo.root)
        config.owner = "acme"
        let base = LaneSettings(config: config, layerOptions: LayerOptions())
        var changed = base
        change.apply(&changed)
        let before = try await Self.keys(base, processor: processor, root: repo.root)
        let after = try await Self.keys(changed, processor: processor, root: repo.root)
        #expect((before.key != after.key) == change.changesImage, "input key, \(change)")
        #expect((before.fingerprint != after.fingerprint) == change.changesImage, "memo fingerprint, \(change)")
    }
}
