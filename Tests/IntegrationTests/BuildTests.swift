import Foundation
import Testing

@Suite("kiln build", .serialized)
struct BuildTests {
    static let appDockerfile = """
            FROM BASE
            ENV APP_MODE=production \\
                GREETING="hello from kiln"
            WORKDIR /tool
            COPY app/ /tool/app/
            COPY notes.txt /tool/
            CMD ["sh", "-c", "cat /tool/notes.txt"]
        """

    /// A base, a context and the app Dockerfile, ready to build.
    struct Setup {
        let scratch: Scratch
        let registry: RegistryServer
        let base: BusyboxBase
        let context: String
        let dockerfile: String

        init(_ label: String, dockerfile text: String = BuildTests.appDockerfile) throws {
            scratch = try Scratch(label)
            registry = try RegistryServer()
            base = try BusyboxBase(registry: registry, scratch: scratch)
            context = try scratch.sub("context")
            try BuildDifferentialTests.makeContext(at: context)
            dockerfile = scratch.path + "/Dockerfile"
            try text.replacingOccurrences(of: "BASE", with: base.reference).write(
                toFile: dockerfile, atomically: false, encoding: .utf8)
        }

        func build(_ extra: [String], context: String? = nil) throws -> [String: Any] {
            let result = try Tools.kiln(["build", "--json", "-f", dockerfile] + extra + [context ?? self.context])
            try #require(result.status == 0, "kiln build failed: \(result.stderr)")
            return try JSONSerialization.jsonObject(with: result.stdoutBytes) as? [String: Any] ?? [:]
        }
    }

    @Test("the image starts under buildah run and sees its files and environment")
    func runsUnderBuildah() throws {
        let setup = try Setup("build-run")
        let target = "\(setup.registry.host)/acme/app:1"
        _ = try setup.build(["--platform", "linux/amd64", "-t", target])
        let buildah = try Buildah(scratch: setup.scratch)
        let from = try buildah.run(["from", "--tls-verify=false", target])
        try #require(from.status == 0, "buildah from: \(from.stderr)")
        let container = from.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let run = try buildah.run([
            "run", "--isolation", "chroot", container, "--", "sh", "-c",
            "cat /tool/notes.txt /tool/app/main.py; echo \"$APP_MODE|$GREETING|$(pwd)\"; ls /tool/app/lib",
        ])
        #expect(run.status == 0, "buildah run: \(run.stderr)")
        #expect(run.stdout == "notes\nprint('hello')\nproduction|hello from kiln|/tool\nutil.py\n")
    }

