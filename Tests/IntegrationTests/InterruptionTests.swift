import Foundation
import Testing

/// A run stopped from outside — SIGTERM or SIGINT (a cancelled CI job), or `kill -9` — leaves no
/// secret on disk, no scratch, no buildah process; what a `kill -9` cannot clean, the next run or
/// `kiln store verify` does.
@Suite("Interrupted and killed runs leave nothing behind", .serialized)
struct InterruptionTests {
    static let dockerfile = """
        FROM BASE
        RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null && echo step-started && sleep 30
        CMD ["sh"]
        """

    /// A RUN with a secret, started in the background and stopped by `signal` once it runs.
    static func interrupt(_ signal: Int32, label: String) throws -> (
        setup: RunStepTests.Setup, runtime: String, status: Int32, secret: String, stderr: String
    ) {
        let setup = try RunStepTests.Setup(label, dockerfile: dockerfile)
        let runtime = try setup.scratch.sub("runtime")
        let secret = "kiln-interrupt-" + UUID().uuidString.prefix(12).lowercased()
        let kiln = try BackgroundKiln(
            [
                "build", "--platform", "linux/amd64", "-t", setup.target, "--cache-dir", setup.cache, "--secret",
                "id=token,env=KILN_TEST_TOKEN", setup.context,
            ],
            environment: ["KILN_TEST_TOKEN": secret, "KILN_RUNTIME_DIR": runtime])
        #expect(kiln.waitFor("step-started"), "the RUN did not start: \(kiln.stderr)")
        // buildah's copy of the secret exists while the step runs, outside the store.
        let during = try SecretScan.files(containing: secret, under: [runtime, setup.cache])
        #expect(!during.isEmpty && during.allSatisfy { $0.hasPrefix(runtime) }, "\(during)")
        kiln.signal(signal)
        let status = kiln.wait(seconds: 30)
        return (setup, runtime, status, secret, kiln.stderr)
    }

    static func sleepers() throws -> String {
        try Tools.shell("ps -eo args | grep -c '^sleep 30$' || true").stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
    }

    @Test(
        "SIGTERM and SIGINT during a RUN with a secret: buildah stopped, secret and scratch removed, exit 128+signal",
        arguments: [SIGTERM, SIGINT])
    func terminated(signal: Int32) throws {
        let run = try Self.interrupt(signal, label: "interrupt-\(signal)")
        #expect(run.status == 128 + signal, "\(run.stderr)")
        #expect(
            try SecretScan.files(
                containing: run.secret, under: [run.runtime, run.setup.cache, "/tmp/kiln-\(getuid())"]
            ).isEmpty)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: run.runtime).isEmpty,
            "scratch left in the runtime folder")
        let storeScratch = (try? FileManager.default.contentsOfDirectory(atPath: run.setup.cache + "/tmp")) ?? []
        #expect(storeScratch.isEmpty, "\(storeScratch)")
        #expect(try Self.sleepers() == "0", "the RUN's process survived kiln")
        #expect(!run.stderr.contains(run.secret))
    }

    @Test(
        "kill -9 during a RUN with a secret: nothing reaches the store; store verify and the next run sweep the leftovers"
    )
    func killed() throws {
        let run = try Self.interrupt(SIGKILL, label: "interrupt-kill")
        #expect(run.status == 128 + SIGKILL)
        usleep(300_000)
        _ = try Tools.shell("pkill -KILL -f '^sleep 30$' || true")
        #expect(
            try SecretScan.files(containing: run.secret, under: [run.setup.cache]).isEmpty,
            "the secret reached the store")
        let left = try SecretScan.files(containing: run.secret, under: [run.runtime])
        #expect(!left.isEmpty, "kill -9 cannot clean up; the leftovers are in the private runtime folder")
        let verified = try Tools.kiln(
            ["store", "verify", "--cache-dir", run.setup.cache, "--json"],
            environment: ["KILN_RUNTIME_DIR": run.runtime])
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.contains("\"removedScratch\":"), "\(verified.stdout)")
        #expect(try SecretScan.files(containing: run.secret, under: [run.runtime, run.setup.cache]).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: run.runtime).isEmpty)
    }

    @Test(
        "SIGINT to a lane during a RUN with a secret: exit within 2 s, no buildah process, no scratch, no secret file")
    func laneInterrupted() throws {
        let fixture = try LaneFixture("interrupt-lane", example: false)
        try fixture.write("kiln.yaml", "processors: [tools/**/registry.yaml]\nowner: acme\nplatforms: [linux/amd64]\n")
        try fixture.write(
            "tools/slow/step/1/registry.yaml", "build:\n  context: .\n  dockerfile: Dockerfile\nref: slow/step@1\n")
        try fixture.write(
            "tools/slow/step/1/Dockerfile",
            "ARG BASE_IMAGE\n" + Self.dockerfile.replacingOccurrences(of: "FROM BASE", with: "FROM ${BASE_IMAGE}"))
        let runtime = try fixture.scratch.sub("runtime")
        let secret = "kiln-lane-interrupt-" + UUID().uuidString.prefix(12).lowercased()
        let kiln = try BackgroundKiln(
            ["build", "--push", "--pin", "--secret", "id=token,env=KILN_TEST_TOKEN"] + fixture.common + [
                "--cache-dir", fixture.cache,
            ],
            environment: ["KILN_TEST_TOKEN": secret, "KILN_RUNTIME_DIR": runtime])
        #expect(kiln.waitFor("step-started"), "the RUN did not start: \(kiln.stderr.suffix(2000))")
        let signalled = Date()
        kiln.signal(SIGINT)
        let status = kiln.wait(seconds: 30)
        let took = Date().timeIntervalSince(signalled)
        #expect(status == 128 + SIGINT, "\(kiln.stderr.suffix(1000))")
        #expect(took < 2, "took \(took) s to stop")
        #expect(try Self.sleepers() == "0", "the RUN's process survived kiln")
        #expect(
            try Tools.shell("pgrep -f '[b]uildah.*kiln-step' | wc -l").stdout.trimmingCharacters(
                in: .whitespacesAndNewlines) == "0")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: runtime).isEmpty, "scratch left in the runtime folder")
        #expect(try SecretScan.files(containing: secret, under: [runtime, fixture.cache, fixture.repo]).isEmpty)
        let pins = try String(contentsOfFile: fixture.repo + "/tools/slow/step/1/registry.yaml", encoding: .utf8)
        #expect(!pins.contains("@sha256:"), "an interrupted processor was pinned")
    }
}
