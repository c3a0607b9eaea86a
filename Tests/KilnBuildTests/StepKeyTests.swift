import Foundation
import KilnBuild
import KilnCore
import KilnDockerfile
import KilnLayers
import KilnOCI
import KilnStore
import Testing

/// A base source that must never be asked (the Dockerfiles here start from scratch).
struct NoBases: BaseImageSource {
    struct Unexpected: Error {}
    func image(_ reference: ImageReference, platform: Platform) async throws -> BaseImage { throw Unexpected() }
}

final class StepFixture {
    let root: String
    let store: ContentStore

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-steps-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root + "/context/app", withIntermediateDirectories: true)
        store = try ContentStore(root: root + "/store")
        try write("app/main.py", "print('hi')\n")
        try write("app/util.py", "X = 1\n")
        try write("requirements.txt", "fastapi\n")
        try write("notes.txt", "not copied\n")
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func write(_ path: String, _ text: String) throws {
        try text.write(toFile: root + "/context/" + path, atomically: false, encoding: .utf8)
    }

    static let dockerfile = """
        FROM scratch
        ARG VERSION=1
        ENV TZ=UTC
        COPY requirements.txt /tool/
        RUN pip install -r /tool/requirements.txt
        COPY app/ /tool/app/
        RUN echo $VERSION > /tool/version
        CMD ["python", "/tool/app/main.py"]
        """

    /// The key after each instruction (ARG, ENV, COPY, RUN, COPY, RUN, CMD).
    func keys(_ text: String = StepFixture.dockerfile, args: [String: String] = [:]) async throws -> [Digest] {
        let dockerfile = try Dockerfile(parsing: text, file: "Dockerfile")
        let context = try BuildContext(root: root + "/context", dockerfile: root + "/context/Dockerfile")
        var options = BuildOptions(platforms: [.linuxAMD64], layerOptions: LayerOptions())
        options.buildArgs = args
        let builder = Builder(
            dockerfile: dockerfile, context: context, store: store, bases: NoBases(), options: options)
        let steps = try await builder.stepKeys(hasher: ContextHasher(root: context.root, store: store))
        return try #require(steps[.linuxAMD64]?[0]).map(\.key)
    }
}

struct StepKeyTests {
    @Test("the same inputs give the same keys, one per instruction")
    func stable() async throws {
        let fixture = try StepFixture()
        let first = try await fixture.keys()
        #expect(first.count == 7 && Set(first).count == 7)
        #expect(try await fixture.keys() == first)
    }

    @Test("a file read by a later COPY changes that step and every one after it, not those before")
    func laterCopy() async throws {
        let fixture = try StepFixture()
        let before = try await fixture.keys()
        try fixture.write("app/util.py", "X = 2\n")
        let after = try await fixture.keys()
        #expect(
            Array(after[..<4]) == Array(before[..<4]), "ARG, ENV, COPY requirements and the first RUN keep their keys")
        #expect(zip(after[4...], before[4...]).allSatisfy { $0 != $1 })
    }

    @Test("a file no instruction reads changes nothing")
    func unread() async throws {
        let fixture = try StepFixture()
        let before = try await fixture.keys()
        try fixture.write("notes.txt", "still not copied\n")
        #expect(try await fixture.keys() == before)
    }

    @Test("a build arg changes the steps from its ARG on; an edited RUN changes itself and what follows")
    func argsAndRun() async throws {
        let fixture = try StepFixture()
        let before = try await fixture.keys()
        let withArg = try await fixture.keys(args: ["VERSION": "2"])
        #expect(withArg[0] != before[0])
        let edited = try await fixture.keys(
            StepFixture.dockerfile.replacingOccurrences(of: "echo $VERSION", with: "echo v$VERSION"))
        #expect(Array(edited[..<5]) == Array(before[..<5]))
        #expect(edited[5] != before[5] && edited[6] != before[6])
    }
}

