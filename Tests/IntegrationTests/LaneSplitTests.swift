import Foundation
import Testing

/// A lane spread over runners: one per platform, or a matrix of shards, each its own process with
/// its own checkout and store, sharing only the registry; `kiln assemble` then tags and pins.
@Suite("The lane split across runners", .serialized)
struct LaneSplitTests {
    /// Another checkout of the fixture's repository (a runner's own `actions/checkout`).
    static func checkout(_ fixture: LaneFixture, _ name: String) throws -> String {
        let path = fixture.scratch.path + "/" + name
        let copied = try Tools.shell("cp -r '\(fixture.repo)' '\(path)'")
        try #require(copied.status == 0, "\(copied.stderr)")
        return path
    }

    /// Starts a lane command in `checkout` with a store of its own.
    static func runner(_ fixture: LaneFixture, checkout: String, _ arguments: [String]) throws -> BackgroundKiln {
        let store = fixture.scratch.path + "/store-" + UUID().uuidString.prefix(8)
        return try BackgroundKiln(
            arguments + [
                "--root", checkout, "--registry", fixture.registryHost, "--build-arg",
                "BASE_IMAGE=\(fixture.baseReference)", "--json", "--cache-dir", store,
            ])
    }

    static func files(_ root: String) throws -> [String: Data] {
        let found = try Tools.shell("cd '\(root)' && find . -name registry.yaml | sort")
        var result = [String: Data]()
        for path in found.stdout.split(separator: "\n") {
            result[String(path)] = FileManager.default.contents(atPath: root + "/" + path)
        }
        return result
    }

    static func tags(_ fixture: LaneFixture, _ repository: String) throws -> [String] {
        let listed = try Tools.run([
            "skopeo", "list-tags", "--tls-verify=false", "docker://\(fixture.registry.host)/\(repository)",
        ])
        guard listed.status == 0,
            let object = try JSONSerialization.jsonObject(with: listed.stdoutBytes) as? [String: Any]
        else { return [] }
        return object["Tags"] as? [String] ?? []
    }

