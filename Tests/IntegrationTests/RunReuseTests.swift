import Foundation
import Testing

/// `RUN` steps reused by what they read (issue 14): a step whose positional key missed because
/// something before it changed is rebased, not run, when nothing it touched changed; and it runs
/// when something it read, listed, probed or overwrote did. Real buildah and strace, a real
/// registry, the busybox base on amd64 and arm64 (QEMU); a shell script stands in for a
/// dependency install (reads its requirements, writes a site directory, draws random bytes so a
/// rerun shows).
@Suite("RUN steps reused by what they read", .serialized)
struct RunReuseTests {
    typealias Setup = RunStepTests.Setup

    /// The layer digests of the pushed image for `arch`.
    static func layers(_ setup: Setup, arch: String) throws -> [String] {
        let inspected = try Tools.run([
            "skopeo", "inspect", "--tls-verify=false", "--override-arch", arch, "--override-os", "linux",
            "docker://\(setup.target)",
        ])
        try #require(inspected.status == 0, "\(inspected.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(inspected.stdout.utf8)) as? [String: Any] ?? [:]
        return object["Layers"] as? [String] ?? []
    }

    static let install = """
        mkdir -p /usr/local/lib/site && while read p; do echo "installed $p" > /usr/local/lib/site/$p.txt; done < /tool/requirements.txt && head -c 16 /dev/urandom | sha256sum | cut -c1-16 > /usr/local/lib/site/random
        """

    @Test(
        "a dependency install and mkdir/chmod after a code edit: no container runs on either platform, the layers are the recorded ones, the image runs"
    )
    func reusedAfterCodeEdit() throws {
        try ARM64Emulation.register()
        try Tools.require("strace", package: "strace")
        let dockerfile = """
                FROM BASE
                WORKDIR /tool
                COPY requirements.txt /tool/
                COPY lib/ /tool/libs/
                COPY protocol.txt /tool/protocol/
                RUN \(Self.install)
                RUN mkdir -p /home/app && chmod -R 0777 /home/app
                CMD ["sh"]
            """
        let setup = try Setup("reuse-edit", dockerfile: dockerfile)
        try setup.write("requirements.txt", "fastapi\nuvicorn\n")
        let both = "linux/amd64,linux/arm64"
        let first = try setup.build(platform: both).report
        #expect(first["stepsRun"] as? Int == 4, "\(first)")
        let random = try setup.inImage("cat /usr/local/lib/site/random", arch: "amd64")
        let before = try ["amd64", "arm64"].map { try Self.layers(setup, arch: $0) }

        try setup.write("protocol.txt", "protocol v2 — one line changed\n")
        let edited = try setup.build(platform: both).report
        #expect(edited["executorRuns"] as? Int == 0, "no container ran: \(edited)")
        #expect(edited["stepsReused"] as? Int == 4, "both RUNs on both platforms reused: \(edited)")
        for (index, arch) in ["amd64", "arm64"].enumerated() {
            #expect(
                try setup.inImage(
                    "cat /tool/protocol/protocol.txt /usr/local/lib/site/fastapi.txt; stat -c %a /home/app", arch: arch)
                    == "protocol v2 — one line changed\ninstalled fastapi\n777\n", "\(arch)")
            let after = try Self.layers(setup, arch: arch)
            #expect(after.count == before[index].count)
            // The RUN layers (the last two) are the recorded bytes; the COPY of protocol.txt changed.
            #expect(Array(after.suffix(2)) == Array(before[index].suffix(2)), "\(arch): \(before[index]) → \(after)")
            #expect(after[after.count - 3] != before[index][after.count - 3])
        }
        #expect(try setup.inImage("cat /usr/local/lib/site/random", arch: "amd64") == random, "not run again")

        // The reused image's files equal a from-scratch build's, but for the random bytes (and
        // the files `buildah run` mounts into the container it lists them in).
        let scratchImage = "\(setup.registry.host)/acme/from-scratch:1"
        let rebuilt = try Tools.kiln([
            "build", "--json", "--no-reuse-by-reads", "--platform", "linux/amd64", "-t", scratchImage, "--cache-dir",
            try setup.scratch.sub("scratch-cache"), setup.context,
        ])
        try #require(rebuilt.status == 0, "\(rebuilt.stderr)")
        let listing = """
            find /tool /usr/local /home /etc /bin | grep -v -e ^/etc/hostname -e ^/etc/hosts -e ^/etc/resolv.conf \
              | sort | while read f; do \
              if [ -f "$f" ] && [ "$f" != /usr/local/lib/site/random ]; then \
                echo "$(stat -c '%a %u:%g' "$f") $(sha256sum < "$f" | cut -c1-64) $f"; \
              else echo "$(stat -c '%F %a %u:%g' "$f") $f"; fi; done
            """
        let reusedTree = try setup.inImage(listing, arch: "amd64")
        let scratchTree = try setup.inImage(listing, arch: "amd64", image: scratchImage)
        #expect(reusedTree.split(separator: "\n").count > 20)
        #expect(reusedTree == scratchTree, "the reused image's tree differs from a from-scratch build's")

