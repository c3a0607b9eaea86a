import Foundation
import Testing

/// Base images through `kiln.yaml` `mirrors:` and `bases:`, with the origin registry stopped: the
/// lane keeps building, and a mirror serving the same image gives the same keys and digests.
@Suite("Registry mirrors and base overrides", .serialized)
struct LaneMirrorTests {
    static func keys(_ reports: [String: [String: Any]]) -> [String: [String]] {
        reports.compactMapValues { report in
            (report["platforms"] as? [[String: Any]])?.compactMap { $0["key"] as? String }
        }
    }

    @Test(
        "with the origin stopped, a mirror and a base override serve the base: same keys, same images, and new builds still work"
    )
    func mirrors() throws {
        let fixture = try LaneFixture("mirrors")
        let target = try RegistryServer()
        fixture.registryHost = target.host
        let origin = fixture.registry.host
        // The mirror: the same image, byte for byte, under a path prefix on another registry.
        let copied = try Tools.run([
            "skopeo", "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
            "docker://\(origin)/fixtures/busybox:1", "docker://\(target.host)/mirror/fixtures/busybox:1",
        ])
        try #require(copied.status == 0, "\(copied.stderr)")

        let first = try fixture.lane()
        let pinned = try fixture.pins()
        let originalKeys = Self.keys(first)
        fixture.registry.stop()

        let down = try fixture.runWithResult(["plan"], cache: try fixture.scratch.sub("no-mirror"), expect: nil)
        #expect(down.result.status == 5, "without a mirror the stopped origin fails: \(down.result.stderr)")

        try fixture.append("kiln.yaml", "mirrors:\n  \(origin): [\(target.host)/mirror]\n")
        let mirrored = try fixture.run(["build", "--push", "--pin"], cache: try fixture.scratch.sub("mirrored"))
        #expect(Self.keys(mirrored) == originalKeys, "a mirror of the same image changes no key")
        #expect(
            LaneFixture.statuses(mirrored).values.allSatisfy { $0 == "hit" || $0 == "disabled" },
            "\(LaneFixture.statuses(mirrored))")
        #expect(try fixture.pins() == pinned)

        try fixture.append("tools/llm/litellm/1/protocol/ws.py", "# changed while the origin is down\n")
        let rebuilt = try fixture.run(["build", "--push", "--pin"], cache: try fixture.scratch.sub("rebuilt"))
        #expect(rebuilt["llm/litellm@1"]?["status"] as? String == "built", "\(rebuilt["llm/litellm@1"] ?? [:])")
        let index = try Tools.run([
            "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://\(target.host)/acme/llm-litellm:1",
        ])
        #expect(index.status == 0 && index.stdout.contains("arm64"))