    @Test(
        "an amd64 runner and an arm64 runner at once push platform manifests only; assemble tags and pins full indexes, or names what is missing"
    )
    func platformRunners() throws {
        let fixture = try LaneFixture("split-platforms")
        let before = try Self.files(fixture.repo)
        let amd64Checkout = try Self.checkout(fixture, "runner-amd64")
        let arm64Checkout = try Self.checkout(fixture, "runner-arm64")
        let amd64 = try Self.runner(
            fixture, checkout: amd64Checkout, ["build", "--push", "--pin", "--platforms", "linux/amd64"])
        let arm64 = try Self.runner(
            fixture, checkout: arm64Checkout, ["build", "--push", "--pin", "--platforms", "linux/arm64"])
        #expect(amd64.wait() == 0, "\(amd64.stderr)")
        #expect(arm64.wait() == 0, "\(arm64.stderr)")
        let arm64Reports = LaneFixture.reports(arm64.stdout)
        #expect(arm64Reports["llm/litellm@1"]?["partial"] as? Bool == true)
        #expect(arm64Reports["text/echo@1"]?["status"] as? String == "skipped", "text/echo builds for amd64 only")

        // No version tag moved to a one-platform index; only text/echo (amd64 only, so complete
        // on the amd64 runner) is tagged and pinned there.
        #expect(!(try Self.tags(fixture, "acme/llm-litellm")).contains("1"))
        #expect(!(try Self.tags(fixture, "acme/text-summarize")).contains("3"))
        #expect(try Self.tags(fixture, "acme/text-echo").contains("1"))
        let arm64Files = try Self.files(arm64Checkout)
        #expect(arm64Files == before, "the arm64 runner pinned something")
        let amd64Files = try Self.files(amd64Checkout)
        #expect(amd64Files.filter { $0.value != before[$0.key] }.keys.sorted() == ["./tools/text/echo/1/registry.yaml"])

        // The final step, from a third checkout and a fresh store.
        let finalCheckout = try Self.checkout(fixture, "runner-final")
        let assemble = try Self.runner(fixture, checkout: finalCheckout, ["assemble", "--pin"])
        #expect(assemble.wait() == 0, "\(assemble.stderr)")
        let assembled = LaneFixture.reports(assemble.stdout)
        #expect(
            assembled["llm/litellm@1"]?["status"] as? String == "assembled"
                && assembled["text/summarize@3"]?["status"] as? String == "assembled")
        #expect(assembled.values.allSatisfy { ($0["stepsRun"] as? Int ?? 0) == 0 })
        let index = try Tools.run([
            "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://\(fixture.registry.host)/acme/llm-litellm:1",
        ])
        #expect(
            index.status == 0 && index.stdout.contains("\"amd64\"") && index.stdout.contains("\"arm64\""),
            "\(index.stdout)")
        let pinned = try String(contentsOfFile: finalCheckout + "/tools/llm/litellm/1/registry.yaml", encoding: .utf8)
        #expect(
            pinned.contains("amd64: \(fixture.registry.host)/acme/llm-litellm@sha256:")
                && pinned.contains("arm64: \(fixture.registry.host)/acme/llm-litellm@sha256:"))
        // The same pins a single full run gives.
        let single = try fixture.lane()
        #expect(single["llm/litellm@1"]?["status"] as? String == "hit")
        #expect(try Self.files(fixture.repo) == Self.files(finalCheckout))

        // A processor changed and built for amd64 only: assemble fails it, naming the platform.
        try fixture.append("tools/llm/litellm/1/protocol/ws.py", "# changed\n")
        _ = try fixture.run(["build", "--push", "--platforms", "linux/amd64"])
        let missing = try fixture.runWithResult(["assemble", "--pin"], expect: 2)
        let message = missing.reports["llm/litellm@1"]?["message"] as? String ?? ""
        #expect(
            missing.reports["llm/litellm@1"]?["status"] as? String == "failed" && message.contains("linux/arm64"),
            "\(message)")
        #expect(missing.reports["text/summarize@3"]?["status"] as? String == "assembled")
        let unchanged = try String(contentsOfFile: fixture.repo + "/tools/llm/litellm/1/registry.yaml", encoding: .utf8)
        #expect(
            unchanged
                == (String(data: try Self.files(finalCheckout)["./tools/llm/litellm/1/registry.yaml"]!, encoding: .utf8))
        )
    }

    @Test("--shard 1/2 and 2/2 at once split the processors by repository without overlap; assemble pins them all")
    func shards() throws {
        let fixture = try LaneFixture("split-shards", example: false)
        try GeneratedRepository.copyProcessors(in: fixture, names: 5, versions: 2)
        let first = try Self.checkout(fixture, "shard-1")
        let second = try Self.checkout(fixture, "shard-2")
        let one = try Self.runner(fixture, checkout: first, ["build", "--push", "--pin", "--shard", "1/2"])
        let two = try Self.runner(fixture, checkout: second, ["build", "--push", "--pin", "--shard", "2/2"])
        #expect(one.wait() == 0, "\(one.stderr)")
        #expect(two.wait() == 0, "\(two.stderr)")
        let a = Set(LaneFixture.reports(one.stdout).keys)
        let b = Set(LaneFixture.reports(two.stdout).keys)
        let all = Set((0..<5).flatMap { name in (1...2).map { GeneratedRepository.ref(name, $0) } })
        #expect(a.isDisjoint(with: b) && a.union(b) == all, "\(a.sorted()) \(b.sorted())")
        #expect(abs(a.count - b.count) <= 2, "shards of 3 and 2 repositories")
        for name in 0..<5 {
            let versions = (1...2).map { GeneratedRepository.ref(name, $0) }
            #expect(
                versions.allSatisfy(a.contains) || versions.allSatisfy(b.contains),
                "the versions of p\(name) went to different runners")
        }
        let final = try Self.checkout(fixture, "shard-final")
        let assemble = try Self.runner(fixture, checkout: final, ["assemble", "--pin"])
        #expect(assemble.wait() == 0, "\(assemble.stderr)")
        let reports = LaneFixture.reports(assemble.stdout)
        #expect(reports.count == 10 && reports.values.allSatisfy { $0["status"] as? String == "assembled" })
        let pinned = try Self.files(final)
        let (firstFiles, secondFiles) = (try Self.files(first), try Self.files(second))
        for (path, bytes) in pinned {
            // Exactly one shard pinned each processor, with the bytes assemble writes.
            let fromShards = [firstFiles[path], secondFiles[path]].compactMap { $0 }.filter {
                String(decoding: $0, as: UTF8.self).contains("@sha256:")
            }
            #expect(fromShards == [bytes], "\(path)")
        }
        let bad = try Tools.kiln(["plan", "--shard", "3/2", "--root", final])
        #expect(bad.status == 64 && bad.stderr.contains("--shard takes I/N"))
    }
}
