import Foundation
import Testing

/// The lane the way CI runs it: many processors at once, several versions of a processor sharing
/// one registry repository, both platforms, `RUN` processors in parallel, fresh runners — round
/// after round, with zero failures allowed.
@Suite("The lane at CI scale (stress)", .serialized)
struct LaneStressTests {
    /// How often a run put each blob into each repository, from the registry's access log: an
    /// upload ends with `PUT …?digest=` answered 201, a mount is `POST …?mount=` answered 201 (a
    /// mount answered 202 opens the session its upload then uses).
    static func blobWrites(_ requests: [(request: String, status: Int)]) -> [String: Int] {
        var counts = [String: Int]()
        for (request, status) in requests where status == 201 {
            let parts = request.split(separator: " ")
            guard parts.count == 2, ["PUT", "POST"].contains(parts[0]) else { continue }
            let target = parts[1].split(separator: "?", maxSplits: 1)
            guard target.count == 2, let uploads = target[0].range(of: "/blobs/uploads/") else { continue }
            let repository = target[0][target[0].index(target[0].startIndex, offsetBy: 4)..<uploads.lowerBound]
            for item in target[1].split(separator: "&") where item.hasPrefix("digest=") || item.hasPrefix("mount=") {
                let digest = item.split(separator: "=", maxSplits: 1)[1].replacingOccurrences(of: "%3A", with: ":")
                counts["\(repository) \(digest)", default: 0] += 1
            }
        }
        return counts
    }

