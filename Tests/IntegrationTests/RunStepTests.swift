import Foundation
import Testing

/// `RUN` through buildah, cached step by step: a processor-shaped Dockerfile (indented lines,
/// RUN before and after code COPYs, HEALTHCHECK) on the busybox base, built by `kiln build`.
@Suite("kiln build with RUN (buildah executor)", .serialized)
struct RunStepTests {
    static let dockerfile = """
            FROM BASE
            ENV PYTHONDONTWRITEBYTECODE=1 TZ=UTC
            RUN mkdir -p /opt && head -c 16 /dev/urandom | sha256sum | cut -c1-16 > /opt/random
            WORKDIR /tool
            COPY lib/ /tool/libs/
            COPY protocol.txt /tool/protocol/
            RUN cat /tool/libs/*.txt /tool/protocol/protocol.txt > /tool/installed && echo installed >> /opt/steps
            RUN mkdir -p /home/app && chmod -R 0777 /home/app && echo second >> /opt/steps
            ENV HOME=/home/app
            COPY late.txt /tool/
            EXPOSE 8000
            CMD ["sh", "-c", "cat /tool/installed"]
            HEALTHCHECK --interval=10s --timeout=3s --retries=5 \\
                CMD test -f /tool/installed || exit 1
        """

    final class Setup {
        let scratch: Scratch
        let registry: RegistryServer
        let base: BusyboxBase
        let context: String
        let cache: String

        init(_ label: String, dockerfile: String = RunStepTests.dockerfile) throws {
            scratch = try Scratch(label)
            registry = try RegistryServer()
            base = try BusyboxBase(registry: registry, scratch: scratch)
            context = try scratch.sub("context")
            cache = try scratch.sub("cache")
            try FileManager.default.createDirectory(atPath: context + "/lib", withIntermediateDirectories: true)
            try write("lib/common.txt", "common v1\n")
            try write("protocol.txt", "protocol v1\n")
            try write("late.txt", "late v1\n")
            try write("Dockerfile", dockerfile.replacingOccurrences(of: "BASE", with: base.reference))
        }

        func write(_ path: String, _ text: String) throws {
            try text.write(toFile: context + "/" + path, atomically: false, encoding: .utf8)
        }

        var target: String { "\(registry.host)/acme/run-steps:1" }

        func build(
            platform: String = "linux/amd64", environment: [String: String] = [:], cache: String? = nil,
            extra: [String] = [],
            expect status: Int32 = 0
        ) throws -> (report: [String: Any], result: Tools.Result) {
            let result = try Tools.kiln(
                ["build", "--json", "--platform", platform, "-t", target, "--cache-dir", cache ?? self.cache] + extra
                    + [context],
                environment: environment)
            try #require(result.status == status, "kiln build exited \(result.status): \(result.stderr)")
            let report = (try? JSONSerialization.jsonObject(with: result.stdoutBytes) as? [String: Any]) ?? [:]
            return (report, result)
        }

        /// Runs `command` in the pushed image under `buildah run`.
        func inImage(_ command: String, arch: String? = nil, image: String? = nil) throws -> String {
            let buildah = try Buildah(scratch: scratch)
            let from = try buildah.run(
                ["from", "--tls-verify=false"] + (arch.map { ["--arch", $0] } ?? []) + [image ?? target])
            try #require(from.status == 0, "buildah from: \(from.stderr)")
            let container = from.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let run = try buildah.run(["run", "--isolation", "chroot", container, "--", "sh", "-c", command])
            try #require(run.status == 0, "buildah run: \(run.stderr)")
            _ = try buildah.run(["rm", container])
            return run.stdout
        }
    }