extension StepKeyTests {
    @Test("a RUN's key covers the context files its bind mounts show it, and only those")
    func bindMount() async throws {
        let fixture = try StepFixture()
        let text = """
            FROM scratch
            RUN --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt cat /tmp/requirements.txt
            RUN --mount=type=secret,id=token true
            """
        let before = try await fixture.keys(text)
        try fixture.write("notes.txt", "not mounted\n")
        #expect(try await fixture.keys(text) == before)
        try fixture.write("requirements.txt", "fastapi\nhttpx\n")
        let after = try await fixture.keys(text)
        #expect(after[0] != before[0] && after[1] != before[1], "the mounted file changed: the RUN and what follows")
    }
}

struct EmulationTests {
    @Test("the host's own architecture needs no emulation")
    func native() throws {
        try Emulation.check(.linuxAMD64, host: .linuxAMD64, directory: "/nonexistent", location: nil)
    }

    @Test("a foreign platform needs an enabled qemu entry; without one the error names the platform and both fixes")
    func foreign() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "kiln-binfmt-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let location = SourceLocation(file: "Dockerfile", line: 3)
        #expect {
            try Emulation.check(.linuxARM64, host: .linuxAMD64, directory: directory, location: location)
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("Dockerfile:3: RUN for linux/arm64/v8") && text.contains("qemu-aarch64")
                && text.contains("qemu-user-static") && text.contains("native runner")
        }
        try "disabled\ninterpreter /usr/bin/qemu-aarch64-static\n".write(
            toFile: directory + "/qemu-aarch64", atomically: true, encoding: .utf8)
        #expect(throws: BuildError.self) {
            try Emulation.check(.linuxARM64, host: .linuxAMD64, directory: directory, location: nil)
        }
        try "enabled\ninterpreter /usr/bin/qemu-aarch64-static\n".write(
            toFile: directory + "/qemu-aarch64", atomically: true, encoding: .utf8)
        try Emulation.check(.linuxARM64, host: .linuxAMD64, directory: directory, location: nil)
    }
}

struct SecretTests {
    @Test(
        "--secret takes Docker's forms",
        arguments: [
            ("id=token", "token", BuildahExecutor.Secret.Source.environment("token")),
            ("id=token,env=PIP_TOKEN", "token", .environment("PIP_TOKEN")),
            ("id=npmrc,src=/home/me/.npmrc", "npmrc", .file("/home/me/.npmrc")),
            ("type=secret,id=key,source=key.pem", "key", .file("key.pem")),
        ])
    func parses(_ text: String, _ id: String, _ source: BuildahExecutor.Secret.Source) throws {
        let secret = try #require(BuildahExecutor.Secret(parsing: text))
        #expect(secret.id == id && secret.source == source)
    }

    @Test("malformed secrets are refused", arguments: ["token", "env=X", "id=", "id=a,colour=blue"])
    func refuses(_ text: String) {
        #expect(BuildahExecutor.Secret(parsing: text) == nil)
    }
}

struct AdviceTests {
    static let processor = """
            FROM python:3.11-slim
            RUN apt-get update && apt-get install -y --no-install-recommends curl gcc && rm -rf /var/lib/apt/lists/*
            WORKDIR /tool
            COPY requirements.txt /tool/
            RUN pip install -r /tool/requirements.txt
            COPY code/libs/runtime_common /tool/libs/runtime_common
            COPY tools/llm/litellm/1/protocol/*.py /tool/protocol/
            RUN pip install --no-cache-dir "fastapi>=0.114" "litellm>=1.43.0"
            COPY app/ /srv/app/
            RUN pip install -e /srv/app
            CMD ["uvicorn", "protocol.ws:app"]
        """

    @Test(
        "code copied before an install that does not mention it is flagged, with how to reorder; the right orders are not"
    )
    func flags() throws {
        let advice = Advice.advise(try Dockerfile(parsing: Self.processor, file: "Dockerfile"))
        #expect(advice.map(\.location.line) == [6, 7], "\(advice)")
        #expect(advice.first?.description.contains("Dockerfile:6:") == true)
        #expect(advice.first?.message.contains("comes before line 8") == true)
        #expect(advice.first?.message.contains("move the COPY after it") == true)
    }
}
