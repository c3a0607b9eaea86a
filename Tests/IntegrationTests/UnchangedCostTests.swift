import Foundation
import Testing

/// What an unchanged lane costs: it grows with the keys to check, not with the bytes in the tree.
@Suite("The cost of an unchanged lane")
struct UnchangedCostTests {
    /// The calls that look a path up without opening it.
    static let pathCalls = "stat,lstat,newfstatat,statx,readlink,readlinkat"

    @Test(
        "an unchanged run opens none of the context's files, however large, nor a Dockerfile: each processor's keys come from its memo"
    )
    func opensNoContextFile() throws {
        try Tools.require("strace", package: "strace")
        let fixture = try LaneFixture("unchanged-cost", example: false)
        try GeneratedRepository.copyProcessors(in: fixture, names: 4, versions: 2)
        let big = fixture.repo + "/code/libs/shared/weights.bin"
        let made = try Tools.shell("head -c 33554432 /dev/urandom > '\(big)'")
        try #require(made.status == 0, "\(made.stderr)")
        // The stat cache does not trust a file changed in the last two seconds (its mtime could
        // repeat for a second change in the same tick): a tree checked out in CI is older.
        Thread.sleep(forTimeInterval: 2.5)
        let cold = try fixture.lane()
        #expect(LaneFixture.statuses(cold).values.allSatisfy { $0 == "built" }, "\(LaneFixture.statuses(cold))")

        let trace = fixture.scratch.path + "/unchanged.strace"
        let arguments = ["build", "--push", "--pin"] + fixture.common + ["--cache-dir", fixture.cache]
        let traced = try Tools.run(
            ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2,\(Self.pathCalls)", "-o", trace, Tools.kiln]
                + arguments)
        try #require(traced.status == 0, "\(traced.stderr.suffix(2000))")
        #expect(LaneFixture.statuses(LaneFixture.reports(traced.stdout)).values.allSatisfy { $0 == "hit" })

        let lines = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n")
        // Files opened successfully under the repository, folders (listed by the walk) aside.
        let opened = lines.filter { line in
            line.contains("open") && line.contains("\"\(fixture.repo)/") && !line.contains("O_DIRECTORY")
                && !line.contains("= -1")
        }
        // The trace sees the lane's own reads: each registry.yaml. Not the Dockerfiles: an
        // unchanged processor's keys come from its key memo, by lstat.
        #expect(
            opened.contains { $0.contains("/registry.yaml\"") },
            "the trace shows no registry.yaml: \(lines.count) lines")
        let dockerfiles = opened.filter { $0.contains("/Dockerfile\"") }
        #expect(dockerfiles.isEmpty, "an unchanged run read \(dockerfiles.count) Dockerfiles: \(dockerfiles.prefix(2))")
        // Nor the store's lane records: the memo remembers the index it was pushed as, so an
        // unchanged processor is its memo and one round of HEADs.
        let records = lines.filter { $0.contains("\"\(fixture.cache)/keys/lane/") && !$0.contains("= -1") }
        #expect(records.isEmpty, "an unchanged run read \(records.count) lane records: \(records.prefix(2))")
        let contextFiles = opened.filter { $0.contains("/code/libs/") || $0.contains("/protocol/") }
        #expect(
            contextFiles.isEmpty,
            "an unchanged run opened \(contextFiles.count) context files, e.g. \(contextFiles.prefix(3).joined(separator: "\n"))"
        )

        // A file all 8 processors copy is looked at once per run, not once per processor's memo
        // (nor once more by discovery, whose walk takes kinds from the directory entries); twice
        // when the two checks that first need it race.
        let weightLooks = lines.filter { $0.contains("\"\(big)\"") && !$0.contains("open") }
        #expect(
            (1...2).contains(weightLooks.count),
            "the run looked at \(big) \(weightLooks.count) times: \(weightLooks.prefix(3))")
        // Nor does discovery resolve every path component by component: with no symlink in the
        // repository, it reads no link in it.
        let links = lines.filter { $0.contains("readlink") && $0.contains("\"\(fixture.repo)/") }
        #expect(links.isEmpty, "discovery read \(links.count) links in the repository, e.g. \(links.prefix(2))")

        // One processor changed: the lane reads that processor's Dockerfile and no other. (A
        // `COPY`-only build used to look for `RUN` checkpoints across the lane, which parsed
        // every processor's Dockerfile: seconds at thousands of processors.)
        let changed = GeneratedRepository.folder(1, 2)
        try fixture.write("\(changed)/protocol/main.py", "print('changed')\n")
        Thread.sleep(forTimeInterval: 2.5)
        let (reports, read) = try Self.dockerfilesRead(fixture, arguments)
        let built = LaneFixture.statuses(reports).filter { $0.value == "built" }
        #expect(built.count == 1, "\(built)")
        #expect(
            !read.isEmpty && read.allSatisfy { $0.contains("\"\(fixture.repo)/\(changed)/Dockerfile\"") },
            "the lane read these Dockerfiles to build \(changed): \(read.prefix(4))")
    }

    /// Runs kiln with `arguments` under `strace`: its reports, and the trace's lines of each
    /// Dockerfile it opened.
    static func dockerfilesRead(_ fixture: LaneFixture, _ arguments: [String]) throws -> (
        reports: [String: [String: Any]], opened: [Substring]
    ) {
        let trace = fixture.scratch.path + "/dockerfiles-\(UUID().uuidString.prefix(8)).strace"
        let run = try Tools.run(
            ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", trace, Tools.kiln] + arguments)
        try #require(run.status == 0, "\(run.stderr.suffix(2000))")
        let opened = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").filter { line in
            line.contains("/Dockerfile\"") && !line.contains("= -1")
        }
        return (LaneFixture.reports(run.stdout), opened)
    }

    @Test(
        "a changed processor with RUN reads only its own Dockerfile: the other processors' step homes come from their key memos, and still lead to the shared checkpoint"
    )
    func changedRunProcessorReadsOneDockerfile() throws {
        try Tools.require("strace", package: "strace")
        let fixture = try LaneFixture("changed-run-cost", example: false)
        try GeneratedRepository.copyProcessors(in: fixture, names: 2, versions: 1)
        try GeneratedRepository.runProcessors(in: fixture, count: 3, platforms: "[linux/amd64]")
        Thread.sleep(forTimeInterval: 2.5)
        let cold = try fixture.lane()
        #expect(LaneFixture.statuses(cold).values.allSatisfy { $0 == "built" }, "\(LaneFixture.statuses(cold))")
        // A store that kept its key memos but not its checkpoints (as after a cache clean-up):
        // the shared step must be found in the registry, in its home, steps/r0's repository.
        try FileManager.default.removeItem(atPath: fixture.cache + "/keys/checkpoint")

        let changed = "tools/steps/r2/1"
        try fixture.write("\(changed)/protocol/main.py", "print('changed')\n")
        Thread.sleep(forTimeInterval: 2.5)
        let mark = fixture.registry.mark()
        let (reports, read) = try Self.dockerfilesRead(
            fixture, ["build", "--push", "--pin"] + fixture.common + ["--cache-dir", fixture.cache])
        #expect(
            LaneFixture.statuses(reports).filter { $0.value == "built" }.keys.sorted() == ["steps/r2@1"],
            "\(LaneFixture.statuses(reports))")
        // Its own step runs again; the shared one comes from its checkpoint.
        let decisions = reports["steps/r2@1"]?["runSteps"] as? [[String: Any]] ?? []
        #expect(
            reports["steps/r2@1"]?["stepsRun"] as? Int == 1
                && decisions.contains { $0["line"] as? Int == 4 && $0["outcome"] as? String == "key" },
            "\(reports["steps/r2@1"] ?? [:])")
        let lookups = fixture.registry.requests(since: mark).filter { $0.contains("/manifests/kiln-step-") }
        #expect(lookups.contains { $0.contains("/v2/acme/steps-r0/manifests/kiln-step-") }, "\(lookups)")
        // Keying every processor's steps to find their homes would read all five Dockerfiles.
        #expect(
            !read.isEmpty && read.allSatisfy { $0.contains("\"\(fixture.repo)/\(changed)/Dockerfile\"") },
            "the lane read these Dockerfiles to build \(changed): \(read.prefix(6))")
    }
}
