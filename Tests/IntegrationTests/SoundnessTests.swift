import Foundation
import Testing

/// Reuse by read set never ships a stale image (issue 31). Each case builds a small Dockerfile on
/// the busybox base (v1), changes its input in a way a sceptical user would, builds again with
/// the same store (reuse on), and compares the image's file tree — content, mode, owner, times,
/// link counts, link targets — with a `--no-reuse-by-reads` build of the changed input in a fresh
/// store. Any difference is a stale image. Cases that must run also show the change mattered: a
/// path of the step's output differs between v1 and the fresh v2, so a reuse would have been
/// wrong. Controls must be reused. Real buildah, strace, registry and umoci; arm64 under QEMU.
@Suite("RUN reuse never gives a stale image", .serialized)
struct SoundnessTests {
    enum File: Sendable {
        case text(String)
        case executable(String)
        case link(String)
        case directory
        case mode(Int)
        case removed
        /// A tar archive of these members: a name and its text, or `"=target"` for a hard link.
        case tar([(String, String)])
    }

    enum Expect: Sendable, CustomStringConvertible {
        case runs, reused, either
        var description: String {
            switch self {
            case .runs: "run"
            case .reused: "reused"
            case .either: "either"
            }
        }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        /// The Dockerfile after its `FROM` line.
        var dockerfile: String
        var v1: [String: File]
        /// What changes for v2.
        var v2: [String: File]
        var dockerfile2: String?
        /// What becomes of each `RUN` of the v2 build, in order.
        var expect: [Expect]
        /// A file of the step's output that v1 and the fresh v2 build hold differently: a reuse
        /// would have been stale.
        var differs: String?
        var platform = "linux/amd64"
        var environment2: [String: String] = [:]
        var flags2: [String] = []

        var testDescription: String { "\(name) [\(platform.dropFirst(6))]" }

        init(
            _ name: String, _ dockerfile: String, _ v1: [String: File], _ v2: [String: File],
            expect: [Expect] = [.runs], differs: String? = "/out", dockerfile2: String? = nil,
            environment2: [String: String] = [:], flags2: [String] = []
        ) {
            self.name = name
            self.dockerfile = dockerfile
            self.v1 = v1
            self.v2 = v2
            self.expect = expect
            self.differs = differs
            self.dockerfile2 = dockerfile2
            self.environment2 = environment2
            self.flags2 = flags2
        }

        func on(_ platform: String) -> Case {
            var copy = self
            copy.platform = platform
            return copy
        }
    }

    /// One registry and busybox base for the whole suite.
    final class Shared: @unchecked Sendable {
        let scratch: Scratch
        let registry: RegistryServer
        let base: BusyboxBase

        init() throws {
            try Tools.require("strace", package: "strace")
            try Tools.require("umoci", package: "umoci")
            try Tools.require("buildah", package: "buildah")
            scratch = try Scratch("soundness")
            registry = try RegistryServer()
            base = try BusyboxBase(registry: registry, scratch: scratch)
        }

        static let instance = Result { try Shared() }
    }

    static let copyApp = "COPY app/ /app/\n"
    static let passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"
    static let group = "root:x:0:\napp:x:1001:\nstaff:x:50:\n"

    /// `/app/l0` → `/app/l1` → … → `/app/data`: a chain of `links` symlinks (the kernel follows 40).
    static func chain(of links: Int) -> [String: File] {
        var files = [String: File]()
        for index in 0..<(links - 1) { files["app/l\(index)"] = .link("l\(index + 1)") }
        files["app/l\(links - 1)"] = .link("data")
        files["app/data"] = .text("d1\n")
        return files
    }

