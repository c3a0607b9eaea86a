import Foundation
import KilnBuild
import KilnCore
import KilnLayers
import KilnOCI
import KilnProcessors
import KilnRegistry
import KilnStore
import KilnTestSupport
import Testing

@testable import KilnLane

/// A repository of processors in a temporary folder, loaded as the lane reads them.
final class Processors {
    let root: String

    init() throws {
        root =
            FileManager.default.temporaryDirectory.appendingPathComponent("kiln-lane-\(UUID().uuidString.prefix(8))")
            .path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// Writes a processor and loads it.
    func processor(_ ref: String, folder: String, platforms: String? = nil) throws -> Processor {
        let directory = root + "/" + folder
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "FROM scratch\n".write(toFile: directory + "/Dockerfile", atomically: true, encoding: .utf8)
        var yaml = "ref: \(ref)\nbuild:\n  dockerfile: Dockerfile\n"
        if let platforms { yaml += "  platforms: \(platforms)\n" }
        try yaml.write(toFile: directory + "/registry.yaml", atomically: true, encoding: .utf8)
        return try Processor.load(file: directory + "/registry.yaml", root: root)
    }

    func lane(platforms: [Platform]? = nil) throws -> (Lane, RegistryClient) {
        var config = LaneConfig(root: root)
        config.owner = "acme"
        var settings = LaneSettings(config: config, layerOptions: try LayerOptions.standard(environment: [:]))
        settings.platforms = platforms
        let client = try RegistryClient()
        let store = try ContentStore(root: root + "/.store")
        return (Lane(settings: settings, store: store, client: client), client)
    }
}

@Suite("The lane's decisions, without a registry")
struct LaneDecisionTests {
    @Test("which platforms a processor is worked on for: skipped, partial or complete")
    func platformPlan() async throws {
        let repo = try Processors()
        let both = try repo.processor("a/both@1", folder: "tools/a/both/1")
        let none = try repo.processor("a/none@1", folder: "tools/a/none/1", platforms: "[]")
        let amd64 = try repo.processor("a/amd@1", folder: "tools/a/amd/1", platforms: "[linux/amd64]")

        let (all, client) = try repo.lane()
        defer { Task { await client.shutdown() } }
        guard case .build(let platforms, let declared, let complete) = all.plan(both) else {
            Issue.record("not built")
            return
        }
        #expect(platforms == [.linuxAMD64, .linuxARM64] && declared == platforms && complete)
        guard case .skip(let reason) = all.plan(none) else {
            Issue.record("not skipped")
            return
        }
        #expect(reason.contains("lists no platform"))

        let (arm, armClient) = try repo.lane(platforms: [.linuxARM64])
        defer { Task { await armClient.shutdown() } }
        guard case .build(let chosen, _, let partial) = arm.plan(both) else {
            Issue.record("not built")
            return
        }
        #expect(chosen == [.linuxARM64] && !partial)
        guard case .skip(let why) = arm.plan(amd64) else {
            Issue.record("not skipped")
            return
        }
        #expect(why.contains("linux/amd64") && why.contains("linux/arm64"))
    }

    @Test("shards deal repositories out round robin: disjoint, complete, versions together")
    func shards() throws {
        let repo = try Processors()
        var processors = [Processor]()
        for name in ["x", "y", "z"] {
            for version in 1...2 {
                processors.append(try repo.processor("n/\(name)@\(version)", folder: "tools/n/\(name)/\(version)"))
            }
        }
        let repository = { (processor: Processor) -> String? in "ghcr.io/acme/\(processor.ref.name)" }
        let first = try #require(Shard(parsing: "1/2")).select(processors, repository: repository).map(
            \.ref.description)
        let second = try #require(Shard(parsing: "2/2")).select(processors, repository: repository).map(
            \.ref.description)
        #expect(Set(first).isDisjoint(with: second) && Set(first + second).count == 6)
        #expect(first == ["n/x@1", "n/x@2", "n/z@1", "n/z@2"] && second == ["n/y@1", "n/y@2"])
        for bad in ["0/2", "3/2", "1/0", "x", "1/2/3"] { #expect(Shard(parsing: bad) == nil, "\(bad)") }
    }

