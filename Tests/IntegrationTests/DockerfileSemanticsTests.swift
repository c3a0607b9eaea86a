import Foundation
import Testing

/// Dockerfiles built as BuildKit builds them (issue 34): what `kiln build` gives for the points
/// where kiln used to differ, read back with skopeo.
@Suite("Dockerfiles built as BuildKit builds them")
struct DockerfileSemanticsTests {
    /// Builds `dockerfile` (with `files` in the context) to an OCI layout; the result and the
    /// image's config (skopeo's reading) when it built.
    static func build(_ label: String, _ dockerfile: String, files: [String: String] = [:]) throws -> (
        Tools.Result, [String: Any]
    ) {
        let scratch = try Scratch(label)
        let context = try scratch.sub("context")
        try dockerfile.write(toFile: context + "/Dockerfile", atomically: true, encoding: .utf8)
        for (name, text) in files {
            try text.write(toFile: context + "/" + name, atomically: true, encoding: .utf8)
        }
        let layout = scratch.path + "/out"
        let result = try Tools.kiln([
            "build", "--cache-dir", scratch.path + "/cache", "-o", "oci:\(layout):latest", context,
        ])
        guard result.status == 0 else { return (result, [:]) }
        try Tools.require("skopeo", package: "skopeo")
        let inspected = try Tools.run(["skopeo", "inspect", "--config", "oci:\(layout):latest"])
        try #require(inspected.status == 0, "\(inspected.stderr)")
        let object = try JSONSerialization.jsonObject(with: inspected.stdoutBytes) as? [String: Any]
        return (result, object?["config"] as? [String: Any] ?? [:])
    }

    @Test("EXPOSE splits what a variable gives into ports; FROM scratch works in /")
    func exposeAndWorkdir() throws {
        let (result, config) = try Self.build(
            "semantics-expose", "FROM scratch\nENV PORTS=\"80 443/udp\"\nEXPOSE $PORTS 8080\n")
        #expect(result.status == 0, "\(result.stderr)")
        let ports = (config["ExposedPorts"] as? [String: Any])?.keys.sorted()
        #expect(ports == ["443/udp", "80/tcp", "8080/tcp"], "\(config)")
        #expect(config["WorkingDir"] as? String == "/")
    }

