import Foundation
import Testing

/// kiln against a real docker-registry behind the fault-injecting proxy: what a flaky registry
/// does to a push (error statuses, resets, delays, a lying digest header) must end in either a
/// complete image or a clear failure that tags and pins nothing.
@Suite("A flaky registry (fault-injecting proxy)", .serialized)
struct RegistryFaultTests {
    /// A two-platform image from scratch: two small files and a larger one, so there are several
    /// blobs and a chunked upload.
    static func context(in scratch: Scratch) throws -> String {
        let context = try scratch.sub("context")
        try "FROM scratch\nCOPY a.txt /a.txt\nCOPY big.bin /big.bin\nCOPY b.txt /b.txt\n"
            .write(toFile: context + "/Dockerfile", atomically: true, encoding: .utf8)
        try "a\n".write(toFile: context + "/a.txt", atomically: true, encoding: .utf8)
        try "b\n".write(toFile: context + "/b.txt", atomically: true, encoding: .utf8)
        let big = try Tools.shell("head -c 9M /dev/urandom > '\(context)/big.bin'")
        try #require(big.status == 0)
        return context
    }

    static func build(_ context: String, to reference: String, cache: String) throws -> Tools.Result {
        try Tools.kiln([
            "build", "-f", context + "/Dockerfile", "--platform", "linux/amd64,linux/arm64", "-t", reference,
            "--cache-dir", cache, "--json", context,
        ])
    }