        // The same edit on a fresh runner: the executions come from the registry.
        try setup.write("protocol.txt", "protocol v3\n")
        let fresh = try setup.build(platform: both, cache: try setup.scratch.sub("fresh")).report
        #expect(fresh["executorRuns"] as? Int == 0 && fresh["stepsReused"] as? Int == 4, "\(fresh)")

        // What the install reads changed: it runs (and so does what follows, on a new layer).
        try setup.write("requirements.txt", "fastapi\nuvicorn\nhttpx\n")
        let requirements = try setup.build(platform: "linux/amd64").report
        #expect((requirements["stepsRun"] as? Int ?? 0) >= 1, "\(requirements)")
        #expect(try setup.inImage("cat /usr/local/lib/site/httpx.txt", arch: "amd64") == "installed httpx\n")
        #expect(try setup.inImage("cat /usr/local/lib/site/random", arch: "amd64") != random)
    }

    /// Builds `dockerfile`, applies `change`, builds again: the report of the second build.
    static func rebuild(_ label: String, _ dockerfile: String, change: (Setup) throws -> Void) throws -> (
        Setup, [String: Any]
    ) {
        try Tools.require("strace", package: "strace")
        let setup = try Setup(label, dockerfile: dockerfile)
        let first = try setup.build().report
        try #require(first["stepsRun"] as? Int == 1, "\(first)")
        let cold = (first["runSteps"] as? [[String: Any]])?.first ?? [:]
        #expect(cold["outcome"] as? String == "run" && cold["changed"] == nil, "no execution recorded yet: \(first)")
        try change(setup)
        return (setup, try setup.build().report)
    }

    @Test("a step that read a copied file runs again when that file changed")
    func readFileChanged() throws {
        let (setup, report) = try Self.rebuild(
            "rerun-read",
            """
                FROM BASE
                COPY protocol.txt /tool/protocol/
                RUN cat /tool/protocol/*.txt > /opt-all
                CMD ["sh"]
            """
        ) { try $0.write("protocol.txt", "protocol v2\n") }
        #expect(report["stepsRun"] as? Int == 1 && report["stepsReused"] as? Int == 0, "\(report)")
        let decision = (report["runSteps"] as? [[String: Any]])?.first ?? [:]
        #expect(
            decision["outcome"] as? String == "run" && decision["changed"] as? String == "/tool/protocol/protocol.txt"
                && decision["line"] as? Int == 3,
            "the report names the changed path it read: \(report)")
        #expect(try setup.inImage("cat /opt-all") == "protocol v2\n")
    }

    @Test("a step that listed a directory runs again when a COPY added a file there")
    func listedDirectoryGrew() throws {
        let (setup, report) = try Self.rebuild(
            "rerun-list",
            """
                FROM BASE
                COPY lib/ /tool/libs/
                RUN ls /tool/libs > /opt-list
                CMD ["sh"]
            """
        ) { try $0.write("lib/extra.txt", "extra\n") }
        #expect(report["stepsRun"] as? Int == 1, "\(report)")
        #expect(try setup.inImage("cat /opt-list") == "common.txt\nextra.txt\n")
    }

    @Test("mkdir -p and chmod -R over a directory run again when a COPY added a file into it")
    func chmodOverGrownDirectory() throws {
        let (setup, report) = try Self.rebuild(
            "rerun-chmod",
            """
                FROM BASE
                COPY lib/ /work/
                RUN mkdir -p /work && chmod -R 0777 /work
                CMD ["sh"]
            """
        ) { try $0.write("lib/added.txt", "added\n") }
        #expect(report["stepsRun"] as? Int == 1, "\(report)")
        #expect(try setup.inImage("stat -c %a /work/added.txt") == "777\n")
    }

    @Test("a step that probed a missing path runs again once the path exists")
    func probedPathAppeared() throws {
        let (setup, report) = try Self.rebuild(
            "rerun-probe",
            """
                FROM BASE
                COPY lib/ /tool/libs/
                RUN if [ -e /tool/libs/flag.txt ]; then echo on; else echo off; fi > /opt-flag
                CMD ["sh"]
            """
        ) { try $0.write("lib/flag.txt", "x\n") }
        #expect(report["stepsRun"] as? Int == 1, "\(report)")
        #expect(try setup.inImage("cat /opt-flag") == "on\n")
    }

    @Test("a step whose layer overwrites a path that changed below it runs again")
    func overwrittenPathChanged() throws {
        let (_, report) = try Self.rebuild(
            "rerun-overwrite",
            """
                FROM BASE
                COPY protocol.txt /etc/app/conf.txt
                RUN echo override > /etc/app/conf.txt
                CMD ["sh"]
            """
        ) { try $0.write("protocol.txt", "protocol v2\n") }
        #expect(report["stepsRun"] as? Int == 1 && report["stepsReused"] as? Int == 0, "\(report)")
    }

    @Test("a step that read none of the changed files is reused, once per change")
    func unrelatedEditReused() throws {
        let (setup, report) = try Self.rebuild(
            "reuse-unrelated",
            """
                FROM BASE
                COPY protocol.txt /tool/protocol/
                RUN mkdir -p /home/app && chmod -R 0777 /home/app && echo ok > /home/app/marker
                CMD ["sh"]
            """
        ) { try $0.write("protocol.txt", "protocol v2\n") }
        #expect(report["executorRuns"] as? Int == 0 && report["stepsReused"] as? Int == 1, "\(report)")
        #expect(try setup.inImage("cat /home/app/marker /tool/protocol/protocol.txt") == "ok\nprotocol v2\n")
        let again = try setup.build().report
        #expect(again["executorRuns"] as? Int == 0 && again["stepsReused"] as? Int == 0, "a key hit now: \(again)")

        // Switched off, the same kind of edit runs the step again.
        try setup.write("protocol.txt", "protocol v3\n")
        let positional = try setup.build(extra: ["--no-reuse-by-reads"]).report
        #expect(positional["stepsRun"] as? Int == 1 && positional["stepsReused"] as? Int == 0, "\(positional)")
    }

    @Test(
        "a fresh runner checks a code edit from the layer indexes published beside the checkpoints: no base or RUN layer is downloaded"
    )
    func freshRunnerDownloadsNoLayer() throws {
        let setup = try Setup(
            "fresh-indexes",
            dockerfile: """
                    FROM BASE
                    WORKDIR /tool
                    COPY protocol.txt /tool/req.txt
                    COPY lib/ /tool/libs/
                    RUN mkdir -p /site && while read p; do echo "$p" > "/site/$(echo $p | tr ' ' _)"; done < /tool/req.txt
                    RUN mkdir -p /home/app && chmod -R 0777 /home/app
                    CMD ["sh"]
                """)
        let cold = try setup.build().report
        #expect(cold["stepsRun"] as? Int == 2, "\(cold)")
        let repository = "\(setup.registry.host)/acme/run-steps"
        let tags = try Tools.run(["skopeo", "list-tags", "--tls-verify=false", "docker://\(repository)"]).stdout
        #expect(tags.contains("kiln-index-"), "the layers' indexes are published beside the checkpoints: \(tags)")
        let layers = try RunReuseTests.layers(setup, arch: "amd64")

        try setup.write("lib/common.txt", "common v2\n")
        let freshCache = try setup.scratch.sub("fresh")
        let fresh = try setup.build(cache: freshCache).report
        #expect(
            fresh["executorRuns"] as? Int == 0 && fresh["stepsReused"] as? Int == 2,
            "both RUNs reused on an empty store: \(fresh)")
        let held = Set(try FileManager.default.contentsOfDirectory(atPath: freshCache + "/blobs/sha256"))
        let base = layers.first.map { String($0.dropFirst("sha256:".count)) }
        let runLayers = layers.suffix(2).map { String($0.dropFirst("sha256:".count)) }
        #expect(base.map { !held.contains($0) } == true, "the base layer stayed in the registry")
        #expect(runLayers.allSatisfy { !held.contains($0) }, "the RUN layers stayed in the registry: \(held)")
        #expect(
            try setup.inImage("cat /tool/libs/common.txt /site/protocol_v1; stat -c %a /home/app")
                == "common v2\nprotocol v1\n777\n")

        // Without the published indexes a fresh runner downloads the layers and still reuses.
        for tag in tags.components(separatedBy: "\"").filter({ $0.hasPrefix("kiln-index-") }) {
            let deleted = try Tools.run([
                "skopeo", "delete", "--tls-verify=false", "docker://\(repository):\(tag)",
            ])
            try #require(deleted.status == 0, "\(deleted.stderr)")
        }
        try setup.write("lib/common.txt", "common v3\n")
        let withoutIndexes = try setup.build(cache: try setup.scratch.sub("fresh-2")).report
        #expect(
            withoutIndexes["executorRuns"] as? Int == 0 && withoutIndexes["stepsReused"] as? Int == 2,
            "\(withoutIndexes)")
        #expect(try setup.inImage("cat /tool/libs/common.txt") == "common v3\n")
    }

    @Test(
        "two branches whose step read different inputs both find their execution, locally and on a fresh runner"
    )
    func branchesBothReused() throws {
        let setup = try Setup(
            "reuse-branches",
            dockerfile: """
                    FROM BASE
                    COPY protocol.txt /tool/req.txt
                    COPY lib/ /tool/libs/
                    RUN cat /tool/req.txt > /deps && head -c 8 /dev/urandom | od -An -tx1 > /deps-random
                    CMD ["sh"]
                """)
        // Branch A, then branch B (other requirements): each runs the step once.
        let a = try setup.build().report
        #expect(a["stepsRun"] as? Int == 1, "\(a)")
        let randomA = try setup.inImage("cat /deps-random")
        try setup.write("protocol.txt", "branch b requirements\n")
        let b = try setup.build().report
        #expect(b["stepsRun"] as? Int == 1, "\(b)")
        // Back on branch A with a code edit: A's execution, no longer the newest, is reused.
        try setup.write("protocol.txt", "protocol v1\n")
        try setup.write("lib/common.txt", "common v2\n")
        let backOnA = try setup.build().report
        #expect(
            backOnA["executorRuns"] as? Int == 0 && backOnA["stepsReused"] as? Int == 1,
            "branch A's execution is still recorded: \(backOnA)")
        #expect(try setup.inImage("cat /deps /deps-random") == "protocol v1\n" + randomA)
        // A fresh runner on branch B with a code edit finds B's execution in the registry.
        try setup.write("protocol.txt", "branch b requirements\n")
        try setup.write("lib/common.txt", "common v3\n")
        let fresh = try setup.build(cache: try setup.scratch.sub("fresh")).report
        #expect(fresh["executorRuns"] as? Int == 0 && fresh["stepsReused"] as? Int == 1, "\(fresh)")
        #expect(try setup.inImage("cat /deps") == "branch b requirements\n")
    }

    @Test(
        "buildah's runtime failing to start (a memfd seal refused with EBUSY) is tried again; the step runs once"
    )
    func runtimeStartRetried() throws {
        let setup = try Setup(
            "runtime-retry",
            dockerfile: """
                    FROM BASE
                    COPY late.txt /
                    RUN echo ran >> /ran
                    CMD ["sh"]
                """)
        let bin = try setup.scratch.sub("bin")
        let marker = setup.scratch.path + "/failed-once"
        let real = try #require(
            ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map { $0 + "/buildah" }
                .first { FileManager.default.isExecutableFile(atPath: $0) })
        try """
        #!/bin/sh
        for argument in "$@"; do
            if [ "$argument" = run ] && [ ! -e '\(marker)' ]; then
                touch '\(marker)'
                echo 'Close_Fd sealing memfd copy: Device or resource busy' >&2
                exit 1
            fi
        done
        exec '\(real)' "$@"

        """.write(toFile: bin + "/buildah", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin + "/buildah")
        let path = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let (report, result) = try setup.build(environment: ["PATH": path])
        #expect(FileManager.default.fileExists(atPath: marker), "the first run failed as buildah's runtime does")
        #expect(report["stepsRun"] as? Int == 1, "\(report)")
        #expect(result.stderr.contains("trying again"), "\(result.stderr)")
        #expect(try setup.inImage("cat /ran") == "ran\n")
    }

    @Test(
        "where strace cannot trace (no ptrace, as in a container without CAP_SYS_PTRACE), RUN steps run untraced and say so"
    )
    func straceRefused() throws {
        let setup = try Setup(
            "strace-refused",
            dockerfile: """
                    FROM BASE
                    COPY late.txt /
                    RUN echo ran > /ran
                    CMD ["sh"]
                """)
        let bin = try setup.scratch.sub("bin")
        try "#!/bin/sh\necho 'strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted' >&2\nexit 1\n".write(
            toFile: bin + "/strace", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin + "/strace")
        let path = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let (report, result) = try setup.build(environment: ["PATH": path])
        #expect(report["stepsRun"] as? Int == 1, "\(report)")
        #expect(result.stderr.contains("strace cannot trace here"), "\(result.stderr)")
        #expect(try setup.inImage("cat /ran") == "ran\n")
    }
}