    @Test(
        "a RUN image keeps its base's layer blobs, and the same step built from nothing elsewhere, traced or not, is the same image"
    )
    func runImageSharesBaseBlobs() throws {
        let setup = try Setup(
            "run-blobs",
            dockerfile: """
                    FROM BASE
                    COPY lib/ /tool/libs/
                    RUN mkdir -p /opt && ls /tool/libs > /opt/libs.txt
                    CMD ["sh"]
                """)
        func layers(_ reference: String) throws -> [String] {
            let inspected = try Tools.run(["skopeo", "inspect", "--tls-verify=false", "docker://\(reference)"])
            try #require(inspected.status == 0, "\(inspected.stderr)")
            let object = try JSONSerialization.jsonObject(with: Data(inspected.stdout.utf8)) as? [String: Any] ?? [:]
            return object["Layers"] as? [String] ?? []
        }
        let first = try setup.build().report
        try #require(first["stepsRun"] as? Int == 1, "\(first)")
        let base = try layers(setup.base.reference)
        let built = try layers(setup.target)
        #expect(built.count == base.count + 2)
        #expect(Array(built.prefix(base.count)) == base, "the base's blobs, not buildah's recompression of them")

        // Another runner, another repository (no shared checkpoints), an empty cache: the step
        // runs again and gives the same image.
        let elsewhere = "\(setup.registry.host)/acme/elsewhere:1"
        let runtime = try setup.scratch.sub("runtime")
        let again = try Tools.kiln(
            [
                "build", "--json", "--platform", "linux/amd64", "-t", elsewhere, "--cache-dir",
                try setup.scratch.sub("elsewhere-cache"), setup.context,
            ], environment: ["KILN_RUNTIME_DIR": runtime])
        try #require(again.status == 0, "\(again.stderr)")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: runtime).isEmpty,
            "buildah's storage, removed in the background, is gone when kiln has exited")
        let report = (try? JSONSerialization.jsonObject(with: again.stdoutBytes) as? [String: Any]) ?? [:]
        #expect(report["stepsRun"] as? Int == 1, "\(report)")
        let elsewhereLayers = try layers(elsewhere)
        #expect(
            report["digest"] as? String == first["digest"] as? String,
            "the same step on the same inputs is the same image: \(elsewhereLayers) vs \(built)")

        // Untraced, the step goes through buildah's build instead of a working container of
        // kiln's: the same image still.
        let untraced = try Tools.kiln([
            "build", "--json", "--no-reuse-by-reads", "--platform", "linux/amd64", "-t",
            "\(setup.registry.host)/acme/untraced:1", "--cache-dir", try setup.scratch.sub("untraced-cache"),
            setup.context,
        ])
        try #require(untraced.status == 0, "\(untraced.stderr)")
        let untracedReport = (try? JSONSerialization.jsonObject(with: untraced.stdoutBytes) as? [String: Any]) ?? [:]
        #expect(untracedReport["digest"] as? String == first["digest"] as? String, "\(untracedReport)")
    }

    @Test(
        "RUN steps run once per platform; a later COPY's change reruns only the RUNs after it; no change runs buildah zero times"
    )
    func checkpoints() throws {
        try ARM64Emulation.register()
        let setup = try Setup("run-steps")
        let both = "linux/amd64,linux/arm64"
        let first = try setup.build(platform: both).report
        #expect(first["stepsRun"] as? Int == 6, "three RUNs on two platforms: \(first)")
        let random = try setup.inImage("cat /opt/random", arch: "amd64")
        #expect(random.count == 17)
        for arch in ["amd64", "arm64"] {
            #expect(
                try setup.inImage("cat /tool/installed /opt/steps; echo $HOME $TZ; pwd", arch: arch)
                    == "common v1\nprotocol v1\ninstalled\nsecond\n/home/app UTC\n/tool\n", "\(arch)")
        }

        let again = try setup.build(platform: both).report
        #expect(again["executorRuns"] as? Int == 0 && again["digest"] as? String == first["digest"] as? String)

        try setup.write("late.txt", "late v2\n")
        let late = try setup.build(platform: both).report
        #expect(late["executorRuns"] as? Int == 0, "a file copied after the last RUN runs buildah zero times")
        #expect(try setup.inImage("cat /tool/late.txt", arch: "arm64") == "late v2\n")

        try setup.write("protocol.txt", "protocol v2\n")
        let changed = try setup.build(platform: both).report
        #expect(
            changed["stepsRun"] as? Int == 2 && changed["stepsReused"] as? Int == 2,
            "the RUN that reads the changed file ran on each platform; the mkdir after it, which reads none of it, was reused; the first did not run: \(changed)"
        )
        #expect(try setup.inImage("cat /opt/random", arch: "amd64") == random, "the first RUN's random value survived")
        #expect(
            try setup.inImage("cat /tool/installed /opt/steps", arch: "arm64")
                == "common v1\nprotocol v2\ninstalled\nsecond\n")

        // Another machine: a fresh cache, the same registry. The checkpoints come from there.
        let fresh = try setup.build(platform: both, cache: try setup.scratch.sub("fresh-cache")).report
        #expect(fresh["executorRuns"] as? Int == 0, "\(fresh)")
        #expect(fresh["digest"] as? String == changed["digest"] as? String)
        let tags = try Tools.run([
            "skopeo", "list-tags", "--tls-verify=false", "docker://\(setup.registry.host)/acme/run-steps",
        ])
        #expect(
            tags.stdout.components(separatedBy: "kiln-step-").count - 1 == 10,
            "3 checkpoints, then 2 more, per platform: \(tags.stdout)")

        // The config matches what buildah bud gives for the same Dockerfile.
        let layout = setup.scratch.path + "/layouts"
        let copied = try Tools.run([
            "skopeo", "copy", "--src-tls-verify=false", "docker://\(setup.target)", "oci:\(layout):kiln",
        ])
        try #require(copied.status == 0, "\(copied.stderr)")
        let buildah = try Buildah(scratch: setup.scratch)
        let image = "localhost/kiln-diff:run"
        let built = try buildah.run([
            "bud", "--isolation", "chroot", "--tls-verify=false", "--format", "docker", "-f",
            setup.context + "/Dockerfile", "-t", image,
            setup.context,
        ])
        try #require(built.status == 0, "buildah bud: \(built.stderr)")
        let pushed = try buildah.run(["push", "--format", "v2s2", image, "oci:\(layout):buildah"])
        try #require(pushed.status == 0, "\(pushed.stderr)")
        let fields = ["Env", "Cmd", "Healthcheck", "ExposedPorts", "WorkingDir"]
        let ours = try Self.config(layout, tag: "kiln")
        let theirs = try Self.config(layout, tag: "buildah")
        for field in fields {
            #expect(
                ours[field] == theirs[field],
                "\(field): kiln \(ours[field] ?? "nil") vs buildah \(theirs[field] ?? "nil")")
        }
    }

    /// The config fields of an OCI layout entry, each as canonical JSON text (Env sorted).
    static func config(_ layout: String, tag: String) throws -> [String: String] {
        let script = """
            import json, sys
            index = json.load(open('\(layout)/index.json'))
            entry = [m for m in index['manifests'] if m.get('annotations', {}).get('org.opencontainers.image.ref.name') == '\(tag)'][0]
            blob = lambda d: json.load(open('\(layout)/blobs/' + d.replace(':', '/')))
            config = blob(blob(entry['digest'])['config']['digest'])['config']
            if 'Env' in config: config['Env'] = sorted(config['Env'])
            print(json.dumps({k: json.dumps(v, sort_keys=True) for k, v in config.items()}))
            """
        let result = try Tools.run(["python3", "-c", script])
        try #require(result.status == 0, "\(result.stderr)")
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: String] ?? [:]
    }

    @Test("linux/amd64 + linux/arm64: each platform's RUN runs on its own architecture (arm64 under qemu)")
    func twoPlatforms() throws {
        try ARM64Emulation.register()
        let dockerfile = """
                FROM BASE
                RUN uname -m > /arch && echo ran > /ran
                COPY late.txt /tool/
                CMD ["sh"]
            """
        let setup = try Setup("run-arm64", dockerfile: dockerfile)
        let report = try setup.build(platform: "linux/amd64,linux/arm64").report
        #expect(report["stepsRun"] as? Int == 2, "\(report)")
        #expect(Set((report["platforms"] as? [String: String] ?? [:]).keys) == ["linux/amd64", "linux/arm64/v8"])
        #expect(try setup.inImage("cat /arch /tool/late.txt", arch: "amd64") == "x86_64\nlate v1\n")
        #expect(try setup.inImage("cat /arch /tool/late.txt", arch: "arm64") == "aarch64\nlate v1\n")
        let again = try setup.build(platform: "linux/amd64,linux/arm64").report
        #expect(again["executorRuns"] as? Int == 0 && again["digest"] as? String == report["digest"] as? String)
    }

    @Test(
        "each RUN's reads are traced and published next to its kiln-step tag, on amd64 and on arm64 under qemu; a fresh cache fetches them"
    )
    func readsRecorded() throws {
        try ARM64Emulation.register()
        try Tools.require("strace", package: "strace")
        let dockerfile = """
                FROM BASE
                WORKDIR /tool
                COPY lib/ /tool/libs/
                COPY protocol.txt /tool/protocol/
                RUN cat libs/*.txt /tool/protocol/protocol.txt > /tool/installed; [ -e /tool/absent ] || true
                CMD ["sh"]
            """
        let setup = try Setup("run-reads", dockerfile: dockerfile)
        let report = try setup.build(platform: "linux/amd64,linux/arm64").report
        #expect(report["stepsRun"] as? Int == 2, "\(report)")
        let repository = "\(setup.registry.host)/acme/run-steps"
        let tags = try Tools.run(["skopeo", "list-tags", "--tls-verify=false", "docker://\(repository)"])
        let steps = tags.stdout.components(separatedBy: "\"kiln-step-").dropFirst().map { String($0.prefix(64)) }
        let reads = tags.stdout.components(separatedBy: "\"kiln-reads-").dropFirst().map { String($0.prefix(64)) }
        #expect(steps.count == 2 && Set(reads) == Set(steps), "one read set per checkpoint: \(tags.stdout)")

        for key in reads {
            let manifest = try Tools.run([
                "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://\(repository):kiln-reads-\(key)",
            ])
            try #require(manifest.status == 0, "\(manifest.stderr)")
            let object = try JSONSerialization.jsonObject(with: Data(manifest.stdout.utf8)) as? [String: Any] ?? [:]
            #expect(object["artifactType"] as? String == "application/vnd.kiln.run-reads.v1+json")
            let layer = (object["layers"] as? [[String: Any]])?.first ?? [:]
            let digest = try #require(layer["digest"] as? String)
            let blob = try Tools.run([
                "curl", "-sf", "http://\(setup.registry.host)/v2/acme/run-steps/blobs/\(digest)",
            ])
            try #require(blob.status == 0, "\(blob.stderr)")
            let stored = try JSONSerialization.jsonObject(with: Data(blob.stdout.utf8)) as? [String: Any] ?? [:]
            #expect(stored["format"] as? String == "kiln-run-reads/2")
            #expect(stored["unmodelled"] == nil, "\(stored)")
            let observations = Set(
                (stored["observations"] as? [[String: String]] ?? []).map { "\($0["kind"] ?? "") \($0["path"] ?? "")" })
            for expected in [
                "listing /tool/libs", "entry /tool/libs/common.txt", "entry /tool/protocol/protocol.txt",
                "lookup /tool/absent", "layer /tool/installed", "lookup /bin/sh", "entry /bin/busybox",
                "entry /etc/passwd", "entry /etc/group",
            ] {
                #expect(observations.contains(expected), "\(expected) in \(observations.sorted())")
            }
            #expect(
                !observations.contains { $0.contains("/var/tmp") || $0.contains("containers") },
                "\(observations.sorted())")
        }

        // Another machine: the checkpoints come from the registry with their read sets.
        let fresh = try setup.scratch.sub("fresh-cache")
        let again = try setup.build(platform: "linux/amd64,linux/arm64", cache: fresh).report
        #expect(again["executorRuns"] as? Int == 0, "\(again)")
        let records = try FileManager.default.subpathsOfDirectory(atPath: fresh + "/keys/checkpoint")
            .filter { $0.hasSuffix(".json") }
            .compactMap { FileManager.default.contents(atPath: fresh + "/keys/checkpoint/" + $0) }
            .map { String(decoding: $0, as: UTF8.self) }
        #expect(records.count == 2 && records.allSatisfy { $0.contains("\"reads\"") }, "\(records)")
    }

    @Test("a secret mounted into a RUN is used, and is in no layer, log line or JSON")
    func secret() throws {
        let value = "kiln-secret-" + UUID().uuidString.prefix(12).lowercased()
        let dockerfile = """
            FROM BASE
            RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /opt-token-length && echo "the token is $(cat /run/secrets/token)"
            CMD ["sh"]
            """
        let setup = try Setup("run-secret", dockerfile: dockerfile)
        let (report, result) = try setup.build(
            environment: ["KILN_TEST_TOKEN": value], extra: ["--secret", "id=token,env=KILN_TEST_TOKEN"])
        #expect(report["stepsRun"] as? Int == 1)
        #expect(
            result.stderr.contains("[linux/amd64] the token is ****"),
            "the RUN printed it, masked, as a JSON event: \(result.stderr)")
        #expect(!result.stderr.contains(value) && !result.stdout.contains(value))
        #expect(
            try setup.inImage("cat /opt-token-length").trimmingCharacters(in: .whitespacesAndNewlines)
                == "\(value.utf8.count)")
        // Every blob kiln holds or pushed, decompressed when gzip: the value is in none of them.
        let layout = setup.scratch.path + "/pushed"
        let copied = try Tools.run([
            "skopeo", "copy", "--src-tls-verify=false", "docker://\(setup.target)", "oci:\(layout):x",
        ])
        try #require(copied.status == 0, "\(copied.stderr)")
        let scan = try Tools.run([
            "python3", "-c",
            """
            import gzip, os, sys
            hits = []
            for root in sys.argv[2:]:
                for folder, _, files in os.walk(root):
                    for name in files:
                        data = open(os.path.join(folder, name), 'rb').read()
                        try: data = gzip.decompress(data)
                        except Exception: pass
                        if sys.argv[1].encode() in data: hits.append(os.path.join(folder, name))
            print(len(hits), hits)
            """,
            value, layout, setup.cache,
        ])
        #expect(scan.status == 0 && scan.stdout.hasPrefix("0 "), "the secret is in: \(scan.stdout) \(scan.stderr)")
    }

    @Test("a failing RUN names its line, exit code and output, and pushes nothing")
    func failingRun() throws {
        let dockerfile = """
            FROM BASE
            COPY lib/ /tool/libs/
            RUN echo preparing && echo 'something broke' && exit 3
            CMD ["sh"]
            """
        let setup = try Setup("run-fails", dockerfile: dockerfile)
        let mark = setup.registry.mark()
        let (_, result) = try setup.build(expect: 2)
        #expect(result.stderr.contains("Dockerfile:3:"), "\(result.stderr)")
        #expect(result.stderr.contains("exit code 3"), "\(result.stderr)")
        #expect(result.stderr.contains("something broke"))
        let writes = setup.registry.requests(since: mark).filter {
            $0.hasPrefix("PUT") || $0.hasPrefix("POST") || $0.hasPrefix("PATCH")
        }
        #expect(writes.isEmpty, "\(writes)")
    }

    @Test("without a binfmt entry for arm64, RUN for linux/arm64 fails before any work, naming both fixes")
    func noEmulation() throws {
        let setup = try Setup("run-binfmt")
        let mark = setup.registry.mark()
        let missing = setup.scratch.path + "/no-binfmt"
        let (_, result) = try setup.build(
            platform: "linux/amd64,linux/arm64", environment: ["KILN_BINFMT_DIR": missing], expect: 2)
        #expect(result.stderr.contains("RUN for linux/arm64/v8"), "\(result.stderr)")
        #expect(result.stderr.contains("qemu-user-static") && result.stderr.contains("native runner"))
        #expect(!result.stderr.contains("\"event\":\"output\""), "buildah must not have run")
        let writes = setup.registry.requests(since: mark).filter {
            $0.hasPrefix("PUT") || $0.hasPrefix("POST") || $0.hasPrefix("PATCH")
        }
        #expect(writes.isEmpty)
    }
}