        // bases: the same base named by digest on the mirror, instead of the mirrors setting.
        let digest = try #require(
            try Tools.run([
                "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://\(target.host)/mirror/fixtures/busybox:1",
            ]).stdoutBytes.sha256Hex)
        let config = try String(contentsOfFile: fixture.repo + "/kiln.yaml", encoding: .utf8)
        try config.replacingOccurrences(
            of: "mirrors:\n  \(origin): [\(target.host)/mirror]\n",
            with: "bases:\n  \(origin)/fixtures/busybox:1: \(target.host)/mirror/fixtures/busybox@sha256:\(digest)\n"
        )
        .write(toFile: fixture.repo + "/kiln.yaml", atomically: true, encoding: .utf8)
        let replaced = try fixture.run(["plan"], cache: try fixture.scratch.sub("replaced"))
        #expect(Self.keys(replaced) == Self.keys(rebuilt), "the replacement is the same image: same keys")
        #expect(LaneFixture.statuses(replaced).values.allSatisfy { $0 == "hit" || $0 == "disabled" })

        try fixture.append("kiln.yaml", "mirrors:\n  docker.io: [\"ghcr.io:latest\"]\n")
        let bad = try fixture.runWithResult(["plan"], expect: 2).result
        #expect(bad.stderr.contains("kiln.yaml:") && bad.stderr.contains("mirrors.docker.io"), "\(bad.stderr)")
    }

    @Test(
        "a mirror that lies about a digest is skipped with a warning; a base pulled from a mirror says so in provenance"
    )
    func lyingMirrorAndProvenance() throws {
        try Tools.require("curl", package: "curl")
        let fixture = try LaneFixture("mirrors-lying")
        let mirror = try RegistryServer()
        let origin = fixture.registry.host
        let copied = try Tools.run([
            "skopeo", "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
            "docker://\(origin)/fixtures/busybox:1", "docker://\(mirror.host)/mirror/fixtures/busybox:1",
        ])
        try #require(copied.status == 0, "\(copied.stderr)")
        let proxy = try FaultProxy(
            upstream: mirror, rules: [.init("wrong-digest", method: "GET", path: "/manifests/")])
        try fixture.append("kiln.yaml", "mirrors:\n  \(origin): [\(proxy.host)/mirror]\n")
        let ref = "llm/litellm@1"
        let lied = try fixture.runWithResult(["build", "--push", "--pin", "--ref", ref])
        #expect(lied.reports[ref]?["status"] as? String == "built")
        let warnings = lied.result.stderr.split(separator: "\n").filter { $0.contains("\"event\":\"warning\"") }
        #expect(warnings.count == 1, "one warning for the lying mirror: \(lied.result.stderr.suffix(3000))")
        #expect(warnings.first?.contains("do not match their digest") == true, "\(warnings)")

        // An honest mirror: the statement names the origin's reference and where the bytes came from.
        try proxy.set([])
        try fixture.append("tools/llm/litellm/1/protocol/ws.py", "# pulled from the mirror\n")
        let built = try fixture.run(
            ["build", "--push", "--pin", "--ref", ref], cache: try fixture.scratch.sub("honest"))[ref]
        let image = try #require((built?["platforms"] as? [[String: Any]])?.first?["digest"] as? String)
        func get(_ path: String) throws -> [String: Any] {
            let result = try Tools.run([
                "curl", "-fsS", "-H",
                "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
                "http://\(fixture.registryHost)/v2/acme/llm-litellm/\(path)",
            ])
            try #require(result.status == 0, "\(path): \(result.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        }
        let referrers = try get("manifests/sha256-\(image.dropFirst(7))")
        let artifact = try #require((referrers["manifests"] as? [[String: Any]])?.first?["digest"] as? String)
        let layer = try #require(
            ((try get("manifests/\(artifact)"))["layers"] as? [[String: Any]])?.first?["digest"] as? String)
        let statement = try get("blobs/\(layer)")
        let dependencies =
            ((statement["predicate"] as? [String: Any])?["buildDefinition"] as? [String: Any])?["resolvedDependencies"]
            as? [[String: Any]] ?? []
        let base = try #require(
            dependencies.first { ($0["uri"] as? String ?? "").contains("fixtures/busybox") }, "\(dependencies)")
        #expect((base["uri"] as? String ?? "").hasPrefix("oci://\(origin)/fixtures/busybox"), "\(base)")
        #expect(
            (base["downloadLocation"] as? String ?? "").hasPrefix(
                "oci://\(proxy.host)/mirror/fixtures/busybox@sha256:"), "\(base)")
    }
}

extension Data {
    /// The SHA-256 of the bytes, in hex (for a manifest's digest).
    var sha256Hex: String? {
        let file = NSTemporaryDirectory() + "kiln-sha-" + UUID().uuidString
        guard (try? write(to: URL(fileURLWithPath: file))) != nil else { return nil }
        defer { try? FileManager.default.removeItem(atPath: file) }
        return (try? Tools.run(["sha256sum", file]))?.stdout.split(separator: " ").first.map(String.init)
    }
}