    /// Every case, amd64 first, then a few again on arm64.
    static let cases: [Case] = {
        let c = copyApp
        let data: [String: File] = ["app/data": .text("d1\n")]
        let changed: [String: File] = ["app/data": .text("d2\n")]
        var all: [Case] = [
            // 1. Paths resolved as the kernel does.
            Case(
                "'..' after a directory v2 adds", c + "RUN cat /app/nope/../data > /out 2>&1 || echo missing > /out",
                data, ["app/nope/.keep": .text("")]),
            Case(
                "'..' after a symlinked directory", c + "RUN cat /app/link/../data > /out",
                [
                    "app/data": .text("top\n"), "app/real/sub/x": .text("x"), "app/real/data": .text("r1\n"),
                    "app/link": .link("real/sub"),
                ],
                ["app/real/data": .text("r2\n")]),
            Case("/proc/self/root", c + "RUN cat /proc/self/root/app/data > /out", data, changed),
            Case("/proc/self/cwd", c + "WORKDIR /app\nRUN cat /proc/self/cwd/data > /out", data, changed),
            Case("/proc/self/fd", c + "RUN exec 3</app && cat /proc/self/fd/3/data > /out", data, changed),
            Case("/dev/..", c + "RUN cat /dev/../app/data > /out", data, changed),
            Case(
                "more than 40 links (ELOOP), v2 shortens the chain",
                c + "RUN cat /app/l0 > /out 2>&1 || echo loop > /out", chain(of: 42), ["app/l0": .link("l3")]),
            Case(
                "exactly 40 links, v2 edits the file behind them", c + "RUN cat /app/l0 > /out", chain(of: 40), changed),
            Case("a symlink the step makes", c + "RUN ln -s /app /tmp/l && cat /tmp/l/data > /out", data, changed),
            Case(
                "a relative symlink the step makes", c + "RUN ln -s ../app /tmp/rel && cat /tmp/rel/data > /out", data,
                changed),
            Case(
                "a symlink the step repoints", c + "RUN ln -sfn b /app/cur && cat /app/cur/data > /out",
                ["app/a/data": .text("a\n"), "app/b/data": .text("b1\n"), "app/cur": .link("a")],
                ["app/b/data": .text("b2\n")]),
            Case(
                "a directory the step renames", c + "RUN mv /app/a /app/moved && cat /app/moved/data > /out",
                ["app/a/data": .text("a1\n")], ["app/a/data": .text("a2\n")]),
            Case(
                "chroot inside the step",
                "COPY jail/ /jail/\nRUN cp /bin/busybox /jail/busybox && chroot /jail /busybox cat /data > /out",
                ["jail/data": .text("d1\n")], ["jail/data": .text("d2\n")]),
            Case("a relative read in WORKDIR", c + "WORKDIR /app\nRUN cat data > /out", data, changed),
            Case(
                "WORKDIR through a symlink v2 repoints", c + "WORKDIR /app/cur\nRUN cat data > /out",
                ["app/a/data": .text("a\n"), "app/b/data": .text("b\n"), "app/cur": .link("a")],
                ["app/cur": .link("b")]),
            Case(
                "an absolute symlink in the lower layers", c + "RUN cat /app/abs/data > /out",
                ["app/b/data": .text("b1\n"), "app/abs": .link("/app/b")], ["app/b/data": .text("b2\n")]),
            // 2. Trace lines that break a parser.
            Case("a ')' in a directory name", c + "RUN mkdir '/w)' && cd '/w)' && cat /app/data > /out", data, changed),
            Case(
                "a '(' in a directory name", c + "RUN mkdir '/p(x' && cd '/p(x' && cat /app/data > /out", data, changed),
            Case(
                "a '\"' in a directory name", c + "RUN mkdir '/q\"d' && cd '/q\"d' && cat /app/data > /out", data,
                changed),
            Case(
                "a '>' in a directory name", c + "RUN mkdir '/a>b' && cd '/a>b' && cat /app/data > /out", data, changed),
            Case(
                "a newline in a directory name",
                c + "RUN d=\"$(printf '/n\\nl')\" && mkdir \"$d\" && cd \"$d\" && cat /app/data > /out", data, changed),
            Case(
                "', ' in a directory name", c + "RUN mkdir '/x, y' && cd '/x, y' && cat ../app/data > /out", data,
                changed),
            // 3. Working directories across fork.
            Case(
                "a child started before its parent changes directory",
                c + "RUN cd /app/a && { (sleep 0.3; cat data > /out) & cd /app/b; wait; }",
                ["app/a/data": .text("a1\n"), "app/b/data": .text("b\n")], ["app/a/data": .text("a2\n")]),
            Case(
                "a subshell's cd does not leak",
                c + "WORKDIR /app/b\nRUN (cd /app/a && cat data > /a-out); cat data > /out",
                ["app/a/data": .text("a\n"), "app/b/data": .text("b1\n")], ["app/b/data": .text("b2\n")]),
            // 4. Calls and reads not named by the step.
            Case(
                "a #! interpreter that is itself a script", c + "RUN /app/tool.sh > /out",
                [
                    "app/tool.sh": .executable("#!/app/interp\n"),
                    "app/interp": .executable("#!/bin/sh\necho interp-v1\n"),
                ],
                ["app/interp": .executable("#!/bin/sh\necho interp-v2\n")]),
            Case(
                "a #! interpreter path v2 repoints", c + "RUN /app/tool.sh > /out",
                [
                    "app/tool.sh": .executable("#!/app/bin/sh\necho real\n"), "app/bin/sh": .link("/bin/sh"),
                    "app/fake": .executable("#!/bin/sh\necho fake\n"),
                ],
                ["app/bin/sh": .link("/app/fake")]),
            Case(
                "an exec-form RUN's PATH lookup", c + "ENV PATH=/app/bin1:/app/bin2:/bin\nRUN [\"mytool\"]",
                ["app/bin2/mytool": .executable("#!/bin/sh\necho v1 > /out\n"), "app/bin1/.keep": .text("")],
                ["app/bin1/mytool": .executable("#!/bin/sh\necho v2 > /out\n")]),
            Case(
                "an exec-form RUN's PATH through a missing directory",
                c + "ENV PATH=/app/none:/app/bin2:/bin\nRUN [\"mytool\"]",
                ["app/bin2/mytool": .executable("#!/bin/sh\necho v1 > /out\n")],
                ["app/none/mytool": .executable("#!/bin/sh\necho v2 > /out\n")]),
            // 5. What buildah reads for the step.
            Case(
                "USER whose HOME changed in /etc/passwd",
                "COPY passwd /etc/passwd\nCOPY app/ /app/\nUSER app\nRUN echo \"$HOME\" > /tmp/out",
                ["passwd": .text(passwd), "app/x": .text("x")],
                ["passwd": .text(passwd.replacingOccurrences(of: "/home/app", with: "/home/other"))],
                differs: "/tmp/out"),
            Case(
                "USER whose uid changed in /etc/passwd",
                "COPY passwd /etc/passwd\nCOPY app/ /app/\nUSER app\nRUN id -u > /tmp/out",
                ["passwd": .text(passwd), "app/x": .text("x")],
                ["passwd": .text(passwd.replacingOccurrences(of: "1000:1001", with: "1002:1001"))], differs: "/tmp/out"),
            Case(
                "a numeric USER whose HOME changed",
                "COPY passwd /etc/passwd\nUSER 1000\nRUN echo \"$HOME\" > /tmp/out",
                ["passwd": .text(passwd)],
                ["passwd": .text(passwd.replacingOccurrences(of: "/home/app", with: "/home/two"))], differs: "/tmp/out"),
            Case(
                "a group membership that now allows a read",
                "COPY group /etc/group\nCOPY --chown=0:50 top/ /top/\nUSER app\nRUN cat /top/grp/data > /tmp/out 2>&1 || echo denied > /tmp/out",
                ["group": .text(group), "top/grp/data": .text("secret\n"), "top/grp": .mode(0o750)],
                ["group": .text(group.replacingOccurrences(of: "staff:x:50:", with: "staff:x:50:app"))],
                differs: "/tmp/out"),
            Case(
                "/run/secrets from the image", "COPY secrets/ /run/secrets/\nRUN cat /run/secrets/token > /out",
                ["secrets/token": .text("t1\n")], ["secrets/token": .text("t2\n")]),
            // 6. States that hold what a step can observe.
            Case(
                "a directory's permission on the way",
                "COPY top/ /top/\nUSER app\nRUN cat /top/secret/data > /tmp/out 2>&1 || echo denied > /tmp/out",
                ["top/secret/data": .text("d\n"), "top/secret": .mode(0o700)], ["top/secret": .mode(0o755)],
                differs: "/tmp/out"),
            Case(
                "a file's permission", c + "USER app\nRUN cat /app/data > /tmp/out 2>&1 || echo denied > /tmp/out",
                ["app/data": .text("d\n")], ["app/data": .mode(0o600)], differs: "/tmp/out"),
            Case("a directory's link count", c + "RUN stat -c %h /app > /out", data, ["app/sub/x": .text("x")]),
            Case(
                "hard links from an ADDed archive", "ADD app.tar /app/\nRUN stat -c %h /app/b > /out",
                ["app.tar": .tar([("a", "same"), ("b", "same")])], ["app.tar": .tar([("a", "same"), ("b", "=a")])]),
            Case(
                "a file that became a directory, for find -type f", c + "RUN find /app -type f > /out",
                ["app/x": .text("x"), "app/y": .text("y")], ["app/x": .directory]),
            Case(
                "names joined by a newline are not two names", c + "RUN ls /app > /out", ["app/x\ny": .text("1")],
                ["app/x\ny": .removed, "app/x": .text("1"), "app/y": .text("1")]),
            Case(
                "a name with a newline, its content changed", c + "RUN cat \"$(printf '/app/a\\nb')\" > /out",
                ["app/a\nb": .text("v1")], ["app/a\nb": .text("v2")]),
            Case(
                "a name ending in a carriage return, its content changed",
                c + "RUN cat \"$(printf '/app/c\\r')\" > /out",
                ["app/c\r": .text("v1")], ["app/c\r": .text("v2")]),
            Case("ls -l after a mode change", c + "RUN ls -l /app > /out", data, ["app/data": .mode(0o600)]),
            Case(
                "ls -l after a link is repointed", c + "RUN ls -l /app > /out",
                ["app/data": .text("d"), "app/l": .link("data")], ["app/l": .link("other")]),
            Case("find after an empty directory appears", c + "RUN find /app > /out", data, ["app/empty": .directory]),
            Case(
                "rm -rf of a directory v2 adds to", c + "RUN rm -rf /app/a && ls /app > /out",
                ["app/a/x": .text("x"), "app/b": .text("b")], ["app/a/new": .text("n")], expect: [.either],
                differs: nil),
            Case(
                "a directory owner from COPY --chown", "COPY app/ /app/\nRUN stat -c %u /app/data > /out", data, [:],
                dockerfile2: "COPY --chown=1000:1001 app/ /app/\nRUN stat -c %u /app/data > /out"),
            // 7. Keys: the epoch and the compression level.
            Case(
                "SOURCE_DATE_EPOCH alone changes", c + "RUN stat -c %Y /app/data > /out", data, [:],
                environment2: ["SOURCE_DATE_EPOCH": "1700000000"]),
            Case(
                "SOURCE_DATE_EPOCH alone changes, a step that reads no time", c + "RUN cat /app/data > /out", data, [:],
                differs: nil, environment2: ["SOURCE_DATE_EPOCH": "1700000000"]),
            Case(
                "the gzip level alone changes", c + "RUN cat /app/data > /out", data, [:], expect: [.either],
                differs: nil, flags2: ["--level", "1"]),
            // 8. Traced and untraced agree.
            Case(
                "a background process the step leaves running", c + "RUN (sleep 1; echo late > /out) & echo started",
                ["app/x": .text("1")], ["app/x": .text("2")], differs: nil),
            Case(
                "a background process the step waits for", c + "RUN (sleep 0.2; cat /app/data > /out) & wait", data,
                changed),
            // Controls: what must still be reused.
            Case(
                "control: a code edit before the install",
                "COPY req.txt /app/\nCOPY code/ /app/code/\nRUN cat /app/req.txt > /deps",
                ["req.txt": .text("fastapi\n"), "code/main.py": .text("v1")], ["code/main.py": .text("v2")],
                expect: [.reused], differs: nil),
            Case(
                "control: mkdir and chmod -R after a code edit",
                c + "RUN mkdir -p /home/app && chmod -R 0777 /home/app",
                ["app/x": .text("1")], ["app/x": .text("2")], expect: [.reused], differs: nil),
            Case(
                "control: a read of another folder", c + "COPY other/ /other/\nRUN cat /other/o > /out",
                ["app/x": .text("1"), "other/o": .text("o")], ["app/x": .text("2")], expect: [.reused], differs: nil),
            Case(
                "control: an install in WORKDIR after a code edit",
                "WORKDIR /app\nCOPY req.txt .\nCOPY code/ code/\nRUN mkdir -p /site && while read p; do echo \"$p\" > /site/$p; done < req.txt",
                ["req.txt": .text("fastapi\nuvicorn\n"), "code/main.py": .text("v1")], ["code/main.py": .text("v2")],
                expect: [.reused], differs: nil),
            Case(
                "control: a new file in the copied folder", c + "RUN cat /app/req > /deps",
                ["app/req": .text("r"), "app/main.py": .text("m")], ["app/new.py": .text("n")], expect: [.reused],
                differs: nil),
            Case(
                "control: two RUNs after a code edit",
                "COPY code/ /code/\nCOPY req/ /req/\nRUN cat /req/r > /deps\nRUN mkdir -p /home/app && chmod -R 0777 /home/app",
                ["code/m.py": .text("1"), "req/r": .text("r")], ["code/m.py": .text("2")], expect: [.reused, .reused],
                differs: nil),
            Case(
                "control: a RUN after one that reran is reused",
                c + "RUN ls /app > /list\nRUN mkdir -p /home/app && chmod -R 0777 /home/app", ["app/x": .text("1")],
                ["app/new": .text("n")], expect: [.runs, .reused], differs: "/list"),
            Case(
                "control: a USER step after a code edit",
                "COPY passwd /etc/passwd\nCOPY code/ /code/\nUSER app\nRUN echo \"$HOME\" > /tmp/home",
                ["passwd": .text(passwd), "code/m.py": .text("1")], ["code/m.py": .text("2")], expect: [.reused],
                differs: nil),
            Case(
                "control: a step reading through a symlink it did not change", c + "RUN cat /app/cur/data > /out",
                ["app/a/data": .text("a"), "app/cur": .link("a"), "app/other": .text("1")],
                ["app/other": .text("2")], expect: [.reused], differs: nil),
            Case(
                "control: exec form after a code edit", c + "COPY tool/ /tool/\nRUN [\"/tool/run.sh\"]",
                ["app/x": .text("1"), "tool/run.sh": .executable("#!/bin/sh\necho ran > /out\n")],
                ["app/x": .text("2")], expect: [.reused], differs: nil),
        ]
        // On arm64 under QEMU: a few of each kind.
        let arm64 = [
            "'..' after a directory v2 adds", "a symlink the step makes", "a #! interpreter that is itself a script",
            "a child started before its parent changes directory", "USER whose HOME changed in /etc/passwd",
            "a file that became a directory, for find -type f", "control: a code edit before the install",
            "control: a RUN after one that reran is reused",
        ]
        all += all.filter { arm64.contains($0.name) }.map { $0.on("linux/arm64") }
        return all
    }()