    @Test("rebuilding, and building a copy with other mtimes, gives the same index digest")
    func reproducible() throws {
        let setup = try Setup("build-repro")
        let platforms = ["--platform", "linux/amd64,linux/arm64"]
        let first = try setup.build(platforms + ["-o", "oci:\(setup.scratch.path)/one:v1"])
        let second = try setup.build(platforms + ["-o", "oci:\(setup.scratch.path)/two:v1"])
        let copy = setup.scratch.path + "/copy"
        let copied = try Tools.shell(
            "cp -r '\(setup.context)' '\(copy)' && find '\(copy)' -exec touch -h -d '2001-02-03 04:05:06' {} +")
        try #require(copied.status == 0, "\(copied.stderr)")
        let third = try setup.build(platforms + ["-o", "oci:\(setup.scratch.path)/three:v1"], context: copy)
        let digest = first["digest"] as? String
        #expect(digest != nil && digest == second["digest"] as? String && digest == third["digest"] as? String)
        let raw = try Tools.shell("skopeo inspect --raw oci:\(setup.scratch.path)/three:v1 | sha256sum | cut -d' ' -f1")
        #expect(digest == "sha256:" + raw.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test("two platforms: an OCI index, each with its base's config, the app layers shared")
    func multiArch() throws {
        let setup = try Setup("build-multi")
        let target = "\(setup.registry.host)/acme/app:multi"
        let report = try setup.build(["--platform", "linux/amd64,linux/arm64", "-t", target])
        let platforms = report["platforms"] as? [String: String] ?? [:]
        #expect(Set(platforms.keys) == ["linux/amd64", "linux/arm64/v8"])
        let index = try Tools.run(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://\(target)"])
        #expect(index.stdout.contains("application/vnd.oci.image.index.v1+json"))
        var layerLists = [[String]]()
        for arch in ["amd64", "arm64"] {
            let config = try Tools.run([
                "skopeo", "inspect", "--tls-verify=false", "--override-arch", arch, "--config", "docker://\(target)",
            ])
            let object = try JSONSerialization.jsonObject(with: config.stdoutBytes) as? [String: Any] ?? [:]
            #expect(object["architecture"] as? String == arch)
            if arch == "arm64" { #expect(object["variant"] as? String == "v8") }
            let digest = platforms[arch == "amd64" ? "linux/amd64" : "linux/arm64/v8"] ?? ""
            let repository = target.split(separator: ":").dropLast().joined(separator: ":")
            let manifest = try Tools.run([
                "skopeo", "inspect", "--tls-verify=false", "--raw", "docker://\(repository)@\(digest)",
            ])
            let parsed = try JSONSerialization.jsonObject(with: manifest.stdoutBytes) as? [String: Any] ?? [:]
            layerLists.append((parsed["layers"] as? [[String: Any]] ?? []).compactMap { $0["digest"] as? String })
        }
        // The base layer differs per architecture (different busybox); the three layers kiln
        // adds (WORKDIR, two COPYs) are byte-identical, so one blob serves both.
        #expect(layerLists[0].count == 4 && layerLists[1].count == 4)
        #expect(layerLists[0].first != layerLists[1].first)
        #expect(Array(layerLists[0].dropFirst()) == Array(layerLists[1].dropFirst()))
    }

    struct BadCase: CustomTestStringConvertible, Sendable {
        var name: String
        var dockerfile: String
        var message: String
        var testDescription: String { name }
    }

    static let badCases: [BadCase] = [
        BadCase(
            name: "COPY --from before RUN",
            dockerfile: "FROM BASE AS a\nFROM BASE\n  COPY --from=a /etc/passwd /x\nRUN echo hi\n",
            message: "Dockerfile:3:3: COPY --from before a stage's last RUN is not supported yet"),
        BadCase(
            name: "source outside the context", dockerfile: "FROM BASE\nCOPY ../x /x\n",
            message: "Dockerfile:2:1: '../x' is outside the build context"),
        BadCase(
            name: "symlink pointing out", dockerfile: "FROM BASE\nCOPY escape /x\n",
            message: "Dockerfile:2:1: 'escape' leads outside the build context through a symlink"),
        BadCase(
            name: "missing source", dockerfile: "FROM BASE\nCOPY nothing-here.txt /x\n",
            message: "Dockerfile:2:1: 'nothing-here.txt' is not in the build context"),
        BadCase(
            name: "ignored source", dockerfile: "FROM BASE\nCOPY debug.log /x\n",
            message: "Dockerfile:2:1: 'debug.log' is not in the build context (it is excluded by .dockerignore)"),
        BadCase(
            name: "glob matching nothing", dockerfile: "FROM BASE\nCOPY *.nothing /x/\n",
            message: "Dockerfile:2:1: no file in the build context matches '*.nothing'"),
        BadCase(
            name: "unknown instruction", dockerfile: "FROM BASE\nCOPPY notes.txt /\n",
            message: "Dockerfile:2:1: unknown instruction 'COPPY' (did you mean COPY?)"),
        BadCase(
            name: "unknown stage", dockerfile: "FROM BASE AS one\nFROM BASE\nCOPY --from=two /x /x\n",
            message: "Dockerfile:3:1: COPY --from=two names no stage of this Dockerfile (stages: one, 1)"),
        BadCase(
            name: "unknown user", dockerfile: "FROM BASE\nCOPY --chown=ghost notes.txt /x\n",
            message: "Dockerfile:2:1: --chown: no user 'ghost' in the image's /etc/passwd"),
    ]

    @Test("bad input: one clear line naming the Dockerfile line, exit 2, nothing pushed", arguments: badCases)
    func badInput(_ example: BadCase) throws {
        let setup = try Setup("build-bad", dockerfile: example.dockerfile)
        try FileManager.default.createSymbolicLink(atPath: setup.context + "/escape", withDestinationPath: "../../etc")
        let mark = setup.registry.mark()
        let target = "\(setup.registry.host)/acme/bad:1"
        let result = try Tools.kiln(["build", "-f", setup.dockerfile, "-t", target, setup.context])
        #expect(result.status == 2)
        let line = Tools.oneLine(result)
        #expect(line.contains(example.message), "got: \(line)")
        #expect(
            !setup.registry.requests(since: mark).contains {
                $0.contains("PUT") || $0.contains("PATCH") || $0.contains("POST")
            })
    }
}
