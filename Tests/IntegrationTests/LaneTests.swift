import Foundation
import Testing

/// The build-and-pin lane on the example monorepo (`examples/monorepo`), copied to a scratch
/// folder, against a loopback registry holding the busybox base.
@Suite("kiln build (lane)", .serialized)
struct LaneTests {
    typealias Setup = LaneFixture

    static func statuses(_ reports: [String: [String: Any]]) -> [String: String] {
        reports.mapValues { $0["status"] as? String ?? "?" }
    }

    static let all = ["llm/litellm@1", "text/echo@1", "text/summarize@3"]

    @Test("first run builds and pins all; the second builds and uploads nothing and changes no byte")
    func firstAndSecondRun() throws {
        let setup = try Setup("lane-runs")
        let before = try setup.pins()
        let first = try setup.lane()
        #expect(
            Self.statuses(first) == [
                "llm/litellm@1": "built", "text/echo@1": "built", "text/summarize@3": "built",
                "legacy/old@1": "disabled",
            ])
        let pinned = try setup.pins()
        for (path, bytes) in pinned where !path.contains("legacy") {
            #expect(bytes != before[path], "\(path) was not pinned")
        }
        #expect(pinned["./tools/legacy/old/1/registry.yaml"] == before["./tools/legacy/old/1/registry.yaml"])
        // The pins name images the registry has, checked by skopeo.
        let litellm = String(decoding: pinned["./tools/llm/litellm/1/registry.yaml"]!, as: UTF8.self)
        let amd64 = try #require(
            litellm.split(separator: "\n").first { $0.contains("amd64: ") }?.split(separator: " ").last)
        #expect(amd64.hasPrefix("\(setup.registry.host)/acme/llm-litellm@sha256:"))
        let inspected = try Tools.run(["skopeo", "inspect", "--tls-verify=false", "docker://\(amd64)"])
        #expect(
            inspected.status == 0 && inspected.stdout.contains("\"Architecture\": \"amd64\""), "\(inspected.stderr)")
        let echo = String(decoding: pinned["./tools/text/echo/1/registry.yaml"]!, as: UTF8.self)
        #expect(
            echo.contains("oci: \"\(setup.registry.host)/acme/text-echo@sha256:"),
            "the index pin keeps its quotes: \(echo)")
        #expect(echo.contains("# the lane pins the index digest here"))

        let mark = setup.registry.mark()
        let second = try setup.lane()
        #expect(Self.statuses(second).filter { $0.value != "disabled" }.values.allSatisfy { $0 == "hit" })
        #expect(second.values.allSatisfy { ($0["pushedBytes"] as? Int) == 0 })
        #expect(setup.uploads(since: mark).isEmpty, "second run uploaded: \(setup.uploads(since: mark))")
        #expect(try setup.pins() == pinned, "a run with no change must leave every registry.yaml byte-identical")
    }

    @Test("a change rebuilds exactly the processors that copy the changed file")
    func rebuildsExactly() throws {
        let setup = try Setup("lane-changes")
        _ = try setup.lane()

        try setup.append("tools/llm/litellm/1/protocol/ws.py", "# one processor's own file\n")
        let own = try setup.lane()
        #expect(
            Self.statuses(own) == [
                "llm/litellm@1": "built", "text/echo@1": "hit", "text/summarize@3": "hit", "legacy/old@1": "disabled",
            ])

        try setup.append("code/libs/textkit/normalize.py", "# a shared library two processors copy\n")
        let plan = try setup.run(["plan"])
        let reasons =
            (plan["text/echo@1"]?["platforms"] as? [[String: Any]])?.compactMap { $0["reason"] as? String } ?? []
        #expect(reasons == ["code/libs/textkit/normalize.py changed"], "plan gave \(reasons)")
        let shared = try setup.lane()
        #expect(
            Self.statuses(shared) == [
                "llm/litellm@1": "hit", "text/echo@1": "built", "text/summarize@3": "built", "legacy/old@1": "disabled",
            ])

        let pinned = try setup.pins()
        try setup.append("code/libs/NOTES.txt", "no COPY reads this\n")
        try setup.append("docs/README.md", "ignored by .dockerignore\n")
        try setup.append("code/apps/core/processors/text_summarize/tests/test_main.py", "# tests are ignored\n")
        try Data("x".utf8).write(to: URL(fileURLWithPath: setup.repo + "/code/libs/textkit/cache.pyc"))
        let mark = setup.registry.mark()
        let untouched = try setup.lane()
        #expect(
            Self.statuses(untouched).filter { $0.value != "disabled" }.values.allSatisfy { $0 == "hit" },
            "\(Self.statuses(untouched))")
        #expect(setup.uploads(since: mark).isEmpty)
        #expect(try setup.pins() == pinned)
    }

    @Test("a second machine (fresh cache) gets every key from the registry and pushes nothing")
    func secondMachine() throws {
        let setup = try Setup("lane-machines")
        let first = try setup.lane()
        let pinned = try setup.pins()
        let mark = setup.registry.mark()
        let other = try setup.scratch.sub("other-cache")
        let second = try setup.lane(cache: other)
        for ref in Self.all {
            #expect(second[ref]?["status"] as? String == "hit")
            let caches = (second[ref]?["platforms"] as? [[String: Any]])?.compactMap { $0["cache"] as? String } ?? []
            #expect(!caches.isEmpty && caches.allSatisfy { $0 == "registry" }, "\(ref): \(caches)")
            #expect(second[ref]?["index"] as? String == first[ref]?["index"] as? String)
        }
        #expect(setup.uploads(since: mark).isEmpty, "\(setup.uploads(since: mark))")
        #expect(try setup.pins() == pinned)
    }

    @Test("--check passes on fresh pins and fails, naming the processor, on a stale one")
    func check() throws {
        let setup = try Setup("lane-check")
        _ = try setup.lane()
        let fresh = try setup.run(["build", "--check"])
        #expect(
            Self.statuses(fresh) == [
                "llm/litellm@1": "ok", "text/echo@1": "ok", "text/summarize@3": "ok", "legacy/old@1": "disabled",
            ])

        let before = try setup.pins()
        let pin = [
            "pin", "--root", setup.repo, "--ref", "llm/litellm@1", "--platform", "arm64", "--oci",
            "\(setup.registry.host)/acme/llm-litellm@sha256:" + String(repeating: "0", count: 64),
        ]
        // A digest the repository does not have is refused; --offline pins it all the same.
        let refused = try Tools.kiln(pin)
        #expect(refused.status != 0 && refused.stderr.contains("has no sha256:000000000000"), "\(refused.stderr)")
        #expect(try setup.pins() == before)
        let edited = try Tools.kiln(pin + ["--offline"])
        #expect(edited.status == 0, "\(edited.stderr)")
        let stale = try setup.run(["build", "--check"], expect: 1)
        #expect(stale["llm/litellm@1"]?["status"] as? String == "stale")
        #expect((stale["llm/litellm@1"]?["pins"] as? [String])?.first?.hasPrefix("image.platforms.arm64: ") == true)
        #expect(stale["text/echo@1"]?["status"] as? String == "ok")
        // --check writes nothing; only the hand edit differs.
        let after = try setup.pins()
        #expect(after.filter { $0.value != before[$0.key] }.keys.sorted() == ["./tools/llm/litellm/1/registry.yaml"])

        try setup.append("code/libs/textkit/normalize.py", "# changed\n")
        let changed = try setup.run(["build", "--check"], expect: 1)
        #expect(changed["text/echo@1"]?["status"] as? String == "stale")
        #expect(
            (changed["text/echo@1"]?["message"] as? String)?.contains("code/libs/textkit/normalize.py changed") == true)
    }

    @Test(
        "a registry that goes down mid-run: finished processors are pinned, the rest are not, and a rerun completes them"
    )
    func registryDownMidRun() throws {
        let setup = try Setup("lane-down")
        // A large file gives text/echo's build a second or two of gzip work: the window in
        // which the registry goes away.
        let big = try Tools.shell("head -c 64M /dev/urandom > '\(setup.repo)/tools/text/echo/1/protocol/model.bin'")
        try #require(big.status == 0)
        let before = try setup.pins()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Tools.kiln)
        process.arguments = ["build", "--push", "--pin", "--jobs", "1"] + setup.common + ["--cache-dir", setup.cache]
        var environment = ProcessInfo.processInfo.environment
        environment["CI"] = "true"
        process.environment = environment
        let errors = Pipe()
        let output = Pipe()
        process.standardError = errors
        process.standardOutput = output
        try process.run()
        // With one job, processors go in ref order; once the second starts building, freeze
        // kiln, stop the registry, and let kiln go on against a dead registry.
        var seen = ""
        var buffer = [UInt8](repeating: 0, count: 4096)
        // With --json, progress comes as JSON events on stderr.
        func echoBuilding() -> Bool {
            seen.split(separator: "\n").contains {
                $0.contains("\"event\":\"building\"") && $0.contains("\"ref\":\"text/echo@1\"")
            }
        }
        while !echoBuilding() {
            let count = read(errors.fileHandleForReading.fileDescriptor, &buffer, buffer.count)
            if count <= 0 { break }
            seen += String(decoding: buffer[..<count], as: UTF8.self)
        }
        kill(process.processIdentifier, SIGSTOP)
        setup.registry.stop()
        kill(process.processIdentifier, SIGCONT)
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        _ = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(
            process.terminationStatus == 5,
            "a network failure exits 5; stderr so far: \(seen); registry running: \(setup.registry.process.isRunning)")
        let reports = Setup.reports(String(decoding: stdout, as: UTF8.self))
        #expect(reports["llm/litellm@1"]?["status"] as? String == "built")
        #expect(reports["text/echo@1"]?["status"] as? String == "failed")
        #expect(reports["text/summarize@3"]?["status"] as? String == "failed")
        let halfway = try setup.pins()
        #expect(halfway["./tools/llm/litellm/1/registry.yaml"] != before["./tools/llm/litellm/1/registry.yaml"])
        #expect(halfway["./tools/text/echo/1/registry.yaml"] == before["./tools/text/echo/1/registry.yaml"])
        #expect(
            halfway["./code/apps/core/processors/text_summarize/registry.yaml"]
                == before["./code/apps/core/processors/text_summarize/registry.yaml"])

        try setup.registry.start()
        let rerun = try setup.lane()
        #expect(
            Self.statuses(rerun) == [
                "llm/litellm@1": "hit", "text/echo@1": "built", "text/summarize@3": "built", "legacy/old@1": "disabled",
            ])
        let done = try setup.pins()
        #expect(done["./tools/text/echo/1/registry.yaml"] != before["./tools/text/echo/1/registry.yaml"])
        #expect(done["./tools/llm/litellm/1/registry.yaml"] == halfway["./tools/llm/litellm/1/registry.yaml"])
    }

    @Test("verify flags a pin deleted from the registry and one whose inputs changed")
    func verify() throws {
        let setup = try Setup("lane-verify")
        let first = try setup.lane()
        let clean = try setup.run(["verify"])
        #expect(
            Self.statuses(clean) == [
                "llm/litellm@1": "ok", "text/echo@1": "ok", "text/summarize@3": "ok", "legacy/old@1": "disabled",
            ])

        let index = try #require(first["text/echo@1"]?["index"] as? String)
        let deleted = try Tools.run([
            "python3", "-c",
            "import urllib.request as u; u.urlopen(u.Request('http://\(setup.registry.host)/v2/acme/text-echo/manifests/\(index)', method='DELETE'))",
        ])
        #expect(deleted.status == 0, "DELETE failed: \(deleted.stderr)")
        try setup.append("tools/llm/litellm/1/protocol/ws.py", "# changed after pinning\n")
        let drifted = try setup.run(["verify"], expect: 1)
        #expect(drifted["text/echo@1"]?["status"] as? String == "stale")
        #expect((drifted["text/echo@1"]?["message"] as? String)?.contains("does not have") == true)
        #expect(drifted["llm/litellm@1"]?["status"] as? String == "stale")
        #expect(
            (drifted["llm/litellm@1"]?["message"] as? String)?.contains("not the image of the current inputs") == true)
        #expect(drifted["text/summarize@3"]?["status"] as? String == "ok")
    }

    @Test("warm fills a fresh cache (stat cache, key records) so the next run is all local hits")
    func warm() throws {
        let setup = try Setup("lane-warm")
        _ = try setup.lane()
        let fresh = try setup.scratch.sub("fresh-cache")
        // Files changed in the last two seconds are not remembered (their mtime could repeat).
        usleep(2_200_000)
        let warmed = try setup.run(["warm"], cache: fresh)
        #expect(
            Self.statuses(warmed) == [
                "llm/litellm@1": "hit", "text/echo@1": "hit", "text/summarize@3": "hit", "legacy/old@1": "disabled",
            ])
        let stat = try Tools.shell("ls '\(fresh)/stat' | wc -l")
        #expect(
            stat.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "one stat cache for the repository root"
        )
        let next = try setup.run(["plan"], cache: fresh)
        for ref in Self.all {
            let caches = (next[ref]?["platforms"] as? [[String: Any]])?.compactMap { $0["cache"] as? String } ?? []
            #expect(!caches.isEmpty && caches.allSatisfy { $0 == "local" }, "\(ref): \(caches)")
        }
    }

    @Test("--cache-repo keeps the key tags in one repository; another machine still gets hits")
    func cacheRepository() throws {
        let setup = try Setup("lane-cache-repo")
        let cacheRepo = "\(setup.registry.host)/acme/kiln-cache"
        _ = try setup.run(["build", "--push", "--pin", "--cache-repo", cacheRepo])
        let tags = try Tools.run(["skopeo", "list-tags", "--tls-verify=false", "docker://\(cacheRepo)"])
        #expect(tags.status == 0 && tags.stdout.contains("\"kiln-"), "\(tags.stderr)")
        let targetTags = try Tools.run([
            "skopeo", "list-tags", "--tls-verify=false", "docker://\(setup.registry.host)/acme/llm-litellm",
        ])
        #expect(!targetTags.stdout.contains("\"kiln-"), "key tags went to the cache repository, not the target")
        let mark = setup.registry.mark()
        let other = try setup.scratch.sub("other-cache")
        let second = try setup.run(["build", "--push", "--pin", "--cache-repo", cacheRepo], cache: other)
        #expect(
            Self.statuses(second) == [
                "llm/litellm@1": "hit", "text/echo@1": "hit", "text/summarize@3": "hit", "legacy/old@1": "disabled",
            ])
        #expect(setup.uploads(since: mark).isEmpty, "\(setup.uploads(since: mark))")
    }

    /// `tools/run/NAME/1` with a `protocol/` folder and a `registry.yaml` for `run/NAME@1`
    /// (build context the repository root), for a Dockerfile the test writes.
    static func runProcessorFolder(_ setup: Setup, name: String, dockerfile: String? = nil) throws -> String {
        let folder = setup.repo + "/tools/run/\(name)/1"
        try FileManager.default.createDirectory(atPath: folder + "/protocol", withIntermediateDirectories: true)
        try
            "ref: run/\(name)@1\nbuild:\n  context: .\n  dockerfile: Dockerfile\nimage:\n  platforms:\n    amd64: sha256:pending\n"
            .write(toFile: folder + "/registry.yaml", atomically: true, encoding: .utf8)
        if let dockerfile {
            try dockerfile.write(toFile: folder + "/Dockerfile", atomically: true, encoding: .utf8)
        }
        return folder
    }

    @Test(
        "a processor with RUN joins the lane: its steps run once per platform, and only what a change reaches runs again"
    )
    func runProcessor() throws {
        try ARM64Emulation.register()
        let setup = try Setup("lane-run")
        let folder = try Self.runProcessorFolder(setup, name: "steps")
        try """
            ARG BASE_IMAGE
            FROM ${BASE_IMAGE}
            RUN mkdir -p /opt && head -c 16 /dev/urandom | sha256sum | cut -c1-16 > /opt/random
            WORKDIR /tool
            COPY code/libs/textkit /tool/libs/textkit
            RUN ls /tool/libs/textkit > /tool/installed && uname -m >> /tool/installed
            COPY tools/run/steps/1/protocol/ /tool/protocol/
            CMD ["sh"]
        """.write(toFile: folder + "/Dockerfile", atomically: true, encoding: .utf8)
        try "v1\n".write(toFile: folder + "/protocol/app.txt", atomically: true, encoding: .utf8)
        func run() throws -> [String: Any] {
            try #require(try setup.run(["build", "--push", "--pin", "--ref", "run/steps@1"])["run/steps@1"])
        }
        // warm pre-builds the RUN checkpoints; the lane then only assembles.
        let warmed = try #require(try setup.run(["warm", "--ref", "run/steps@1"])["run/steps@1"])
        #expect(warmed["stepsRun"] as? Int == 4, "two RUNs on two platforms: \(warmed)")
        let first = try run()
        #expect(first["status"] as? String == "built" && first["stepsRun"] as? Int == 0, "\(first)")
        #expect(
            String(decoding: FileManager.default.contents(atPath: folder + "/registry.yaml")!, as: UTF8.self).contains(
                "arm64: \(setup.registry.host)/acme/run-steps@sha256:"))
        let again = try run()
        #expect(again["status"] as? String == "hit" && again["stepsRun"] as? Int == 0)
        try "v2\n".write(toFile: folder + "/protocol/app.txt", atomically: true, encoding: .utf8)
        let late = try run()
        #expect(
            late["status"] as? String == "built" && late["stepsRun"] as? Int == 0,
            "a change after the last RUN runs no step: \(late)")
        try setup.append("code/libs/textkit/normalize.py", "# changed\n")
        let plan = try #require(try setup.run(["plan", "--ref", "run/steps@1"])["run/steps@1"])
        let firstStep = plan["firstStep"] as? String ?? ""
        #expect(
            firstStep.contains("Dockerfile:6:") && firstStep.contains("code/libs/textkit/normalize.py changed"),
            "\(firstStep)")
        let steps = plan["runSteps"] as? [[String: Any]] ?? []
        for platform in ["linux/amd64", "linux/arm64"] {
            let mine = steps.filter { ($0["platform"] as? String ?? "").hasPrefix(platform) }
            #expect(
                mine.map { $0["line"] as? Int } == [3, 6] && mine.first?["outcome"] as? String == "key"
                    && mine.last?["outcome"] as? String == "run"
                    && mine.last?["changed"] as? String == "/tool/libs/textkit/normalize.py",
                "plan: the first RUN from its key, the second runs for the file it read: \(steps)")
        }
        let shared = try run()
        #expect(
            shared["status"] as? String == "built" && shared["stepsRun"] as? Int == 2,
            "only the second RUN, on each platform: \(shared)")
    }

    @Test(
        "warm on a fresh store fetches each RUN's checkpoint, read set, execution and layer indexes: a code edit after it reuses both steps with none of them left in the registry"
    )
    func warmPrefetchesReuseChecks() throws {
        try ARM64Emulation.register()
        let setup = try Setup("lane-warm-runs")
        let folder = try Self.runProcessorFolder(
            setup, name: "reads",
            dockerfile: """
                    ARG BASE_IMAGE
                    FROM ${BASE_IMAGE}
                    WORKDIR /tool
                    COPY tools/run/reads/1/protocol/ /tool/protocol/
                    COPY code/libs/textkit /tool/libs/textkit
                    RUN mkdir -p /site && cat /tool/protocol/app.txt > /site/installed
                    RUN mkdir -p /home/app && chmod -R 0777 /home/app
                    CMD ["sh"]
                """)
        try "v1\n".write(toFile: folder + "/protocol/app.txt", atomically: true, encoding: .utf8)
        let ref = "run/reads@1"
        let cold = try #require(try setup.run(["build", "--push", "--pin", "--ref", ref])[ref])
        #expect(cold["stepsRun"] as? Int == 4, "two RUNs on two platforms: \(cold)")

        let warmCache = try setup.scratch.sub("warm-cache")
        let warmed = try #require(try setup.run(["warm", "--ref", ref], cache: warmCache)[ref])
        let outcomes = (warmed["runSteps"] as? [[String: Any]] ?? []).compactMap { $0["outcome"] as? String }
        #expect(warmed["status"] as? String == "hit" && outcomes == ["key", "key", "key", "key"], "\(warmed)")
        let indexes = try Tools.shell("find '\(warmCache)/index' -name '*.members' | wc -l").stdout
        #expect(
            Int(indexes.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 >= 4,
            "the indexes of the layers below each RUN, on both platforms: \(indexes)")

        // The registry loses every read set, execution record and layer index: only what warm
        // fetched can show the steps' reads unchanged.
        let repository = "\(setup.registry.host)/acme/run-reads"
        let tags = try Tools.run(["skopeo", "list-tags", "--tls-verify=false", "docker://\(repository)"]).stdout
        let artifacts = tags.components(separatedBy: "\"").filter {
            $0.hasPrefix("kiln-reads-") || $0.hasPrefix("kiln-run-") || $0.hasPrefix("kiln-index-")
        }
        #expect(artifacts.count >= 8, "\(tags)")
        for tag in artifacts {
            let deleted = try Tools.run(["skopeo", "delete", "--tls-verify=false", "docker://\(repository):\(tag)"])
            try #require(deleted.status == 0, "\(tag): \(deleted.stderr)")
        }
        try setup.append("code/libs/textkit/normalize.py", "# changed\n")
        // The control: a store that was not warmed has nothing left to check the edit with.
        let unwarmed = try #require(
            try setup.run(["plan", "--ref", ref], cache: try setup.scratch.sub("cold-cache"))[ref])
        let firstRuns = (unwarmed["runSteps"] as? [[String: Any]] ?? []).filter { $0["line"] as? Int == 6 }
        #expect(
            firstRuns.count == 2 && firstRuns.allSatisfy { $0["outcome"] as? String == "run" }, "\(unwarmed)")

        let edit = try #require(try setup.run(["build", "--push", "--pin", "--ref", ref], cache: warmCache)[ref])
        #expect(
            edit["status"] as? String == "built" && edit["stepsRun"] as? Int == 0 && edit["stepsReused"] as? Int == 4,
            "both RUNs reused by what they read, on both platforms: \(edit)")
        // The RUN layers stayed in the registry: checked by their indexes, mounted on push.
        let inspected = try Tools.run([
            "skopeo", "inspect", "--tls-verify=false", "--override-arch", "amd64", "--override-os", "linux",
            "docker://\(repository)@\(try #require(edit["index"] as? String))",
        ])
        try #require(inspected.status == 0, "\(inspected.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(inspected.stdout.utf8)) as? [String: Any] ?? [:]
        let runLayers = (object["Layers"] as? [String] ?? []).suffix(2).map { $0.dropFirst("sha256:".count) }
        let held = Set(try FileManager.default.contentsOfDirectory(atPath: warmCache + "/blobs/sha256"))
        #expect(runLayers.count == 2 && runLayers.allSatisfy { !held.contains(String($0)) }, "\(runLayers)")

    }

    @Test(
        "kiln plan says, for each RUN, whether it comes from its key, is reused by what it read, or runs, and the build does as it said"
    )
    func planSaysWhyEachRun() throws {
        try ARM64Emulation.register()
        try Tools.require("strace", package: "strace")
        let setup = try Setup("lane-plan-run")
        let folder = try Self.runProcessorFolder(setup, name: "plan")
        // The processor's shape: code copied before the install, which reads only its requirements.
        try """
            ARG BASE_IMAGE
            FROM ${BASE_IMAGE}
            WORKDIR /tool
            COPY tools/run/plan/1/requirements.txt /tool/
            COPY tools/run/plan/1/protocol/ /tool/protocol/
            RUN mkdir -p /opt/site && while read p; do echo "installed $p" > /opt/site/$p; done < /tool/requirements.txt
            RUN cat /tool/protocol/*.txt > /opt/protocol.all
            CMD ["sh"]
        """.write(toFile: folder + "/Dockerfile", atomically: true, encoding: .utf8)
        try "fastapi\nuvicorn\n".write(toFile: folder + "/requirements.txt", atomically: true, encoding: .utf8)
        try "v1\n".write(toFile: folder + "/protocol/app.txt", atomically: true, encoding: .utf8)
        try "v1\n".write(toFile: folder + "/protocol/other.txt", atomically: true, encoding: .utf8)
        func report(_ command: [String]) throws -> [String: Any] {
            try #require(try setup.run(command + ["--ref", "run/plan@1"])["run/plan@1"])
        }
        // Each platform decides on its own; both must say the same here.
        func amd64(_ report: [String: Any]) -> [[String: Any]] {
            let all = report["runSteps"] as? [[String: Any]] ?? []
            let arm64 = all.filter { ($0["platform"] as? String ?? "").hasPrefix("linux/arm64") }
            let amd64 = all.filter { $0["platform"] as? String == "linux/amd64" }
            #expect(
                arm64.map { "\($0["line"] ?? "") \($0["outcome"] ?? "")" }
                    == amd64.map { "\($0["line"] ?? "") \($0["outcome"] ?? "")" }, "\(all)")
            return amd64
        }
        func outcomes(_ report: [String: Any]) -> [String] {
            amd64(report).map { "\($0["line"] ?? "?") \($0["outcome"] ?? "?")" }
        }
        let cold = try report(["plan"])
        #expect(outcomes(cold) == ["6 run", "7 undecided"], "nothing recorded yet: \(cold)")
        #expect((cold["firstStep"] as? String ?? "").contains("Dockerfile:6:"), "\(cold)")
        let built = try report(["build", "--push", "--pin"])
        #expect(built["stepsRun"] as? Int == 4 && outcomes(built) == ["6 run", "7 run"], "\(built)")
        #expect(
            amd64(cold).allSatisfy { $0["seconds"] == nil }
                && amd64(built).allSatisfy { ($0["seconds"] as? Double ?? 0) > 0 },
            "a build says how long each RUN took, a plan (nothing ran) does not: \(cold) \(built)")

        // A code edit the install does not read, the second RUN does: the plan says so, with the
        // counts, and the build does the same.
        try "v2\n".write(toFile: folder + "/protocol/app.txt", atomically: true, encoding: .utf8)
        let edited = try report(["plan"])
        let steps = amd64(edited)
        #expect(outcomes(edited) == ["6 reused", "7 run"], "\(edited)")
        #expect(
            (steps.first?["paths"] as? Int ?? 0) > 0 && steps.first?["changedBelow"] as? Int == 1
                && (steps.first?["reason"] as? String ?? "").contains("not the 1 path that changed below it"),
            "the install read paths, none of them the one that changed: \(steps)")
        #expect(steps.last?["changed"] as? String == "/tool/protocol/app.txt", "\(steps)")
        #expect((edited["firstStep"] as? String ?? "").contains("Dockerfile:7:"), "\(edited)")
        let rebuilt = try report(["build", "--push", "--pin"])
        #expect(
            rebuilt["stepsRun"] as? Int == 2 && rebuilt["stepsReused"] as? Int == 2
                && outcomes(rebuilt) == ["6 reused", "7 run"], "\(rebuilt)")
        #expect(
            try setup.run(["plan", "--ref", "run/plan@1"])["run/plan@1"]?["status"] as? String == "hit",
            "built and pinned: nothing left to plan")
    }

    @Test("--jobs beats kiln.yaml's jobs, and means processors at once")
    func jobsFlag() throws {
        let setup = try Setup("lane-jobs")
        try setup.append("kiln.yaml", "jobs: 1\n")
        func run(_ extra: [String]) throws -> (jobs: Int?, inFlight: Int) {
            let (_, result) = try setup.runWithResult(["plan"] + extra)
            var jobs: Int?
            // Each processor's events in order; those with nothing to work on (disabled,
            // skipped) start and finish at once and take no job slot.
            var events = [(ref: String, starts: Bool)]()
            var idle = Set<String>()
            for line in result.stderr.split(separator: "\n") {
                guard let event = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    continue
                }
                let ref = event["ref"] as? String ?? ""
                switch event["event"] as? String {
                case "lane": jobs = event["jobs"] as? Int
                case "started": events.append((ref, true))
                case "finished":
                    events.append((ref, false))
                    if ["disabled", "skipped"].contains(event["status"] as? String) { idle.insert(ref) }
                default: break
                }
            }
            var running = 0
            var most = 0
            for event in events where !idle.contains(event.ref) {
                running += event.starts ? 1 : -1
                most = max(most, running)
            }
            return (jobs, most)
        }
        let fromFile = try run([])
        #expect(fromFile.jobs == 1 && fromFile.inFlight == 1, "\(fromFile)")
        let fromFlag = try run(["--jobs", "3"])
        #expect(fromFlag.jobs == 3, "\(fromFlag)")
        let bad = try Tools.kiln(["plan", "--jobs", "0", "--root", setup.repo])
        #expect(bad.status == 64 && bad.stderr.contains("--jobs takes a positive number"))
    }

    @Test(
        "a RUN step two processors share is found, with one HEAD, in the first processor's repository by a fresh runner building the other"
    )
    func sharedCheckpoints() throws {
        let setup = try LaneFixture("lane-shared-steps", example: false)
        try setup.write("kiln.yaml", "processors: [tools/**/registry.yaml]\nowner: acme\n")
        try GeneratedRepository.runProcessors(in: setup, count: 2, platforms: "[linux/amd64]")
        let first = try setup.run(["build", "--push", "--pin", "--ref", "steps/r0@1"])
        #expect(first["steps/r0@1"]?["stepsRun"] as? Int == 2, "\(first)")

        // Another runner, fresh store, only the other processor: the shared step comes from
        // steps/r0's repository, only its own step runs.
        let mark = setup.registry.mark()
        let fresh = try setup.scratch.sub("fresh")
        let second = try setup.run(["build", "--push", "--pin", "--ref", "steps/r1@1"], cache: fresh)
        #expect(
            second["steps/r1@1"]?["status"] as? String == "built" && second["steps/r1@1"]?["stepsRun"] as? Int == 1,
            "\(second)")
        let lookups = setup.registry.requests(since: mark).filter {
            $0.hasPrefix("HEAD") && $0.contains("/manifests/kiln-step-")
        }
        var repositoriesByTag = [String: Set<String>]()
        for lookup in lookups {
            let path = lookup.split(separator: " ")[1]
            let tag = String(path.split(separator: "/").last!)
            repositoriesByTag[tag, default: []].insert(String(path.split(separator: "/manifests/")[0]))
        }
        #expect(
            repositoriesByTag.values.allSatisfy { $0.count == 1 },
            "a step key was looked for in several places: \(repositoriesByTag)")
        #expect(lookups.contains { $0.contains("/v2/acme/steps-r0/manifests/kiln-step-") }, "\(lookups)")

        // A third fresh runner with the whole lane runs nothing.
        let third = try setup.run(["build", "--push", "--pin"], cache: try setup.scratch.sub("third"))
        #expect(third.values.allSatisfy { $0["stepsRun"] as? Int == 0 && $0["status"] as? String == "hit" }, "\(third)")
    }
}