    @Test(
        "48 COPY processors (12 repositories × 4 versions) × 2 platforms, --jobs 8, 5 rounds of cold, unchanged and one change: no failure"
    )
    func copyProcessors() throws {
        for round in 1...5 {
            let fixture = try LaneFixture("stress-copy-\(round)", example: false)
            try GeneratedRepository.copyProcessors(in: fixture, names: 12, versions: 4)
            let all = Set((0..<12).flatMap { name in (1...4).map { GeneratedRepository.ref(name, $0) } })

            let mark = fixture.registry.mark()
            let cold = try fixture.run(["build", "--push", "--pin", "--jobs", "8"])
            #expect(Set(cold.keys) == all)
            let notBuilt = LaneFixture.statuses(cold).filter { $0.value != "built" }
            #expect(notBuilt.isEmpty, "round \(round), cold: \(notBuilt) \(cold.values.compactMap { $0["message"] })")
            // One upload (or mount) per blob and repository: versions of a processor share their
            // repository and most of their blobs, and must not race each other.
            let twice = Self.blobWrites(fixture.registry.answeredRequests(since: mark)).filter { $0.value > 1 }
            #expect(
                twice.isEmpty,
                "round \(round): blobs written more than once into one repository: \(twice.count), e.g. \(twice.prefix(3))"
            )
            let pinned = try fixture.pins()
            for (path, bytes) in pinned {
                let text = String(decoding: bytes, as: UTF8.self)
                #expect(
                    text.contains("amd64: \(fixture.registry.host)/acme/gen-")
                        && text.contains("arm64: \(fixture.registry.host)/acme/gen-"), "\(path): \(text)")
            }
            let sample = try Tools.run([
                "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://\(fixture.registry.host)/acme/gen-p07:3",
            ])
            #expect(
                sample.status == 0 && sample.stdout.contains("arm64") && sample.stdout.contains("amd64"),
                "\(sample.stderr)")

            let quiet = fixture.registry.mark()
            let unchanged = try fixture.run(["build", "--push", "--pin", "--jobs", "8"])
            #expect(
                LaneFixture.statuses(unchanged).values.allSatisfy { $0 == "hit" },
                "round \(round): \(LaneFixture.statuses(unchanged).filter { $0.value != "hit" })")
            #expect(
                fixture.uploads(since: quiet).isEmpty,
                "round \(round): an unchanged run uploaded \(fixture.uploads(since: quiet).prefix(5))")
            #expect(try fixture.pins() == pinned)
            // An unchanged processor costs one round of HEADs sent at once: its version tag (naming
            // the index) and each platform manifest (distribution keeps an index whose manifests
            // were deleted). (The base's tag is resolved each run.)
            let lookups = fixture.registry.requests(since: quiet).filter { $0.contains(" /v2/acme/") }
            #expect(
                lookups.count == all.count * 3
                    && lookups.allSatisfy { $0.hasPrefix("HEAD /v2/acme/gen-") && $0.contains("/manifests/") },
                "round \(round): \(lookups.count) requests for \(all.count) unchanged processors, e.g. \(lookups.prefix(4))"
            )

            let changed = (name: round * 2 % 12, version: round % 4 + 1)
            try fixture.append(
                GeneratedRepository.folder(changed.name, changed.version) + "/protocol/main.py", "# round \(round)\n")
            let one = try fixture.run(["build", "--push", "--pin", "--jobs", "8"])
            let built = LaneFixture.statuses(one).filter { $0.value != "hit" }
            #expect(
                built == [GeneratedRepository.ref(changed.name, changed.version): "built"], "round \(round): \(built)")
            let after = try fixture.pins()
            #expect(after.filter { $0.value != pinned[$0.key] }.count == 1)
        }
    }

    @Test(
        "4 processors with RUN sharing their first RUN, both platforms, --jobs 4, 2 rounds: no failure, the shared step runs once per platform"
    )
    func runProcessors() throws {
        try ARM64Emulation.register()
        for round in 1...2 {
            let fixture = try LaneFixture("stress-run-\(round)", example: false)
            try fixture.write("kiln.yaml", "processors: [tools/**/registry.yaml]\nowner: acme\n")
            try GeneratedRepository.runProcessors(in: fixture, count: 4)
            let cold = try fixture.run(["build", "--push", "--pin", "--jobs", "4"])
            #expect(
                LaneFixture.statuses(cold) == [
                    "steps/r0@1": "built", "steps/r1@1": "built", "steps/r2@1": "built", "steps/r3@1": "built",
                ],
                "round \(round): \(cold.values.compactMap { $0["message"] })")
            // The shared RUN once per platform, each processor's own RUN once per platform.
            let steps = cold.values.compactMap { $0["stepsRun"] as? Int }.reduce(0, +)
            #expect(steps == 2 + 4 * 2, "round \(round): \(cold.mapValues { $0["stepsRun"] ?? "?" })")
            // Every image has the same /opt/shared per platform: one run of the shared step.
            for arch in ["amd64", "arm64"] {
                var values = Set<String>()
                for number in 0..<4 {
                    let reference = "\(fixture.registry.host)/acme/steps-r\(number):1"
                    let layout = fixture.scratch.path + "/check-\(arch)-\(number)"
                    let copied = try Tools.run([
                        "skopeo", "copy", "--override-arch", arch, "--src-tls-verify=false", "docker://\(reference)",
                        "oci:\(layout):x",
                    ])
                    try #require(copied.status == 0, "\(copied.stderr)")
                    let unpacked = try Tools.run([
                        "umoci", "raw", "unpack", "--rootless", "--image", "\(layout):x", layout + "/rootfs",
                    ])
                    try #require(unpacked.status == 0, "\(unpacked.stderr)")
                    values.insert(try String(contentsOfFile: layout + "/rootfs/opt/shared", encoding: .utf8))
                    let installed = try String(contentsOfFile: layout + "/rootfs/tool/installed", encoding: .utf8)
                    #expect(installed == "main.py\nr\(number)\n", "\(installed)")
                }
                #expect(values.count == 1, "\(arch): the shared step ran more than once: \(values)")
            }
            let again = try fixture.run(["build", "--push", "--pin", "--jobs", "4"])
            #expect(LaneFixture.statuses(again).values.allSatisfy { $0 == "hit" })
            #expect(again.values.allSatisfy { $0["stepsRun"] as? Int == 0 })
        }
    }

    @Test(
        "6 RUN processors (3 names, 2 versions sharing each repository), both platforms, default --jobs: a shared-code edit reuses every install warm and on a fresh runner, and each image equals a lane without reuse"
    )
    func installsReusedAcrossTheLane() throws {
        try ARM64Emulation.register()
        let fixture = try LaneFixture("stress-reuse", example: false)
        try GeneratedRepository.installProcessors(in: fixture, names: 3, versions: 2)
        let refs = (0..<3).flatMap { name in (1...2).map { GeneratedRepository.ref(name, $0) } }
        func total(_ reports: [String: [String: Any]], _ field: String) -> Int {
            reports.values.compactMap { $0[field] as? Int }.reduce(0, +)
        }
        let cold = try fixture.run(["build", "--push", "--pin"])
        #expect(Set(LaneFixture.statuses(cold).values) == ["built"], "\(LaneFixture.statuses(cold))")
        // Two RUNs per processor and platform; the mkdir, the same step everywhere, may be reused
        // from another processor's execution.
        #expect(total(cold, "stepsRun") + total(cold, "stepsReused") == 6 * 2 * 2)
        #expect(total(cold, "stepsRun") >= 6 * 2, "every install ran: \(cold.mapValues { $0["stepsRun"] ?? "?" })")

        try fixture.write("code/libs/shared/lib.py", "VALUE = 2\n")
        let warm = try fixture.run(["build", "--push", "--pin"])
        #expect(Set(LaneFixture.statuses(warm).values) == ["built"], "\(LaneFixture.statuses(warm))")
        #expect(
            total(warm, "stepsRun") == 0 && total(warm, "stepsReused") == 24,
            "\(warm.mapValues { $0["runSteps"] ?? "" })")

        try fixture.write("code/libs/shared/lib.py", "VALUE = 3\n")
        let fresh = try fixture.run(["build", "--push", "--pin"], cache: try fixture.scratch.sub("fresh"))
        #expect(
            total(fresh, "stepsRun") == 0 && total(fresh, "stepsReused") == 24,
            "\(fresh.mapValues { $0["runSteps"] ?? "" })")

        // The same inputs through a lane without reuse, in a fresh store, to another registry.
        let other = try RegistryServer()
        let plain = try Tools.kiln(
            [
                "build", "--push", "--no-reuse-by-reads", "--root", fixture.repo, "--registry", other.host,
                "--build-arg", "BASE_IMAGE=\(fixture.baseReference)", "--json", "--cache-dir",
                try fixture.scratch.sub("plain"),
            ])
        try #require(plain.status == 0, "\(plain.stderr.suffix(2000))")
        for ref in refs {
            let (name, version) = (String(ref.prefix { $0 != "@" }), String(ref.drop { $0 != "@" }.dropFirst()))
            let repository = "acme/" + name.replacingOccurrences(of: "/", with: "-")
            for arch in ["amd64", "arm64"] {
                var trees = [[String]]()
                for host in [fixture.registry.host, other.host] {
                    let layout =
                        fixture.scratch.path
                        + "/\(host.replacingOccurrences(of: ":", with: "-"))-\(name.replacingOccurrences(of: "/", with: "-"))-\(version)-\(arch)"
                    let copied = try Tools.run([
                        "skopeo", "copy", "--override-arch", arch, "--src-tls-verify=false",
                        "docker://\(host)/\(repository):\(version)", "oci:\(layout):latest",
                    ])
                    try #require(copied.status == 0, "\(copied.stderr)")
                    trees.append(try SoundnessTests.tree(try SoundnessTests.unpack(layout, into: layout + "/rootfs")))
                }
                #expect(
                    trees[0].count > 10 && trees[0] == trees[1],
                    "\(ref) \(arch): the reused image differs from one built without reuse")
            }
        }
    }

    @Test(
        "a cold lane of 8 processors at the default --jobs takes no longer than one processor at a time: no writer starves another"
    )
    func coldLaneUsesItsJobs() throws {
        let fixture = try LaneFixture("stress-jobs", example: false)
        try GeneratedRepository.copyProcessors(in: fixture, names: 8, versions: 1)
        var atOnce = [Double]()
        var oneByOne = [Double]()
        for round in 0..<3 {
            for jobs in [nil, 1] {
                // Cold each time: an empty store, and repositories nothing was pushed to.
                let cache = try fixture.scratch.sub("cache-\(round)-\(jobs ?? 0)")
                let owner = "round\(round)-jobs\(jobs ?? 0)"
                let started = ContinuousClock.now
                let reports = try fixture.run(
                    ["build", "--push", "--owner", owner] + (jobs.map { ["--jobs", "\($0)"] } ?? []), cache: cache)
                let elapsed = ContinuousClock.now - started
                #expect(LaneFixture.statuses(reports).values.allSatisfy { $0 == "built" }, "\(reports)")
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                if jobs == nil { atOnce.append(seconds) } else { oneByOne.append(seconds) }
            }
        }
        // With gzip's blocks on dispatch's threads, the layer writers of four processors waited
        // on blocks queued behind themselves until dispatch grew its pool: 3.9 s at --jobs 4
        // against 1.3 s one at a time. Unstarved, four at once are faster than one.
        let (fast, slow) = (atOnce.sorted()[1], oneByOne.sorted()[1])
        #expect(fast <= slow * 1.2, "median at --jobs 4: \(atOnce); at --jobs 1: \(oneByOne)")
    }
}
