import Foundation
import KilnCore
import KilnLane
import KilnLayers
import KilnOCI
import KilnProcessors
import KilnRegistry
import KilnStore

/// A repository of two COPY-only processors (`t/a@1`, `t/b@1`, both platforms) whose lane runs
/// in-process against an `InMemoryRegistry`: every request the lane sends is answered, nothing
/// leaves the process.
final class InProcessLane {
    static let host = "registry.test"
    let root: String
    let registry = InMemoryRegistry()

    init() throws {
        root =
            FileManager.default.temporaryDirectory.appendingPathComponent("kiln-inproc-\(UUID().uuidString.prefix(8))")
            .path
        try write("kiln.yaml", "processors: [tools/**/registry.yaml]\nowner: acme\n")
        for name in ["a", "b"] {
            let folder = "tools/t/\(name)/1"
            try write(
                "\(folder)/registry.yaml",
                "ref: t/\(name)@1\nbuild:\n  context: .\n  dockerfile: Dockerfile\nimage:\n  platforms:\n    amd64: sha256:pending\n    arm64: sha256:pending\n"
            )
            try write("\(folder)/Dockerfile", "FROM scratch\nCOPY \(folder)/data.txt /data.txt\nCMD [\"/data\"]\n")
            try write("\(folder)/data.txt", "\(name) 0\n")
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func write(_ path: String, _ text: String) throws {
        let full = root + "/" + path
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: true, encoding: .utf8)
    }

    func read(_ path: String) -> String { (try? String(contentsOfFile: root + "/" + path, encoding: .utf8)) ?? "" }

    /// A lane over the repository with `store` (a folder under the root), on `platforms` (nil:
    /// as kiln.yaml says).
    func lane(store: String, platforms: [Platform]? = nil, push: Bool = true, pin: Bool = true) throws -> (
        Lane, RegistryClient
    ) {
        var config = try LaneConfig.load(root: root)
        config.registry = Self.host
        var settings = LaneSettings(config: config, layerOptions: try LayerOptions.standard(environment: [:]))
        settings.platforms = platforms
        settings.push = push
        settings.pin = pin
        settings.source = "https://example.com/kiln-tests"
        var configuration = RegistryConfiguration()
        configuration.transport = registry
        configuration.retry = RetryPolicy(maxAttempts: 2, baseDelay: 0.01, maxDelay: 0.01)
        let client = try RegistryClient(configuration: configuration)
        let lane = Lane(settings: settings, store: try ContentStore(root: root + "/.stores/" + store), client: client)
        return (lane, client)
    }

    /// Runs `mode`; the reports by ref.
    func run(
        _ mode: Lane.Mode, store: String, platforms: [Platform]? = nil, push: Bool = true, pin: Bool = true
    ) async throws -> [String: ProcessorReport] {
        let (lane, client) = try lane(store: store, platforms: platforms, push: push, pin: pin)
        defer { Task { await client.shutdown() } }
        let reports = try await lane.run(mode)
        return Dictionary(uniqueKeysWithValues: reports.map { ($0.ref, $0) })
    }

    /// Every `REGISTRY/PATH@sha256:…` the processors' files pin, as (repository path, digest).
    func pins() -> [(repository: String, digest: String)] {
        ["a", "b"].flatMap { name in
            read("tools/t/\(name)/1/registry.yaml").split(separator: "\n").compactMap { line in
                guard let at = line.range(of: Self.host + "/"), let sign = line.range(of: "@sha256:") else {
                    return nil
                }
                return (String(line[at.upperBound..<sign.lowerBound]), "sha256:" + line[sign.upperBound...])
            }
        }
    }
}