    @Test("the suite covers every class of the issue with at least 60 cases, controls included")
    func coverage() {
        #expect(Self.cases.count >= 60, "\(Self.cases.count) cases")
        #expect(Self.cases.filter { $0.expect.contains { if case .reused = $0 { true } else { false } } }.count >= 8)
        #expect(Self.cases.contains { $0.platform == "linux/arm64" })
    }

    @Test("v2 built on v1's store is the image a fresh build without reuse gives", arguments: cases)
    func soundness(_ testCase: Case) throws {
        let shared = try Shared.instance.get()
        if testCase.platform == "linux/arm64" { try ARM64Emulation.register() }
        let scratch = try Scratch("sound")
        let v1 = try scratch.sub("v1")
        let v2 = try scratch.sub("v2")
        let from = "FROM \(shared.base.reference)\n"
        try Self.write(testCase.v1, into: v1, scratch: scratch)
        try (from + testCase.dockerfile + "\n").write(toFile: v1 + "/Dockerfile", atomically: true, encoding: .utf8)
        try Self.copyTree(v1, to: v2)
        try Self.write(testCase.v2, into: v2, scratch: scratch)
        try (from + (testCase.dockerfile2 ?? testCase.dockerfile) + "\n").write(
            toFile: v2 + "/Dockerfile", atomically: true, encoding: .utf8)

        let store = try scratch.sub("store")
        func build(_ context: String, layout: String, store: String, extra: [String], environment: [String: String])
            throws -> [String: Any]
        {
            let result = try Tools.kiln(
                [
                    "build", "--json", "--platform", testCase.platform, "-o", "oci:\(layout):latest", "--cache-dir",
                    store,
                ]
                    + extra + [context], environment: environment)
            try #require(result.status == 0, "kiln build of \(context) failed: \(result.stderr)")
            return (try? JSONSerialization.jsonObject(with: result.stdoutBytes) as? [String: Any]) ?? [:]
        }
        _ = try build(v1, layout: scratch.path + "/v1-image", store: store, extra: [], environment: [:])
        let reused = try build(
            v2, layout: scratch.path + "/v2-image", store: store, extra: testCase.flags2,
            environment: testCase.environment2)
        _ = try build(
            v2, layout: scratch.path + "/fresh-image", store: try scratch.sub("fresh-store"),
            extra: ["--no-reuse-by-reads"] + testCase.flags2, environment: testCase.environment2)

        let steps = (reused["runSteps"] as? [[String: Any]]) ?? []
        let outcomes = steps.map { ($0["outcome"] as? String ?? "?") }
        let reasons = steps.map { "\($0["outcome"] ?? "?"): \($0["reason"] ?? "")" }
        #expect(outcomes.count == testCase.expect.count, "\(reasons)")
        for (outcome, expected) in zip(outcomes, testCase.expect) {
            switch expected {
            case .runs: #expect(outcome == "run", "expected to run: \(reasons)")
            case .reused: #expect(outcome == "reused", "expected reuse: \(reasons)")
            case .either: break
            }
        }

        let v1Root = try Self.unpack(scratch.path + "/v1-image", into: scratch.path + "/v1-root")
        let reusedRoot = try Self.unpack(scratch.path + "/v2-image", into: scratch.path + "/v2-root")
        let freshRoot = try Self.unpack(scratch.path + "/fresh-image", into: scratch.path + "/fresh-root")
        let reusedTree = try Self.tree(reusedRoot)
        let freshTree = try Self.tree(freshRoot)
        #expect(reusedTree.count > 10)
        if reusedTree != freshTree {
            let only = Set(reusedTree).symmetricDifference(freshTree).sorted().prefix(12)
            Issue.record("STALE: the image differs from a build without reuse (\(reasons)): \(Array(only))")
        }
        if let differs = testCase.differs {
            let before = FileManager.default.contents(atPath: v1Root + differs)
            let after = FileManager.default.contents(atPath: freshRoot + differs)
            #expect(after != nil, "the fresh build has \(differs)")
            #expect(before != after, "the change must matter to \(differs), or the case proves nothing")
        }
    }