    @Test("the reason a key missed: the Dockerfile, a base, an arg, then files by path")
    func differences() throws {
        let old = InputKey.Parts(
            format: InputKey.format, platform: "linux/amd64", target: "", dockerfile: "aa", args: ["A": "1"],
            bases: [
                "docker.io/library/python@sha256:\(String(repeating: "1", count: 64)) sha256:\(String(repeating: "2", count: 64))"
            ],
            layers: "epoch=0 compression=gzip6", files: ["a.py": "file 644 x", "b.py": "file 644 y"], filesRoot: "2 r")
        var new = old
        new.dockerfile = "bb"
        new.args = ["A": "2", "B": "1"]
        new.bases = [
            "docker.io/library/python@sha256:\(String(repeating: "3", count: 64)) sha256:\(String(repeating: "4", count: 64))"
        ]
        new.files = ["a.py": "file 755 x", "c.py": "file 644 z"]
        let key = InputKey(parts: new)
        #expect(
            key.differences(from: old).map(\.description) == [
                "the Dockerfile changed",
                "base image docker.io/library/python@sha256:\(String(repeating: "3", count: 64)) moved",
                "build arg A changed", "build arg B changed", "a.py changed", "c.py added", "b.py removed",
            ])
        #expect(key.differences(from: new).isEmpty)
    }

    @Test("pin keys: arm64/v8 is arm64, other variants are appended")
    func pinKeys() {
        #expect(Lane.pinKey(.linuxAMD64) == "amd64")
        #expect(Lane.pinKey(.linuxARM64) == "arm64")
        #expect(Lane.pinKey(Platform(os: "linux", architecture: "arm", variant: "v7")) == "armv7")
    }

    @Test("base sources: each mirror in order under its prefix, then the origin; Docker Hub's names are one")
    func baseSources() throws {
        var sources = BaseSources()
        try sources.addMirrors(["mirror.gcr.io", "ghcr.io/acme/hub"], for: "index.docker.io")
        try sources.replace("alpine:3", with: "ghcr.io/acme/alpine@sha256:\(String(repeating: "5", count: 64))")
        let python = try ImageReference(parsing: "python:3.11-slim")
        #expect(
            sources.candidates(for: python).map(\.description) == [
                "mirror.gcr.io/library/python:3.11-slim", "ghcr.io/acme/hub/library/python:3.11-slim",
                "docker.io/library/python:3.11-slim",
            ])
        let alpine = try ImageReference(parsing: "alpine:3")
        #expect(
            sources.candidates(for: alpine).map(\.description) == [
                "ghcr.io/acme/alpine@sha256:\(String(repeating: "5", count: 64))"
            ])
        #expect(throws: ReferenceError.self) { try BaseSources.Mirror(parsing: "mirror.gcr.io:latest/x") }
    }

    @Test("a key memo's lines read back as written, paths with spaces whole; a damaged line reads as nothing")
    func keyMemoLines() {
        func entry(_ text: String) -> Lane.Entry? { Lane.entry(Substring(text).utf8) }
        let numbers: [Int64] = [12, 1_700_000_000_123, -5, Int64(bitPattern: UInt64.max)]
        let written = numbers.map(String.init).joined(separator: " ") + " /repo/a b/c.py"
        #expect(entry(written) == .identity(path: "/repo/a b/c.py", numbers: numbers))
        #expect(entry("d 42 /repo/lib s") == .directory(path: "/repo/lib s", inode: 42))
        #expect(entry("- /repo/.docker ignore") == .absent(path: "/repo/.docker ignore"))
        for damaged in ["", "12 34 /repo/x", "12 x 3 4 /repo/x", "d /repo", "d x /repo", "-", "12 3 4 5"] {
            #expect(entry(damaged) == nil, "'\(damaged)'")
        }
    }
}