/// QEMU user emulation for arm64 RUN steps, registered with binfmt_misc by the tests (as root):
/// binfmt_misc mounted if it is not, and the `qemu-aarch64` entry written from Debian's
/// qemu-user-static description (magic and mask), interpreter `/usr/bin/qemu-aarch64-static`,
/// flags `FP` (the interpreter is opened at registration, so it works inside chroots).
enum ARM64Emulation {
    static let directory = "/proc/sys/fs/binfmt_misc"

    static func register() throws {
        try Tools.require("qemu-aarch64-static", package: "qemu-user-static")
        if FileManager.default.fileExists(atPath: directory + "/qemu-aarch64") { return }
        if !FileManager.default.fileExists(atPath: directory + "/register") {
            let mounted = try Tools.run(["mount", "-t", "binfmt_misc", "binfmt_misc", directory])
            try #require(mounted.status == 0, "cannot mount binfmt_misc (needs root): \(mounted.stderr)")
        }
        let description = try String(contentsOfFile: "/usr/share/binfmts/qemu-aarch64", encoding: .utf8)
        func field(_ name: String) -> String? {
            description.split(separator: "\n").first { $0.hasPrefix(name + " ") }.map {
                String($0.dropFirst(name.count + 1))
            }
        }
        let magic = try #require(field("magic"), "no magic in /usr/share/binfmts/qemu-aarch64")
        let mask = try #require(field("mask"), "no mask in /usr/share/binfmts/qemu-aarch64")
        let entry = ":qemu-aarch64:M:0:\(magic):\(mask):/usr/bin/qemu-aarch64-static:FP"
        let written = try Tools.shell("printf '%s' '\(entry)' > \(directory)/register")
        try #require(
            written.status == 0 || FileManager.default.fileExists(atPath: directory + "/qemu-aarch64"),
            "cannot register qemu-aarch64: \(written.stderr)")
    }
}