    @Test("a manifest PUT refused with DIGEST_INVALID or MANIFEST_BLOB_UNKNOWN is retried after re-checking its blobs")
    func manifestRefusalsRetried() throws {
        let scratch = try Scratch("fault-manifest")
        let registry = try RegistryServer()
        let proxy = try FaultProxy(
            upstream: registry,
            rules: [
                .init(
                    "status", method: "PUT", path: "/manifests/sha256:", status: 400, code: "DIGEST_INVALID", times: 1),
                .init(
                    "status", method: "PUT", path: "/manifests/v1", status: 400, code: "MANIFEST_BLOB_UNKNOWN", times: 1
                ),
            ])
        let context = try Self.context(in: scratch)
        let built = try Self.build(context, to: "\(proxy.host)/acme/app:v1", cache: try scratch.sub("cache"))
        #expect(built.status == 0, "\(built.stderr)")
        let entries = proxy.entries()
        let faults = entries.indices.filter { entries[$0].fault != "-" }
        #expect(faults.count == 2, "\(proxy.faults())")
        if let first = faults.first {
            // After the refusal: HEADs of the manifest's blobs, then the same PUT again.
            let after = entries[(first + 1)...]
            let rechecked = after.prefix { !($0.method == "PUT" && $0.path.contains("/manifests/")) }
            #expect(
                rechecked.contains { $0.method == "HEAD" && $0.path.contains("/blobs/") },
                "\(after.prefix(6).map(\.path))")
            #expect(after.contains { $0.method == "PUT" && $0.path == entries[first].path && $0.status == "201" })
        }
        let inspected = try Tools.run([
            "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://\(registry.host)/acme/app:v1",
        ])
        #expect(inspected.status == 0 && inspected.stdout.contains("linux"), "\(inspected.stderr)")
    }

    @Test(
        "GET /v2/ answered 503 is retried; a registry that keeps answering 503 is reported with its status, not as TLS")
    func probeRetried() throws {
        let scratch = try Scratch("fault-probe")
        let registry = try RegistryServer()
        let context = try Self.context(in: scratch)
        let cache = try scratch.sub("cache")
        let pushed = try Self.build(context, to: "\(registry.host)/acme/app:v1", cache: cache)
        try #require(pushed.status == 0, "\(pushed.stderr)")

        let proxy = try FaultProxy(
            upstream: registry, rules: [.init("status", method: "GET", path: "^/v2/$", status: 503, times: 2)])
        let resolved = try Tools.kiln(["resolve", "\(proxy.host)/acme/app:v1"])
        #expect(resolved.status == 0, "\(resolved.stderr)")
        #expect(resolved.stdout.contains("@sha256:"))
        #expect(proxy.faults().count == 2)

        try proxy.set([.init("status", method: "GET", path: "^/v2/$", status: 503)])
        let down = try Tools.kiln(["resolve", "\(proxy.host)/acme/app:v1"])
        #expect(down.status == 5)
        let line = Tools.oneLine(down)
        #expect(line.contains("503") && !line.contains("TLS"), "\(line)")
    }

    @Test("a registry that reports a wrong Docker-Content-Digest fails the push as an integrity error")
    func wrongDigest() throws {
        let scratch = try Scratch("fault-digest")
        let registry = try RegistryServer()
        let proxy = try FaultProxy(
            upstream: registry, rules: [.init("wrong-digest", method: "PUT", path: "/manifests/")])
        let context = try Self.context(in: scratch)
        let built = try Self.build(context, to: "\(proxy.host)/acme/app:v1", cache: try scratch.sub("cache"))
        #expect(built.status == 4, "\(built.stderr)")
        #expect(built.stderr.contains("expected sha256:") && built.stderr.contains("integrity"), "\(built.stderr)")
    }

    @Test(
        "the lane through 5xx, 429 with Retry-After, resets before and mid-body and delays: every processor built, pinned and intact"
    )
    func laneThroughFaults() throws {
        let fixture = try LaneFixture("fault-lane")
        let proxy = try FaultProxy(
            upstream: fixture.registry,
            rules: [
                // Each kind spread out (every N-th request) and capped, so faults are many but no
                // single request meets more of them in a row than a retry budget allows.
                .init("status", method: "HEAD", path: "/blobs/", status: 503, times: 5, every: 5),
                .init("status", method: "HEAD", path: "/manifests/", status: 429, retryAfter: 1, times: 3, every: 2),
                .init("reset-before", method: "POST", path: "/blobs/uploads/", times: 4, every: 4),
                .init("reset-mid", method: "PUT", path: "digest=", times: 4, every: 3),
                .init("reset-mid", method: "GET", path: "/blobs/", times: 2, every: 2),
                .init("status", method: "PUT", path: "/manifests/", status: 502, times: 3, every: 4),
                .init("delay", method: "GET", seconds: 0.3, times: 4, every: 2),
                .init("reset-before", method: "GET", path: "^/v2/$", times: 1),
            ])
        fixture.registryHost = proxy.host
        // The base is pulled through the proxy too.
        fixture.baseReference = fixture.base.reference.replacingOccurrences(of: fixture.registry.host, with: proxy.host)
        let reports = try fixture.lane()
        let faults = proxy.faults()
        #expect(faults.count >= 10, "only \(faults.count) faults were injected")
        for kind in ["status", "reset-before", "reset-mid", "delay"] {
            #expect(faults.contains { $0.fault == kind }, "no \(kind) fault happened")
        }
        #expect(
            LaneFixture.statuses(reports) == [
                "llm/litellm@1": "built", "text/echo@1": "built", "text/summarize@3": "built",
                "legacy/old@1": "disabled",
            ])
        // Every pin names an image the registry really has, whole (skopeo copies every blob).
        let pinned = try fixture.pins()
        for (path, bytes) in pinned where !path.contains("legacy") {
            let text = String(decoding: bytes, as: UTF8.self)
            for line in text.split(separator: "\n") where line.contains("@sha256:") {
                let token = line.split(separator: " ").first { $0.contains("@sha256:") }!
                let reference = token.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                let direct = reference.replacingOccurrences(of: proxy.host, with: fixture.registry.host)
                let copied = try Tools.run([
                    "skopeo", "copy", "--all", "--src-tls-verify=false", "docker://\(direct)",
                    "oci:\(fixture.scratch.path)/copy-\(UUID().uuidString.prefix(8)):x",
                ])
                #expect(copied.status == 0, "\(path): \(reference): \(copied.stderr)")
            }
        }
        try proxy.set([])
        let again = try fixture.lane()
        #expect(
            LaneFixture.statuses(again).values.allSatisfy { $0 == "hit" || $0 == "disabled" },
            "\(LaneFixture.statuses(again))")
        #expect(try fixture.pins() == pinned)
    }
}
