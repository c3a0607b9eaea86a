import Foundation
import Testing

/// A lane's hit must be true of the registry as it is: the pinned images exist, and the
/// version tag names the index of the current inputs.
@Suite("A hit is true of the registry")
struct LaneTruthTests {
    static let file = "tools/llm/litellm/1/registry.yaml"

    static func build(_ fixture: LaneFixture, version: Int, cache: String? = nil) throws -> [String: Any] {
        try fixture.write("code/libs/runtime_common/truth-version.txt", "\(version)\n")
        return try #require(
            try fixture.run(["build", "--push", "--pin", "--ref", "llm/litellm@1"], cache: cache)["llm/litellm@1"])
    }

    static func versionTag(_ fixture: LaneFixture) throws -> String {
        let result = try Tools.shell(
            "set -o pipefail; skopeo inspect --raw --tls-verify=false docker://\(fixture.registryHost)/acme/llm-litellm:1 | sha256sum"
        )
        try #require(result.status == 0, "\(result.stderr)")
        return "sha256:" + result.stdout.prefix(64)
    }

    @Test(
        "a deleted platform manifest: stale to --check and plan from a warm store, no stop for prune, pushed again; verify then passes"
    )
    func deletedManifest() throws {
        try Tools.require("skopeo", package: "skopeo")
        let fixture = try LaneFixture("truth-deleted")
        _ = try Self.build(fixture, version: 1)
        let pins = try PruneTests.pinned(fixture, Self.file)
        let arm64 = try #require(
            pins.first { reference in
                let text = (try? String(contentsOfFile: fixture.repo + "/" + Self.file, encoding: .utf8)) ?? ""
                return text.contains("arm64: \(reference)")
            })
        let deleted = try Tools.run(["skopeo", "delete", "--tls-verify=false", "docker://\(arm64)"])
        try #require(deleted.status == 0, "\(deleted.stderr)")
        #expect(!(try PruneTests.inspect(arm64)))
        // The store that built it still has it: no reason to call the pin right.
        let checked = try fixture.run(["build", "--check", "--ref", "llm/litellm@1"], expect: 1)
        #expect(checked["llm/litellm@1"]?["status"] as? String == "stale", "\(checked)")
        let planned = try fixture.run(["plan", "--ref", "llm/litellm@1"])
        #expect(planned["llm/litellm@1"]?["status"] as? String == "would-build", "\(planned)")
        // The index still lists the deleted manifest: prune keeps what it can and goes on.
        _ = try fixture.run(["prune", "--registry-only", "--older-than", "0"])

        let again = try Self.build(fixture, version: 1)
        let caches = (again["platforms"] as? [[String: Any]] ?? []).map {
            "\($0["platform"] ?? "?"): \($0["cache"] ?? "?")"
        }
        #expect(!caches.contains { $0.hasPrefix("linux/arm64") && $0.hasSuffix(": hit") }, "\(caches)")
        #expect(try PruneTests.inspect(arm64), "the pinned arm64 image is back")
        #expect(try PruneTests.pinned(fixture, Self.file) == pins)
        let verified = try fixture.run(["verify", "--ref", "llm/litellm@1"])
        #expect(verified["llm/litellm@1"]?["status"] as? String == "ok", "\(verified)")
    }

    @Test("inputs reverted: the version tag moves back to the index of the pinned images, warm and on a fresh runner")
    func revertedInputs() throws {
        try Tools.require("skopeo", package: "skopeo")
        let fixture = try LaneFixture("truth-revert")
        let first = try Self.build(fixture, version: 1)
        let index1 = try #require(first["index"] as? String)
        #expect(try Self.versionTag(fixture) == index1)
        let second = try Self.build(fixture, version: 2)
        let index2 = try #require(second["index"] as? String)
        #expect(index2 != index1)
        #expect(try Self.versionTag(fixture) == index2)
        #expect(try Self.build(fixture, version: 1)["index"] as? String == index1)
        #expect(try Self.versionTag(fixture) == index1, "back to v1's inputs, the tag still names v2's index")
        #expect(try Self.build(fixture, version: 2)["index"] as? String == index2)
        #expect(try Self.versionTag(fixture) == index2, "warm")
        let fresh = try fixture.scratch.sub("fresh")
        #expect(try Self.build(fixture, version: 1, cache: fresh)["index"] as? String == index1)
        #expect(try Self.versionTag(fixture) == index1, "on a fresh runner")
    }

    @Test("a key tag moved to another platform's image is not used: built again, and verify names the platform")
    func keyTagOfAnotherPlatform() throws {
        try Tools.require("skopeo", package: "skopeo")
        let fixture = try LaneFixture("truth-platform")
        let first = try Self.build(fixture, version: 1)
        let platforms = first["platforms"] as? [[String: Any]] ?? []
        func entry(_ name: String, in report: [String: Any]) -> [String: Any] {
            (report["platforms"] as? [[String: Any]] ?? []).first { ($0["platform"] as? String ?? "").hasPrefix(name) }
                ?? [:]
        }
        try #require(platforms.count == 2, "\(platforms)")
        let amd64 = try #require(entry("linux/amd64", in: first)["digest"] as? String)
        let arm64 = try #require(entry("linux/arm64", in: first)["digest"] as? String)
        let key = try #require(entry("linux/amd64", in: first)["key"] as? String)
        let repository = "\(fixture.registryHost)/acme/llm-litellm"
        let moved = try Tools.run([
            "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
            "docker://\(repository)@\(arm64)", "docker://\(repository):kiln-\(key)",
        ])
        try #require(moved.status == 0, "\(moved.stderr)")

        // A fresh runner finds the amd64 key's tag naming the arm64 image.
        let fresh = try fixture.scratch.sub("fresh")
        let again = try Self.build(fixture, version: 1, cache: fresh)
        let rebuilt = entry("linux/amd64", in: again)
        #expect(rebuilt["cache"] as? String == "miss", "\(rebuilt)")
        #expect((rebuilt["reason"] as? String ?? "").contains("linux/arm64"), "\(rebuilt)")
        #expect(rebuilt["digest"] as? String == amd64, "the amd64 image, built again")
        #expect(try PruneTests.pinned(fixture, Self.file).contains("\(repository)@\(amd64)"))
        let tag = try Tools.shell(
            "set -o pipefail; skopeo inspect --raw --tls-verify=false docker://\(repository):kiln-\(key) | sha256sum")
        #expect("sha256:" + tag.stdout.prefix(64) == amd64, "the key tag names the amd64 image again")

        // A pin that names the other platform's image is stale, and verify says which.
        let text = try String(contentsOfFile: fixture.repo + "/" + Self.file, encoding: .utf8)
        try fixture.write(
            Self.file,
            text.replacingOccurrences(of: "amd64: \(repository)@\(amd64)", with: "amd64: \(repository)@\(arm64)"))
        let verified = try fixture.run(
            ["verify", "--ref", "llm/litellm@1"], cache: try fixture.scratch.sub("verify"), expect: nil)
        let report = try #require(verified["llm/litellm@1"])
        #expect(report["status"] as? String == "stale", "\(report)")
        #expect(
            (report["message"] as? String ?? "").contains("names an image for linux/arm64/v8, not linux/amd64"),
            "\(report)")
    }

    @Test(
        "a platform dropped from kiln.yaml: its pin is stale to --check and verify, --pin takes it out (or reports it)")
    func droppedPlatform() throws {
        let fixture = try LaneFixture("truth-dropped")
        _ = try Self.build(fixture, version: 1)
        let pinned = try String(contentsOfFile: fixture.repo + "/" + Self.file, encoding: .utf8)
        let arm64Line = try #require(pinned.split(separator: "\n").first { $0.contains("arm64: ") })
        let config = try String(contentsOfFile: fixture.repo + "/kiln.yaml", encoding: .utf8)
        let narrowed = config.replacingOccurrences(
            of: "platforms: [linux/amd64, linux/arm64]", with: "platforms: [linux/amd64]")
        try #require(narrowed != config)
        try fixture.write("kiln.yaml", narrowed)

        let checked = try fixture.run(["build", "--check", "--ref", "llm/litellm@1"], expect: 1)["llm/litellm@1"]
        #expect(checked?["status"] as? String == "stale", "\(checked ?? [:])")
        #expect((checked?["message"] as? String ?? "").contains("image.platforms.arm64"), "\(checked ?? [:])")
        let verified = try fixture.run(["verify", "--ref", "llm/litellm@1"], expect: 1)["llm/litellm@1"]
        #expect((verified?["message"] as? String ?? "").contains("image.platforms.arm64"), "\(verified ?? [:])")

        // unbuilt-pins: report leaves the pin and calls the processor stale.
        try fixture.write("kiln.yaml", narrowed + "unbuilt-pins: report\n")
        let reported = try fixture.run(["build", "--push", "--pin", "--ref", "llm/litellm@1"], expect: 1)
        #expect(reported["llm/litellm@1"]?["status"] as? String == "stale")
        #expect(try String(contentsOfFile: fixture.repo + "/" + Self.file, encoding: .utf8) == pinned)

        // The default takes the line out, every other byte kept.
        try fixture.write("kiln.yaml", narrowed)
        let removed = try Self.build(fixture, version: 1)
        #expect((removed["pins"] as? [String] ?? []).contains("image.platforms.arm64: (removed)"), "\(removed)")
        let after = try String(contentsOfFile: fixture.repo + "/" + Self.file, encoding: .utf8)
        #expect(after == pinned.replacingOccurrences(of: arm64Line + "\n", with: ""))
        _ = try fixture.run(["build", "--check", "--ref", "llm/litellm@1"])
        #expect(try fixture.run(["verify", "--ref", "llm/litellm@1"])["llm/litellm@1"]?["status"] as? String == "ok")
    }

    @Test("provenance: a failed attach leaves no key tag, so the rerun attaches it; a key tag without one is repaired")
    func provenanceOnEveryHit() throws {
        try Tools.require("skopeo", package: "skopeo")
        let fixture = try LaneFixture("truth-provenance")
        let proxy = try FaultProxy(
            upstream: fixture.registry, rules: [.init("status", method: "PUT", path: "/manifests/sha256-", status: 500)]
        )
        fixture.registryHost = proxy.host
        let ref = "text/echo@1"
        let failed = try fixture.run(["build", "--push", "--pin", "--ref", ref], expect: nil)[ref]
        #expect(failed?["status"] as? String == "failed", "\(failed ?? [:])")
        let planned = try fixture.run(["plan", "--ref", ref])[ref]
        let key = try #require((planned?["platforms"] as? [[String: Any]])?.first?["key"] as? String)
        let repository = "\(fixture.registry.host)/acme/text-echo"
        #expect(!(try PruneTests.inspect("\(repository):kiln-\(key)")), "a key tag without its provenance")

        try proxy.set([])
        let rebuilt = try fixture.run(["build", "--push", "--pin", "--ref", ref])[ref]
        #expect(rebuilt?["status"] as? String == "built", "\(rebuilt ?? [:])")
        func verified() throws -> String? {
            let fresh = try fixture.scratch.sub("verify-\(UUID().uuidString.prefix(6))")
            let report = try fixture.run(["verify", "--provenance", "--ref", ref], cache: fresh, expect: nil)[ref]
            return (report?["status"] as? String).map { "\($0) \(report?["message"] as? String ?? "")" }
        }
        let afterRerun = try verified()
        #expect(afterRerun == "ok ", "the rerun attached the provenance: \(afterRerun ?? "-")")

        // A key tag whose provenance is gone (from before kiln pushed key tags last): a fresh
        // runner's hit attaches it again.
        let image = try #require((rebuilt?["platforms"] as? [[String: Any]])?.first?["digest"] as? String)
        let dropped = try Tools.run([
            "skopeo", "delete", "--tls-verify=false", "docker://\(repository):sha256-\(image.dropFirst(7))",
        ])
        try #require(dropped.status == 0, "\(dropped.stderr)")
        #expect(try verified()?.hasPrefix("stale") == true)
        let hit = try fixture.run(["build", "--push", "--pin", "--ref", ref], cache: try fixture.scratch.sub("fresh"))[
            ref]
        #expect(hit?["status"] as? String == "hit", "\(hit ?? [:])")
        #expect(try verified() == "ok ", "the hit repaired the provenance")
    }

    @Test(
        "an unreachable registry or a missing owner fails the lane once, before any processor",
        arguments: ["unreachable", "no owner"])
    func failsOnce(_ cause: String) throws {
        let fixture = try LaneFixture("truth-once-\(cause.prefix(2))", example: false)
        try GeneratedRepository.copyProcessors(in: fixture, names: 12, versions: 2)
        if cause == "unreachable" {
            fixture.registryHost = "127.0.0.1:\(try RegistryServer.freePort())"
        } else {
            try fixture.write("kiln.yaml", "processors: [tools/**/registry.yaml]\n")
        }
        let run = try fixture.runWithResult(
            ["build", "--push", "--pin"], expect: nil, environment: ["GITHUB_REPOSITORY_OWNER": ""])
        #expect(run.result.status != 0)
        #expect(run.reports.isEmpty, "no processor was worked on: \(run.reports.keys.sorted())")
        let output = run.result.stdout + run.result.stderr
        let needle = cause == "unreachable" ? fixture.registryHost : "{owner}"
        let mentions = output.split(separator: "\n").filter { $0.contains(needle) }.count
        #expect(mentions == 1, "the error is said on one line, not per processor (\(mentions)): \(output.suffix(2000))")
    }

    @Test(
        "a developer's keys match CI's: the source label comes from origin; a changed label is named with both values")
    func developerKeysMatchCI() throws {
        try Tools.require("git", package: "git")
        let fixture = try LaneFixture("truth-source")
        let made = try Tools.shell(
            "cd '\(fixture.repo)' && git init -q && git remote add origin git@github.com:Acme/processors.git")
        try #require(made.status == 0, "\(made.stderr)")
        let ref = "text/echo@1"
        let runner = ["GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "Acme/processors"]
        let developer = ["GITHUB_SERVER_URL": "", "GITHUB_REPOSITORY": ""]
        _ = try fixture.run(["build", "--push", "--pin", "--ref", ref], environment: runner)
        let checked = try fixture.run(["build", "--check", "--ref", ref], expect: nil, environment: developer)[ref]
        #expect(checked?["status"] as? String == "ok", "\(checked ?? [:])")

        let config = try String(contentsOfFile: fixture.repo + "/kiln.yaml", encoding: .utf8)
        try fixture.write("kiln.yaml", config + "source: https://example.com/other\n")
        let stale = try fixture.run(["build", "--check", "--ref", ref], expect: 1, environment: developer)[ref]
        let message = stale?["message"] as? String ?? ""
        #expect(
            message.contains(
                "org.opencontainers.image.source: 'https://github.com/Acme/processors' → 'https://example.com/other'"),
            "\(message)")
    }

    @Test("flags that would do nothing say so: --pin on a per-platform run; kiln pin of another platform's image")
    func ignoredFlags() throws {
        let fixture = try LaneFixture("truth-flags")
        let ref = "llm/litellm@1"
        let split = try fixture.runWithResult(["build", "--push", "--pin", "--platforms", "linux/arm64", "--ref", ref])
        #expect(split.result.stderr.contains("note: --pin wrote no pin for 1 processor"), "\(split.result.stderr)")
        let before = try String(contentsOfFile: fixture.repo + "/" + Self.file, encoding: .utf8)
        #expect(!before.contains("@sha256:"), "nothing was pinned")

        let arm64 = try #require((split.reports[ref]?["platforms"] as? [[String: Any]])?.first?["digest"] as? String)
        let pin = [
            "pin", "--root", fixture.repo, "--ref", ref, "--platform", "amd64", "--oci",
            "\(fixture.registryHost)/acme/llm-litellm@\(arm64)",
        ]
        let refused = try Tools.kiln(pin)
        #expect(refused.status != 0, "\(refused.stdout)")
        #expect(refused.stderr.contains("is an image for linux/arm64"), "\(refused.stderr)")
        #expect(try String(contentsOfFile: fixture.repo + "/" + Self.file, encoding: .utf8) == before)
        let right = try Tools.kiln(
            Array(pin.dropLast(3)) + ["arm64", "--oci", "\(fixture.registryHost)/acme/llm-litellm@\(arm64)"])
        #expect(right.status == 0, "\(right.stderr)")
    }
}
