import Foundation
import Testing

/// Debian's nginx on loopback with TLS in front of a registry, capping request bodies the way
/// GHCR's front does (`client_max_body_size`). Its access log records each request's method,
/// status and declared body size.
final class NginxFront {
    let scratch: Scratch
    let port: Int
    let process: Process
    let accessLog: String

    var host: String { "127.0.0.1:\(port)" }

    /// - Parameter failPatchPercent: refuse this share of `PATCH` requests with 503, chosen at
    ///   random per request, as an overloaded front would.
    init(upstream: String, certificate: TestSecrets.Certificate, maxBody: String = "4m", failPatchPercent: Int = 0)
        throws
    {
        try Tools.require("nginx", package: "nginx")
        scratch = try Scratch("nginx")
        port = try RegistryServer.freePort()
        accessLog = scratch.path + "/access.log"
        let temp = try scratch.sub("temp")
        let config = """
            daemon off;
            master_process off;
            pid \(scratch.path)/nginx.pid;
            error_log \(scratch.path)/error.log;
            events { worker_connections 64; }
            http {
                log_format sizes '$request_method $status $content_length $request_length';
                access_log \(accessLog) sizes;
                client_body_temp_path \(temp)/body;
                proxy_temp_path \(temp)/proxy;
                fastcgi_temp_path \(temp)/fastcgi;
                uwsgi_temp_path \(temp)/uwsgi;
                scgi_temp_path \(temp)/scgi;
                client_max_body_size \(maxBody);
                \(failPatchPercent > 0 ? "split_clients \"${request_id}\" $kiln_unlucky { \(failPatchPercent)% 1; * 0; }" : "map $request_id $kiln_unlucky { default 0; }")
                server {
                    listen 127.0.0.1:\(port) ssl;
                    ssl_certificate \(certificate.certificate);
                    ssl_certificate_key \(certificate.key);
                    location / {
                        set $refuse "${request_method}${kiln_unlucky}";
                        if ($refuse = "PATCH1") { return 503; }
                        proxy_pass http://\(upstream);
                        proxy_http_version 1.1;
                        proxy_set_header Host $http_host;
                        proxy_request_buffering off;
                        proxy_buffering off;
                    }
                }
            }
            """
        try config.write(toFile: scratch.path + "/nginx.conf", atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["nginx", "-c", scratch.path + "/nginx.conf", "-e", scratch.path + "/error.log"]
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        try RegistryServer.waitForPort(port, process: process, logPath: scratch.path + "/error.log")
    }

    deinit { Tools.stop(process) }

    /// Each logged request: method, status and declared body size (0 when none).
    var requests: [(method: String, status: Int, bodySize: Int)] {
        guard let data = FileManager.default.contents(atPath: accessLog) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count >= 3, let status = Int(fields[1]) else { return nil }
            return (String(fields[0]), status, Int(fields[2]) ?? 0)
        }
    }
}

