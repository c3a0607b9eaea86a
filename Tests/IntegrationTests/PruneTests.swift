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
        let dry = try fixture.runWithResult(["prune", "--registry-only"], cache: elsewhere)
        let object = try JSONSerialization.jsonObject(with: Data(dry.result.stdout.utf8)) as? [String: Any]
        let plans = try #require(object?["registry"] as? [[String: Any]], "\(dry.result.stdout)")
        let plan = try #require(plans.first { $0["repository"] as? String == repository }, "\(plans)")
        let tags = (plan["delete"] as? [[String: Any]] ?? []).compactMap { $0["tag"] as? String }
        #expect(tags.contains("kiln-\(oldKey)"), "\(tags)")
        #expect(tags.contains("sha256-\(oldImage.dropFirst(7))"), "the old image's provenance goes with it: \(tags)")
        #expect(!tags.contains("kiln-\(newKey)") && !tags.contains("1"))
        #expect(try Self.inspect("\(repository):kiln-\(oldKey)"), "a dry run deletes nothing")

        _ = try fixture.run(["prune", "--registry-only", "--delete"], cache: elsewhere)
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
        let dry = try fixture.runWithResult(["prune", "--registry-only"], cache: elsewhere)
        let object = try JSONSerialization.jsonObject(with: Data(dry.result.stdout.utf8)) as? [String: Any]
        let plans = try #require(object?["registry"] as? [[String: Any]], "\(dry.result.stdout)")
        let plan = try #require(plans.first { $0["repository"] as? String == repository }, "\(plans)")
        let deleted = Set(
            (plan["delete"] as? [[String: Any]] ?? []).compactMap { $0["tag"] as? String }.filter {
                $0.hasPrefix("kiln-index-")
            })
        #expect(deleted == before.subtracting(wanted), "exactly the indexes of layers no kept image has: \(deleted)")
        _ = try fixture.run(["prune", "--registry-only", "--delete"], cache: elsewhere)
        #expect(try indexTags() == wanted)
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
