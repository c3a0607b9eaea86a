import Foundation
import Testing

/// `kiln prune`: the registry's stale key tags and what hangs off them go (docker-registry with
/// deletes enabled), pins and version tags stay; the store's unused records and unreachable
/// blobs go. A dry run removes nothing.
@Suite("kiln prune")
struct PruneTests {
    static func inspect(_ reference: String) throws -> Bool {
        try Tools.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "docker://\(reference)"]).status == 0
    }

    @Test("the registry: a superseded key tag and its provenance go, the pinned images and version tags stay")
    func registry() throws {
        try Tools.require("skopeo", package: "skopeo")
        let fixture = try LaneFixture("prune-registry")
        let first = try #require(try fixture.run(["build", "--push", "--pin", "--ref", "text/echo@1"])["text/echo@1"])
        let oldPlatform = try #require((first["platforms"] as? [[String: Any]])?.first)
        let oldKey = try #require(oldPlatform["key"] as? String)
        let oldImage = try #require(oldPlatform["digest"] as? String)
        let repository = try #require(first["repository"] as? String)
        try fixture.append("code/libs/textkit/normalize.py", "# changed\n")
        let second = try #require(try fixture.run(["build", "--push", "--pin", "--ref", "text/echo@1"])["text/echo@1"])
        let newKey = try #require((second["platforms"] as? [[String: Any]])?.first?["key"] as? String)
        #expect(newKey != oldKey)

        // Another machine's empty store: no recent key but the current inputs'.
        let elsewhere = try fixture.scratch.sub("elsewhere")
        let dry = try fixture.runWithResult(["prune", "--registry-only", "--older-than", "0"], cache: elsewhere)
        let object = try JSONSerialization.jsonObject(with: Data(dry.result.stdout.utf8)) as? [String: Any]
        let plans = try #require(object?["registry"] as? [[String: Any]], "\(dry.result.stdout)")
        let plan = try #require(plans.first { $0["repository"] as? String == repository }, "\(plans)")
        let tags = (plan["delete"] as? [[String: Any]] ?? []).compactMap { $0["tag"] as? String }
        #expect(tags.contains("kiln-\(oldKey)"), "\(tags)")
        #expect(tags.contains("sha256-\(oldImage.dropFirst(7))"), "the old image's provenance goes with it: \(tags)")
        #expect(!tags.contains("kiln-\(newKey)") && !tags.contains("1"))
        #expect(try Self.inspect("\(repository):kiln-\(oldKey)"), "a dry run deletes nothing")

        _ = try fixture.run(["prune", "--registry-only", "--older-than", "0", "--delete"], cache: elsewhere)
        #expect(!(try Self.inspect("\(repository):kiln-\(oldKey)")), "the superseded key tag is gone")
        #expect(try Self.inspect("\(repository):kiln-\(newKey)"))
        #expect(try Self.inspect("\(repository):1"), "the version tag stays")
        let verified = try fixture.run(["verify", "--provenance", "--ref", "text/echo@1"], cache: elsewhere)
        #expect(verified["text/echo@1"]?["status"] as? String == "ok", "every pin and its provenance: \(verified)")
    }

    @Test(
        "the registry: a layer index artifact goes once no kept image has its layer; the current images' indexes stay"
    )
    func layerIndexes() throws {
        try ARM64Emulation.register()
        let fixture = try LaneFixture("prune-indexes")
        let folder = try LaneTests.runProcessorFolder(
            fixture, name: "indexed",
            dockerfile: """
                    ARG BASE_IMAGE
                    FROM ${BASE_IMAGE}
                    COPY tools/run/indexed/1/protocol/ /tool/protocol/
                    RUN cat /tool/protocol/app.txt > /installed
                    CMD ["sh"]
                """)
        let ref = "run/indexed@1"
        let repository = "\(fixture.registry.host)/acme/run-indexed"
        func indexTags() throws -> Set<String> {
            let listed = try Tools.run(["skopeo", "list-tags", "--tls-verify=false", "docker://\(repository)"])
            try #require(listed.status == 0, "\(listed.stderr)")
            return Set(listed.stdout.components(separatedBy: "\"").filter { $0.hasPrefix("kiln-index-") })
        }
        func raw(_ digest: String) throws -> [String: Any] {
            let inspected = try Tools.run([
                "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://\(repository)@\(digest)",
            ])
            try #require(inspected.status == 0, "\(inspected.stderr)")
            return try JSONSerialization.jsonObject(with: Data(inspected.stdout.utf8)) as? [String: Any] ?? [:]
        }
        for version in ["v1", "v2"] {
            try "\(version)\n".write(toFile: folder + "/protocol/app.txt", atomically: true, encoding: .utf8)
            let built = try #require(try fixture.run(["build", "--push", "--pin", "--ref", ref])[ref])
            #expect(built["stepsRun"] as? Int == 2, "the RUN read app.txt: it runs on both platforms: \(built)")
        }
        let current = try #require(try fixture.run(["plan", "--ref", ref])[ref]?["index"] as? String)
        var currentLayers = Set<String>()
        for child in try raw(current)["manifests"] as? [[String: Any]] ?? [] {
            let manifest = try raw(try #require(child["digest"] as? String))
            for layer in manifest["layers"] as? [[String: Any]] ?? [] {
                currentLayers.insert(String((layer["digest"] as? String ?? "").dropFirst("sha256:".count)))
            }
        }
        let before = try indexTags()
        let wanted = Set(before.filter { currentLayers.contains(String($0.dropFirst("kiln-index-".count))) })
        #expect(!wanted.isEmpty && wanted.count < before.count, "v1's RUN layers had indexes too: \(before)")

        let elsewhere = try fixture.scratch.sub("elsewhere")
        let dry = try fixture.runWithResult(["prune", "--registry-only", "--older-than", "0"], cache: elsewhere)
        let object = try JSONSerialization.jsonObject(with: Data(dry.result.stdout.utf8)) as? [String: Any]
        let plans = try #require(object?["registry"] as? [[String: Any]], "\(dry.result.stdout)")
        let plan = try #require(plans.first { $0["repository"] as? String == repository }, "\(plans)")
        let deleted = Set(
            (plan["delete"] as? [[String: Any]] ?? []).compactMap { $0["tag"] as? String }.filter {
                $0.hasPrefix("kiln-index-")
            })
        #expect(deleted == before.subtracting(wanted), "exactly the indexes of layers no kept image has: \(deleted)")
        _ = try fixture.run(["prune", "--registry-only", "--older-than", "0", "--delete"], cache: elsewhere)
        #expect(try indexTags() == wanted)
    }

    /// Every `REPOSITORY@sha256:…` written in the processor's file.
    static func pinned(_ fixture: LaneFixture, _ file: String) throws -> Set<String> {
        let text = try String(contentsOfFile: fixture.repo + "/" + file, encoding: .utf8)
        let pattern = try Regex(#"[A-Za-z0-9._/:-]+@sha256:[0-9a-f]{64}"#)
        return Set(text.matches(of: pattern).map { String(text[$0.range]) })
    }

    @Test(
        "the registry: pins on another branch, a tag, a disabled copy and a dropped platform survive, and a racing older checkout only marks"
    )
    func pinsAnywhere() throws {
        try Tools.require("skopeo", package: "skopeo")
        try Tools.require("git", package: "git")
        let fixture = try LaneFixture("prune-pins")
        let file = "tools/llm/litellm/1/registry.yaml"
        func git(_ command: String, in folder: String? = nil) throws {
            let result = try Tools.shell(
                "cd '\(folder ?? fixture.repo)' && git -c user.name=t -c user.email=t@t -c init.defaultBranch=main \(command)"
            )
            try #require(result.status == 0, "git \(command): \(result.stderr)")
        }
        func build(_ version: Int) throws -> Set<String> {
            try fixture.write("code/libs/runtime_common/prune-version.txt", "\(version)\n")
            _ = try fixture.run(["build", "--push", "--pin", "--ref", "llm/litellm@1"])
            let pins = try Self.pinned(fixture, file)
            try #require(pins.count == 2, "both platforms pinned: \(pins)")
            return pins
        }
        let v0 = try build(0)  // pinned, then superseded before any commit: nothing names it
        try git("init -q && git add -A && git commit -qm start")
        let v1 = try build(1)
        try git("commit -qam v1 && git branch release")
        let v2 = try build(2)
        try git("commit -qam v2 && git tag v2 && git worktree add -q ../old release")
        let v3 = try build(3)
        // A disabled copy keeps v3's pins; the checkout moves on and drops arm64.
        let copied = try Tools.shell(
            "cp -r '\(fixture.repo)/tools/llm/litellm/1' '\(fixture.repo)/tools/llm/litellm/1-disabled'")
        try #require(copied.status == 0, "\(copied.stderr)")
        let copy = try String(contentsOfFile: fixture.repo + "/" + file, encoding: .utf8)
            .replacingOccurrences(of: "enabled: true", with: "enabled: false")
        try fixture.write("tools/llm/litellm/1-disabled/registry.yaml", copy)
        let v4 = try build(4)
        let config = try String(contentsOfFile: fixture.repo + "/kiln.yaml", encoding: .utf8)
        try fixture.write(
            "kiln.yaml",
            config.replacingOccurrences(of: "platforms: [linux/amd64, linux/arm64]", with: "platforms: [linux/amd64]"))
        for reference in v0.union(v1).union(v2).union(v3).union(v4) {
            try #require(try Self.inspect(reference), "\(reference) was pushed")
        }

        // An older checkout of the release branch prunes on a fresh runner, racing the lane
        // that wrote v3 and v4 (neither committed): it may only mark them.
        let racing = try Tools.kiln(
            [
                "prune", "--registry-only", "--delete", "--json", "--root", fixture.scratch.path + "/old", "--registry",
                fixture.registryHost, "--build-arg", "BASE_IMAGE=\(fixture.baseReference)", "--cache-dir",
                try fixture.scratch.sub("racing"),
            ])
        try #require(racing.status == 0, "\(racing.stderr)")
        for reference in v0.union(v1).union(v2).union(v3).union(v4) {
            #expect(try Self.inspect(reference), "a prune with the default grace period deleted \(reference)")
        }

        // The checkout prunes later on another fresh runner: what the racing prune marked two
        // seconds ago is due under --older-than 2s; every image a pin anywhere names stays.
        Thread.sleep(forTimeInterval: 2.5)
        let elsewhere = try fixture.scratch.sub("elsewhere")
        let pruned = try fixture.runWithResult(
            ["prune", "--registry-only", "--older-than", "2s", "--delete"], cache: elsewhere)
        let object = try JSONSerialization.jsonObject(with: Data(pruned.result.stdout.utf8)) as? [String: Any]
        #expect((object?["pinnedRefs"] as? Int ?? 0) >= 3, "main, release, v2: \(object ?? [:])")
        let plans = object?["registry"] as? [[String: Any]] ?? []
        let deletions = plans.flatMap { $0["delete"] as? [[String: Any]] ?? [] }
        #expect(
            deletions.allSatisfy { ($0["reason"] as? String ?? "").count > 10 }, "each deletion says why: \(deletions)")
        for reference in v1 {
            #expect(try Self.inspect(reference), "the release branch's pin \(reference) was pruned")
        }
        for reference in v2 { #expect(try Self.inspect(reference), "the tag v2's pin \(reference) was pruned") }
        for reference in v3 { #expect(try Self.inspect(reference), "the disabled copy's pin \(reference) was pruned") }
        for reference in v4 {
            #expect(
                try Self.inspect(reference), "the checkout's pin \(reference) (arm64: a dropped platform) was pruned")
        }
        for reference in v0 {
            #expect(!(try Self.inspect(reference)), "\(reference), pinned nowhere and marked earlier, was kept")
        }

        // v4 (never committed) is superseded and marked; a revert pins it again, which takes
        // the mark off: superseded once more, it starts a new grace period.
        func pending() throws -> [String: String?] {
            let dry = try fixture.runWithResult(["prune", "--registry-only"], cache: elsewhere)
            let plans =
                (try JSONSerialization.jsonObject(with: Data(dry.result.stdout.utf8)) as? [String: Any])?[
                    "registry"] as? [[String: Any]] ?? []
            var found = [String: String?]()
            for entry in plans.flatMap({ $0["pending"] as? [[String: Any]] ?? [] }) {
                found.updateValue(entry["unneededSince"] as? String, forKey: entry["digest"] as? String ?? "")
            }
            return found
        }
        try fixture.write("kiln.yaml", config)  // both platforms again
        _ = try build(5)
        _ = try fixture.run(["prune", "--registry-only", "--delete"], cache: elsewhere)
        let v4Digests = v4.map { String($0.split(separator: "@").last ?? "") }
        let marked = try pending()
        #expect(v4Digests.allSatisfy { marked[$0] != nil }, "v4 is marked once superseded: \(v4Digests) \(marked)")
        #expect(try build(4) == v4, "the revert pins v4 again")
        _ = try build(5)
        let after = try pending()
        for digest in v4Digests {
            #expect(
                after.keys.contains(digest) && after[digest] == .some(nil),
                "v4's old mark survived its revert: \(after)")
        }
    }

    @Test("the store: records unused for --older-than and what only they reach go; --max-size keeps it small")
    func store() throws {
        let fixture = try LaneFixture("prune-store")
        _ = try fixture.lane()
        func prune(_ arguments: [String]) throws -> [String: Any] {
            let result = try Tools.kiln(["prune", "--store-only", "--json", "--cache-dir", fixture.cache] + arguments)
            try #require(result.status == 0, "\(result.stderr)")
            return try #require(
                (try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])?["store"]
                    as? [String: Any])
        }
        let fresh = try prune([])
        #expect(fresh["records"] as? Int == 0 && fresh["blobs"] as? Int == 0, "everything was used just now: \(fresh)")

        // Forty days pass without a build.
        _ = try Tools.shell(
            "find '\(fixture.cache)/keys' '\(fixture.cache)/blobs' -type f -exec touch -d '40 days ago' {} +")
        let blobs = try FileManager.default.contentsOfDirectory(atPath: fixture.cache + "/blobs/sha256").count
        let dry = try prune(["--older-than", "30d"])
        #expect((dry["records"] as? Int ?? 0) > 0 && dry["blobs"] as? Int == blobs, "\(dry)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.cache + "/blobs/sha256").count == blobs)
        _ = try prune(["--older-than", "30d", "--delete"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.cache + "/blobs/sha256").isEmpty)

        // The next lane run still works: everything is in the registry.
        let again = try fixture.lane()
        #expect(again.values.allSatisfy { $0["status"] as? String != "failed" }, "\(again)")
        let bounded = try prune(["--max-size", "1K", "--delete"])
        #expect((bounded["keptBytes"] as? Int ?? .max) <= 1024, "\(bounded)")
    }
}