@Suite("A GHCR-like front that caps request bodies at 4 MiB", .serialized)
struct CappedFrontTests {
    @Test("a 64 MiB layer goes up through the front in chunks no larger than 4 MiB")
    func chunksUnderTheCap() throws {
        let scratch = try Scratch("front")
        let certificate = try TestSecrets.selfSignedCertificate(in: scratch.path)
        let registry = try RegistryServer(.init(relativeURLs: true))
        let front = try NginxFront(upstream: registry.host, certificate: certificate)
        let tree = try scratch.sub("tree")
        try Tools.shell("head -c 67108864 /dev/urandom > '\(tree)/model.bin'")
        let layout = scratch.path + "/layout"
        let created = try Tools.kiln([
            "image", "create", "--from", tree, "--level", "1", "--platform", "linux/amd64,linux/arm64",
            "-o", "oci:\(layout):v1", "--cache-dir", scratch.path + "/store",
        ])
        try #require(created.status == 0, "\(created.stderr)")

        let push = try Tools.kiln([
            "push", "\(layout):v1", "\(front.host)/acme/model:v1", "--ca-file", certificate.certificate, "--json",
        ])
        #expect(push.status == 0, "\(push.stderr)")
        let requests = front.requests
        let cap = 4 << 20
        #expect(
            requests.allSatisfy { $0.bodySize <= cap }, "bodies over 4 MiB: \(requests.filter { $0.bodySize > cap })")
        #expect(
            requests.allSatisfy { $0.status < 400 || $0.method == "HEAD" }, "\(requests.filter { $0.status >= 400 })")
        #expect(requests.filter { $0.method == "PATCH" }.count >= 16, "the 64 MiB layer went up in chunks")

        let resolved = try Tools.kiln([
            "resolve", "\(front.host)/acme/model:v1", "--ca-file", certificate.certificate, "--json",
        ])
        let digest = try RegistryPushTests.json(resolved)["digest"] as? String
        #expect(digest != nil && digest == (try? RegistryPushTests.json(push))?["digest"] as? String)
    }

    @Test("with one request per blob (--chunk-size 0) the front's 413 teaches kiln to chunk")
    func learnsFromTooLarge() throws {
        let scratch = try Scratch("front413")
        let certificate = try TestSecrets.selfSignedCertificate(in: scratch.path)
        let registry = try RegistryServer(.init(relativeURLs: true))
        let front = try NginxFront(upstream: registry.host, certificate: certificate, maxBody: "2m")
        let tree = try scratch.sub("tree")
        try Tools.shell("head -c 12000000 /dev/urandom > '\(tree)/blob.bin'")
        let layout = scratch.path + "/layout"
        try #require(
            try Tools.kiln([
                "image", "create", "--from", tree, "--level", "1", "-o", "oci:\(layout):v1",
                "--cache-dir", scratch.path + "/store",
            ]).status == 0)
        let push = try Tools.kiln([
            "push", "\(layout):v1", "\(front.host)/acme/blob:v1", "--ca-file", certificate.certificate,
            "--chunk-size", "0", "--json",
        ])
        #expect(push.status == 0, "\(push.stderr)")
        let requests = front.requests
        #expect(requests.contains { $0.status == 413 }, "the first, whole-blob request was refused")
        #expect(requests.filter { $0.method == "PATCH" && $0.status == 202 }.allSatisfy { $0.bodySize <= 2 << 20 })
        #expect(requests.filter { $0.method == "PATCH" && $0.status == 202 }.count >= 6)
    }

    @Test("uploads survive a front that refuses PATCHes mid-way, and the stored blob has the right digest")
    func survivesRefusedChunks() throws {
        try Tools.require("skopeo", package: "skopeo")
        let scratch = try Scratch("flaky")
        let certificate = try TestSecrets.selfSignedCertificate(in: scratch.path)
        let registry = try RegistryServer(.init(relativeURLs: true))
        let front = try NginxFront(upstream: registry.host, certificate: certificate, failPatchPercent: 30)
        let tree = try scratch.sub("tree")
        try Tools.shell("head -c 67108864 /dev/urandom > '\(tree)/data.bin'")
        let layout = scratch.path + "/layout"
        let created = try Tools.kiln([
            "image", "create", "--from", tree, "--level", "0", "-o", "oci:\(layout):v1",
            "--cache-dir", scratch.path + "/store", "--json",
        ])
        let layer = try #require((try RegistryPushTests.json(created))["layer"] as? String)

        let push = try Tools.kiln([
            "push", "\(layout):v1", "\(front.host)/acme/flaky:v1", "--ca-file", certificate.certificate,
        ])
        #expect(push.status == 0, "\(push.stderr)")
        #expect(front.requests.contains { $0.method == "PATCH" && $0.status == 503 }, "the front refused some chunks")

        // Read the blob back from the registry itself and hash it.
        let copy = try Tools.run([
            "skopeo", "copy", "--src-tls-verify=false", "docker://\(registry.host)/acme/flaky:v1",
            "dir:\(scratch.path)/back",
        ])
        try #require(copy.status == 0, "\(copy.stderr)")
        let back = try Tools.shell("sha256sum '\(scratch.path)/back/\(layer.dropFirst(7))' | cut -d' ' -f1").stdout
        #expect("sha256:" + back.trimmingCharacters(in: .whitespacesAndNewlines) == layer)
    }
}