    // MARK: - Helpers

    static func write(_ files: [String: File], into root: String, scratch: Scratch) throws {
        let manager = FileManager.default
        // Directories' modes last, once what is inside them is written.
        for (path, file) in files.sorted(by: { $0.key < $1.key }) {
            let full = root + "/" + path
            if case .mode = file { continue }
            try manager.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            if (try? manager.attributesOfItem(atPath: full)) != nil
                || (try? manager.destinationOfSymbolicLink(atPath: full)) != nil
            {
                try manager.removeItem(atPath: full)
            }
            switch file {
            case .text(let text):
                try Data(text.utf8).write(to: URL(fileURLWithPath: full))
                chmod(full, 0o644)
            case .executable(let text):
                try Data(text.utf8).write(to: URL(fileURLWithPath: full))
                chmod(full, 0o755)
            case .link(let target): try manager.createSymbolicLink(atPath: full, withDestinationPath: target)
            case .directory: try manager.createDirectory(atPath: full, withIntermediateDirectories: true)
            case .removed, .mode: break
            case .tar(let members):
                let folder = try scratch.sub("tar-\(UUID().uuidString.prefix(8))")
                var script = "cd '\(folder)'"
                for (name, text) in members {
                    if text.hasPrefix("=") {
                        script += " && ln '\(text.dropFirst())' '\(name)'"
                    } else {
                        script += " && printf '%s' '\(text)' > '\(name)'"
                    }
                }
                script +=
                    " && tar --mtime=@0 --owner=0 --group=0 --numeric-owner -cf '\(full)' \(members.map { "'\($0.0)'" }.joined(separator: " "))"
                let made = try Tools.shell(script)
                try #require(made.status == 0, "\(made.stderr)")
            }
        }
        for (path, file) in files {
            if case .mode(let mode) = file { chmod(root + "/" + path, mode_t(mode)) }
        }
    }

    static func copyTree(_ from: String, to: String) throws {
        let copied = try Tools.run(["cp", "-a", from + "/.", to])
        try #require(copied.status == 0, "\(copied.stderr)")
    }

    static func unpack(_ layout: String, into root: String) throws -> String {
        let unpacked = try Tools.run(["umoci", "raw", "unpack", "--image", "\(layout):latest", root])
        try #require(unpacked.status == 0, "umoci raw unpack: \(unpacked.stderr)")
        return root
    }

    /// Every path's kind, mode, owner, modification time, link count and link target, and every
    /// regular file's SHA-256, as `find` and `sha256sum` print them.
    static func tree(_ root: String) throws -> [String] {
        let listing = try Tools.shell(
            "cd '\(root)' && find . -printf '%y %m %U:%G %T@ %n %p -> %l\\n' && find . -type f -print0 | xargs -0 -r sha256sum"
        )
        try #require(listing.status == 0, "\(listing.stderr)")
        return listing.stdout.split(separator: "\n").map(String.init).sorted()
    }
}
