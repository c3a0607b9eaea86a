import Foundation
import Testing

/// The key memo: an unchanged processor is keyed from the `lstat`s of what its last keying looked
/// at. Every change that could move a key must still move it, so each step below changes one such
/// thing and compares the lane's keys (through the memo) with keys computed from nothing (a fresh
/// store, no memo, no stat cache).
@Suite("The key memo")
struct KeyMemoTests {
    /// Each platform's key by ref, from a lane's reports.
    static func keys(_ reports: [String: [String: Any]]) -> [String: [String]] {
        reports.mapValues { report in
            (report["platforms"] as? [[String: Any]])?.compactMap { $0["key"] as? String } ?? []
        }
    }

    static func keyedFrom(_ reports: [String: [String: Any]]) -> [String: String] {
        reports.mapValues { $0["keyedFrom"] as? String ?? "-" }
    }

    @Test(
        "every change a key depends on reaches the lane through the memo: edits, added files, ignore files, symlinks, modes, labels, a moved base"
    )
    func changesReachTheKeys() throws {
        let fixture = try LaneFixture("key-memo", example: false)
        try GeneratedRepository.copyProcessors(in: fixture, names: 3, versions: 1)
        var extra = [String]()
        // A memo is written only for inputs settled two seconds before the keying began.
        func settle() { Thread.sleep(forTimeInterval: 2.2) }
        func lane() throws -> [String: [String: Any]] {
            try fixture.run(["build", "--push", "--pin"] + extra)
        }
        func fresh() throws -> [String: [String]] {
            let store = try fixture.scratch.sub("fresh-\(UUID().uuidString.prefix(8))")
            return Self.keys(try fixture.run(["plan"] + extra, cache: store))
        }
        settle()
        _ = try lane()
        let unchanged = try lane()
        #expect(Self.keyedFrom(unchanged).values.allSatisfy { $0 == "memo" }, "\(Self.keyedFrom(unchanged))")
        #expect(LaneFixture.statuses(unchanged).values.allSatisfy { $0 == "hit" })
        var previous = Self.keys(unchanged)

        let p0 = GeneratedRepository.folder(0, 1)
        let p1 = GeneratedRepository.folder(1, 1)
        let p2 = GeneratedRepository.folder(2, 1)
        let steps: [(String, moves: Set<String>, () throws -> Void)] = [
            ("an edit in place", ["gen/p00@1"], { try fixture.append("\(p0)/protocol/main.py", "# more\n") }),
            (
                "a file added to a copied folder", ["gen/p00@1", "gen/p01@1", "gen/p02@1"],
                {
                    try fixture.write("code/libs/shared/extra.py", "X = 1\n")
                }
            ),
            (
                "a file the ignore file excludes", [],
                {
                    try fixture.write("code/libs/shared/__pycache__/lib.cpython-311.pyc", "noise\n")
                }
            ),
            (
                "the context's .dockerignore removed", ["gen/p00@1", "gen/p01@1", "gen/p02@1"],
                {
                    try FileManager.default.removeItem(atPath: fixture.repo + "/.dockerignore")
                }
            ),
            (
                "a Dockerfile's own ignore file added", ["gen/p01@1"],
                {
                    try fixture.write("\(p1)/Dockerfile.dockerignore", "\(p1)/protocol/main.py\n")
                }
            ),
            (
                "a mode changed", ["gen/p02@1"],
                {
                    try FileManager.default.setAttributes(
                        [.posixPermissions: 0o755], ofItemAtPath: fixture.repo + "/\(p2)/protocol/main.py")
                }
            ),
            (
                "a copied folder replaced by a symlink to another", ["gen/p00@1", "gen/p01@1", "gen/p02@1"],
                {
                    let libs = fixture.repo + "/code/libs"
                    let moved = try Tools.shell(
                        "cp -r '\(libs)/shared' '\(libs)/shared-2' && echo 'Y = 2' >> '\(libs)/shared-2/lib.py' && mv '\(libs)/shared' '\(libs)/shared-1' && ln -s shared-2 '\(libs)/shared'"
                    )
                    try #require(moved.status == 0, "\(moved.stderr)")
                }
            ),
            ("a comment in a Dockerfile", [], { try fixture.append("\(p0)/Dockerfile", "# a note\n") }),
            (
                "a Dockerfile made a symlink to the same text", [],
                {
                    let folder = fixture.repo + "/\(p1)"
                    let moved = try Tools.shell(
                        "mv '\(folder)/Dockerfile' '\(folder)/Dockerfile.real' && ln -s Dockerfile.real '\(folder)/Dockerfile'"
                    )
                    try #require(moved.status == 0, "\(moved.stderr)")
                }
            ),
            (
                "the file a symlinked Dockerfile leads to, edited", ["gen/p01@1"],
                {
                    try fixture.append("\(p1)/Dockerfile.real", "ENV EDITED=1\n")
                }
            ),
            (
                "a Dockerfile reached through a directory link, same text", [],
                {
                    let folder = fixture.repo + "/\(p1)"
                    let docker = fixture.repo + "/docker"
                    let linked = try Tools.shell(
                        "mkdir -p '\(docker)/v1' '\(docker)/v2' && cp '\(folder)/Dockerfile.real' '\(docker)/v1/Dockerfile' && cp '\(folder)/Dockerfile.real' '\(docker)/v2/Dockerfile' && echo 'ENV MIDDLE=2' >> '\(docker)/v2/Dockerfile' && ln -s v1 '\(docker)/cur' && ln -sfn '\(docker)/cur/Dockerfile' '\(folder)/Dockerfile'"
                    )
                    try #require(linked.status == 0, "\(linked.stderr)")
                }
            ),
            (
                "the directory link in the middle of the Dockerfile's path retargeted", ["gen/p01@1"],
                {
                    let moved = try Tools.shell("ln -sfn v2 '\(fixture.repo)/docker/cur'")
                    try #require(moved.status == 0, "\(moved.stderr)")
                }
            ),
            (
                "a COPY by wildcard", ["gen/p02@1"],
                {
                    let dockerfile = fixture.repo + "/\(p2)/Dockerfile"
                    let text = try String(contentsOfFile: dockerfile, encoding: .utf8)
                    try text.replacingOccurrences(of: "COPY \(p2)/protocol/ ", with: "COPY \(p2)/protocol/*.py ")
                        .write(toFile: dockerfile, atomically: false, encoding: .utf8)
                }
            ),
            (
                "a file the wildcard matches, added", ["gen/p02@1"],
                {
                    try fixture.write("\(p2)/protocol/extra.py", "Z = 3\n")
                }
            ),
            (
                "a label from the command line", ["gen/p00@1", "gen/p01@1", "gen/p02@1"],
                {
                    extra = ["--label", "team=kiln"]
                }
            ),
            (
                "the base image's tag moved", ["gen/p00@1", "gen/p01@1", "gen/p02@1"],
                {
                    let context = try fixture.scratch.sub("moved-base")
                    try "FROM \(fixture.baseReference)\nLABEL moved=yes\n".write(
                        toFile: context + "/Dockerfile", atomically: true, encoding: .utf8)
                    let pushed = try Tools.kiln([
                        "build", "-f", context + "/Dockerfile", "--platform", "linux/amd64,linux/arm64", "-t",
                        fixture.baseReference, context,
                    ])
                    try #require(pushed.status == 0, "\(pushed.stderr)")
                }
            ),
        ]
        for (change, moves, apply) in steps {
            try apply()
            let reports = try lane()
            let keys = Self.keys(reports)
            #expect(keys == (try fresh()), "after \(change), the lane's keys differ from keys computed afresh")
            let moved = Set(keys.keys.filter { keys[$0] != previous[$0] })
            #expect(moved == moves, "after \(change), the keys of \(moved.sorted()) moved, not \(moves.sorted())")
            for ref in moves {
                #expect(reports[ref]?["keyedFrom"] as? String == "inputs", "after \(change), \(ref)")
                #expect(reports[ref]?["status"] as? String == "built", "after \(change), \(ref)")
            }
            previous = keys
            // The change settles and a run writes the memos again, so that the next change meets
            // every processor keyed from its memo: a change slipping past one must show.
            settle()
            let settled = try lane()
            #expect(Self.keys(settled) == keys, "after \(change), an unchanged run moved keys")
            let memoized = try lane()
            #expect(
                Self.keyedFrom(memoized).values.allSatisfy { $0 == "memo" },
                "after \(change), not every processor is keyed from its memo: \(Self.keyedFrom(memoized))")
        }
    }

    @Test("a context too large for a readable memo writes none, and is keyed in full each run")
    func largeContextsWriteNoMemo() throws {
        let fixture = try LaneFixture("key-memo-large", example: false)
        try GeneratedRepository.copyProcessors(in: fixture, names: 1, versions: 1)
        // 12,000 files the processor copies: their memo lines pass the 1 MiB a record is read to.
        let made = try Tools.shell(
            "cd '\(fixture.repo)/code/libs/shared' && mkdir many && cd many && seq -f 'a-rather-long-file-name-to-fill-the-memo-%05g.py' 1 12000 | xargs touch"
        )
        try #require(made.status == 0, "\(made.stderr)")
        Thread.sleep(forTimeInterval: 2.2)
        _ = try fixture.lane()
        let again = try fixture.lane()
        #expect(Self.keyedFrom(again).values.allSatisfy { $0 == "inputs" }, "\(Self.keyedFrom(again))")
        let memos = try Tools.shell("find '\(fixture.cache)/keys/key-memo' -type f -size +1024k | wc -l")
        #expect(memos.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "a memo no run can read")
    }

    @Test("a file changed less than two seconds before the keying is never trusted by a memo")
    func recentChangesAreNotMemoized() throws {
        let fixture = try LaneFixture("key-memo-racy", example: false)
        try GeneratedRepository.copyProcessors(in: fixture, names: 2, versions: 1)
        Thread.sleep(forTimeInterval: 2.2)
        _ = try fixture.lane()
        // p00's file changes just before the lane: its memo must not be written from this run,
        // as a second change in the same clock tick would leave the same times.
        try fixture.append("\(GeneratedRepository.folder(0, 1))/protocol/main.py", "# now\n")
        let edited = try fixture.lane()
        #expect(edited["gen/p00@1"]?["keyedFrom"] as? String == "inputs")
        #expect(edited["gen/p01@1"]?["keyedFrom"] as? String == "memo")
        let again = try fixture.lane()
        #expect(
            again["gen/p00@1"]?["keyedFrom"] as? String == "inputs",
            "a memo was written although main.py changed less than two seconds before")
        Thread.sleep(forTimeInterval: 2.2)
        _ = try fixture.lane()
        let settled = try fixture.lane()
        #expect(settled["gen/p00@1"]?["keyedFrom"] as? String == "memo")
    }

    @Test(
        "an index the memo remembers but the registry lost is found missing, pushed again and remembered again"
    )
    func lostIndexIsPushedAgain() throws {
        try Tools.require("skopeo", package: "skopeo")
        let fixture = try LaneFixture("key-memo-lost", example: false)
        try GeneratedRepository.copyProcessors(in: fixture, names: 2, versions: 1)
        Thread.sleep(forTimeInterval: 2.2)
        func lane() throws -> [String: [String: Any]] { try fixture.run(["build", "--push", "--pin"]) }
        let first = try lane()
        let index = try #require(first["gen/p00@1"]?["index"] as? String)
        let repository = try #require(first["gen/p00@1"]?["repository"] as? String)
        let name = try #require(repository.split(separator: "/", maxSplits: 1).last.map(String.init))
        let unchanged = try lane()
        #expect(Self.keyedFrom(unchanged).values.allSatisfy { $0 == "memo" }, "\(Self.keyedFrom(unchanged))")

        let url = "http://\(fixture.registry.host)/v2/\(name)/manifests/\(index)"
        let deleted = try Tools.run([
            "python3", "-c", "import urllib.request as u; u.urlopen(u.Request('\(url)', method='DELETE'))",
        ])
        try #require(deleted.status == 0, "DELETE failed: \(deleted.stderr)")
        let gone = try Tools.run([
            "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://\(repository)@\(index)",
        ])
        try #require(gone.status != 0, "the registry still has \(index)")

        let healed = try lane()
        #expect(healed["gen/p00@1"]?["index"] as? String == index)
        #expect(LaneFixture.statuses(healed)["gen/p00@1"] == "hit")
        let back = try Tools.run([
            "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://\(repository)@\(index)",
        ])
        #expect(back.status == 0, "the lane did not push \(index) again: \(back.stderr)")
        let next = try lane()
        #expect(Self.keyedFrom(next).values.allSatisfy { $0 == "memo" })
        #expect(next["gen/p00@1"]?["index"] as? String == index)
    }

    @Test(
        "records a crash cut short (they are written without fsync) are misses, not errors: the lane finds every image in the registry again and rewrites them"
    )
    func cutShortRecords() throws {
        let fixture = try LaneFixture("key-memo-cut-short", example: false)
        try GeneratedRepository.copyProcessors(in: fixture, names: 3, versions: 1)
        Thread.sleep(forTimeInterval: 2.2)
        let built = try fixture.lane()
        #expect(LaneFixture.statuses(built).values.allSatisfy { $0 == "built" }, "\(LaneFixture.statuses(built))")
        // What a crash after an unflushed write can leave: each record empty or cut in half. No
        // memo either, so the lane needs the lane records.
        var cut = 0
        for kind in ["lane", "lane-inputs", "key-memo"] {
            let folder = fixture.cache + "/keys/" + kind
            let files = try FileManager.default.subpathsOfDirectory(atPath: folder).filter { $0.hasSuffix(".json") }
            #expect(!files.isEmpty, "no \(kind) records were written")
            for file in files {
                let path = folder + "/" + file
                let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
                try bytes.prefix(cut % 2 == 0 ? 0 : bytes.count / 2).write(to: URL(fileURLWithPath: path))
                cut += 1
            }
        }
        let mark = fixture.registry.mark()
        let again = try fixture.lane()
        #expect(LaneFixture.statuses(again).values.allSatisfy { $0 == "hit" }, "\(again)")
        #expect(fixture.uploads(since: mark).isEmpty, "\(fixture.uploads(since: mark))")
        // The records were written again, whole: the next run is keyed from its memos.
        let next = try fixture.lane()
        #expect(Self.keyedFrom(next).values.allSatisfy { $0 == "memo" }, "\(Self.keyedFrom(next))")
        #expect(LaneFixture.statuses(next).values.allSatisfy { $0 == "hit" })
    }
}
