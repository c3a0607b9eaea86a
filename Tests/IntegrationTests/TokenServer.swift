import Foundation
import Testing

/// The test token server (`Tests/Fixtures/token-server.py`) on a free loopback port, with a
/// certificate the registry trusts, stopped when the value goes away.
final class TokenServer {
    let port: Int
    let certificate: TestSecrets.Certificate
    let logPath: String
    let process: Process
    static let issuer = "kiln-test-issuer"
    static let service = "kiln-test-registry"

    /// - Parameter failFirst: how many requests to answer 503 before serving tokens.
    init(scratch: Scratch, user: String, password: String, failFirst: Int = 0) throws {
        try Tools.require("python3", package: "python3")
        certificate = try TestSecrets.selfSignedCertificate(in: scratch.path, name: "token")
        port = try RegistryServer.freePort()
        logPath = scratch.path + "/token.log"
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", Tools.packageRoot + "/Tests/Fixtures/token-server.py", String(port), certificate.certificate,
            certificate.key, Self.issuer, user, password, logPath, String(failFirst),
        ]
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        try RegistryServer.waitForPort(port, process: process, logPath: logPath)
    }

    deinit { Tools.stop(process) }

    /// The `auth:` section of a registry config that trusts this server.
    var registryAuthYAML: String {
        """
          token:
            realm: http://127.0.0.1:\(port)/token
            service: \(Self.service)
            issuer: \(Self.issuer)
            rootcertbundle: \(certificate.certificate)

        """
    }

    /// Every token request so far: (status, scopes).
    var requests: [(status: Int, scopes: [String])] {
        guard let data = FileManager.default.contents(atPath: logPath) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                return nil
            }
            return (object["status"] as? Int ?? 0, object["scopes"] as? [String] ?? [])
        }
    }
}

@Suite("Bearer tokens and cross-repository mounts against a real registry", .serialized)
struct RegistryTokenTests {
    @Test("kiln gets scoped tokens, pushes, and mounts blobs from another repository instead of uploading them")
    func tokenFlowAndMount() throws {
        let (scratch, tree) = try Scratch.withSampleTree("token")
        let tokens = try TokenServer(scratch: scratch, user: "robot", password: "token-pass")
        let registry = try RegistryServer(.init(authYAML: tokens.registryAuthYAML))
        let config = try TestSecrets.dockerConfig(
            in: scratch.path, host: registry.host, user: "robot", password: "token-pass")
        let layout = try RegistryPushTests.builtImage(scratch, tree: tree)

        let first = try Tools.kiln(
            ["push", "\(layout):v1", "\(registry.host)/acme/one:v1", "--json"], environment: ["DOCKER_CONFIG": config])
        let firstReport = try RegistryPushTests.json(first)
        #expect(firstReport["blobsUploaded"] as? Int == 3)
        #expect(
            tokens.requests.contains { $0.status == 200 && $0.scopes.contains("repository:acme/one:pull,push") },
            "\(tokens.requests)")

        let mark = registry.mark()
        let second = try Tools.kiln(
            [
                "push", "\(layout):v1", "\(registry.host)/acme/two:v1", "--mount-from", "\(registry.host)/acme/one",
                "--json",
            ],
            environment: ["DOCKER_CONFIG": config])
        let secondReport = try RegistryPushTests.json(second)
        #expect(secondReport["blobsMounted"] as? Int == 3, "\(secondReport)")
        #expect(secondReport["blobsUploaded"] as? Int == 0)
        #expect(secondReport["digest"] as? String == firstReport["digest"] as? String)
        let requests = registry.requests(since: mark)
        let mounts = requests.filter { $0.hasPrefix("POST") && $0.contains("mount=") && $0.contains("from=acme/one") }
        #expect(mounts.count == 3, "\(requests)")
        #expect(
            !requests.contains { $0.hasPrefix("PATCH") || ($0.hasPrefix("PUT") && $0.contains("/blobs/uploads/")) },
            "a mount sends no blob bytes: \(requests)")
        #expect(
            tokens.requests.contains {
                $0.scopes.contains("repository:acme/one:pull") && $0.scopes.contains("repository:acme/two:pull,push")
            })

        let anonymous = try Tools.kiln(
            ["resolve", "\(registry.host)/acme/one:v1"], environment: ["DOCKER_CONFIG": scratch.path + "/none"])
        #expect(
            anonymous.status == 5 && anonymous.stderr.contains("401"),
            "an anonymous token has no pull right: \(anonymous.stderr)")
    }

    @Test("a token server answering 503 is retried like any registry request, not a failed push")
    func tokenServerHiccup() throws {
        let (scratch, tree) = try Scratch.withSampleTree("token-503")
        let tokens = try TokenServer(scratch: scratch, user: "robot", password: "token-pass", failFirst: 2)
        let registry = try RegistryServer(.init(authYAML: tokens.registryAuthYAML))
        let config = try TestSecrets.dockerConfig(
            in: scratch.path, host: registry.host, user: "robot", password: "token-pass")
        let layout = try RegistryPushTests.builtImage(scratch, tree: tree)

        let pushed = try Tools.kiln(
            ["push", "\(layout):v1", "\(registry.host)/acme/flaky:v1", "--json"], environment: ["DOCKER_CONFIG": config]
        )
        #expect(pushed.status == 0, "\(pushed.stderr)")
        let statuses = tokens.requests.map(\.status)
        #expect(Array(statuses.prefix(2)) == [503, 503], "\(statuses)")
        #expect(statuses.contains(200), "\(statuses)")
    }
}