    @Test("a CMD whose JSON array holds an array is refused at its line, not run as a shell command")
    func nestedJSON() throws {
        let (result, _) = try Self.build(
            "semantics-json", "FROM scratch\nCMD [ \"echo\", [ \"nested json\" ] ]\n")
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("Dockerfile:2") && result.stderr.contains("only strings"), "\(result.stderr)")
    }

    @Test("a malformed .dockerignore pattern fails the build, naming the file, its line and the pattern")
    func malformedIgnore() throws {
        let (result, _) = try Self.build(
            "semantics-ignore", "FROM scratch\nCOPY . /app/\n",
            files: [".dockerignore": "# comment\nnode_modules\nsrc/[a-\n", "a.txt": "a\n"])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains(".dockerignore:3") && result.stderr.contains("src/[a-"), "\(result.stderr)")
    }

    @Test(
        "a RUN layer holds only what the step wrote: no /etc/hosts, /dev, /proc, /sys or /run stubs, plain or with a secret",
        arguments: ["amd64", "arm64"])
    func noMountStubs(arch: String) throws {
        if arch == "arm64" { try ARM64Emulation.register() }
        let setup = try RunStepTests.Setup("semantics-stubs-\(arch)")
        let secret = setup.scratch.path + "/token"
        try "s3cret\n".write(toFile: secret, atomically: true, encoding: .utf8)
        for (name, run) in [
            ("plain", "RUN mkdir -p /out && echo plain > /out/a"),
            ("secret", "RUN --mount=type=secret,id=tok cat /run/secrets/tok > /out-secret"),
        ] {
            try setup.write("Dockerfile", "FROM \(setup.base.reference)\n\(run)\n")
            let layout = setup.scratch.path + "/\(name)"
            let built = try Tools.kiln([
                "build", "--platform", "linux/\(arch)", "--secret", "id=tok,src=\(secret)", "--cache-dir", setup.cache,
                "-o", "oci:\(layout):latest", setup.context,
            ])
            try #require(built.status == 0, "\(built.stderr)")
            let manifest = try Tools.shell(
                "cat '\(layout)'/blobs/sha256/$(python3 -c \"import json;print(json.load(open('\(layout)/index.json'))['manifests'][0]['digest'][7:])\")"
            )
            let object = try JSONSerialization.jsonObject(with: Data(manifest.stdout.utf8)) as? [String: Any]
            let layers = object?["layers"] as? [[String: Any]] ?? []
            let last = try #require((layers.last?["digest"] as? String)?.dropFirst(7))
            let listed = try Tools.run(["tar", "-tzf", "\(layout)/blobs/sha256/\(last)"])
            let members = Set(
                listed.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "./")) }
            )
            for stub in ["etc/hosts", "etc/hostname", "etc/resolv.conf", "dev", "proc", "sys", "run", "run/secrets"] {
                #expect(!members.contains(stub), "\(name) \(arch): \(stub) is the runtime's: \(members.sorted())")
            }
            #expect(members.contains(name == "plain" ? "out/a" : "out-secret"), "\(members.sorted())")
        }
    }

    @Test("a RUN with a secret builds when the runtime folder's path holds capitals")
    func capitalRuntimeFolder() throws {
        let setup = try RunStepTests.Setup("semantics-capitals")
        let runtime = try setup.scratch.sub("Runtime-Folder")
        let secret = setup.scratch.path + "/token"
        try "s3cret\n".write(toFile: secret, atomically: true, encoding: .utf8)
        try setup.write(
            "Dockerfile", "FROM \(setup.base.reference)\nRUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /n\n"
        )
        let built = try Tools.kiln(
            [
                "build", "--platform", "linux/amd64", "--secret", "id=tok,src=\(secret)", "--cache-dir", setup.cache,
                "-o", "oci:\(setup.scratch.path)/out:latest", setup.context,
            ], environment: ["KILN_RUNTIME_DIR": runtime])
        #expect(built.status == 0, "\(built.stderr)")
    }

    @Test(
        "a base image that does not exist is bad input (exit 2) naming the image, the registry and the ARG that chose it"
    )
    func missingBase() throws {
        let registry = try RegistryServer()
        let scratch = try Scratch("semantics-missing-base")
        let context = try scratch.sub("context")
        try "ARG BASE=\(registry.host)/library/python:3.12-slim\nFROM ${BASE}\nRUN true\n".write(
            toFile: context + "/Dockerfile", atomically: true, encoding: .utf8)
        let result = try Tools.kiln([
            "build", "--cache-dir", scratch.path + "/cache", "-o", "oci:\(scratch.path)/out:latest", context,
        ])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("does not exist") && result.stderr.contains("library/python:3.12-slim"))
        #expect(result.stderr.contains("Dockerfile:2") && result.stderr.contains("ARG at line 1"), "\(result.stderr)")
    }

    @Test(
        "heredoc RUNs run as BuildKit runs them (the body as the script, or read by the shell) and RUN --network=none has no network",
        arguments: ["amd64", "arm64"])
    func heredocAndNetwork(arch: String) throws {
        if arch == "arm64" { try ARM64Emulation.register() }
        let setup = try RunStepTests.Setup("semantics-heredoc-\(arch)")
        try setup.write(
            "Dockerfile",
            """
            FROM \(setup.base.reference)
            ARG WHO=kiln
            RUN <<EOF
            set -e
            mkdir -p /out
            echo "one $WHO" > /out/one
            EOF
            RUN cat <<'EOT' > /out/two && cat <<-EOT2 > /out/three
            literal $WHO
            EOT
            \tstripped $WHO
            EOT2
            RUN --network=none cat /proc/net/dev | wc -l > /out/net

            """)
        _ = try setup.build(platform: "linux/\(arch)")
        let files = try setup.inImage("cat /out/one /out/two /out/three /out/net", arch: arch)
        #expect(files == "one kiln\nliteral $WHO\nstripped kiln\n3\n", "\(files)")
    }
}
