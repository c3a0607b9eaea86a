import Foundation
import KilnRegistry
import Testing

@Suite("Auth challenges, retries and credentials")
struct ProtocolTests {
    @Test("a Bearer challenge with quoted values, commas and escapes parses")
    func bearer() {
        let header =
            #"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope""#
        let challenges = AuthChallenge.parse(header)
        #expect(challenges.count == 1)
        #expect(challenges[0].scheme == "bearer")
        #expect(challenges[0].realm == "https://auth.example.com/token")
        #expect(challenges[0].service == "registry.example.com")
        #expect(challenges[0].scopes == ["repository:a/b:pull,push", "repository:c:pull"])
        #expect(challenges[0].parameters["error"] == "insufficient_scope")
    }

    @Test(
        "several challenges in one header, bare tokens, odd case and escapes",
        arguments: [
            (#"Basic realm="Registry Realm""#, ["basic"], "Registry Realm"),
            (#"BASIC REALM=kiln"#, ["basic"], "kiln"),
            (#"Bearer realm="https://x/token", Basic realm="b""#, ["bearer", "basic"], "https://x/token"),
            (#"Basic realm="a \"quoted\" realm", charset="UTF-8""#, ["basic"], #"a "quoted" realm"#),
            (#"Negotiate, Bearer realm="r""#, ["negotiate", "bearer"], nil),
        ] as [(String, [String], String?)])
    func several(header: String, schemes: [String], firstRealm: String?) {
        let challenges = AuthChallenge.parse(header)
        #expect(challenges.map(\.scheme) == schemes)
        #expect(challenges.first?.realm == firstRealm)
    }

    @Test("backoff grows, is bounded, and honours Retry-After within the budget")
    func backoff() {
        var random = SystemRandomNumberGenerator()
        let policy = RetryPolicy(maxAttempts: 4, baseDelay: 0.5, maxDelay: 2, budget: 30)
        for _ in 0..<50 {
            #expect((0...0.5).contains(policy.delay(after: 1, retryAfter: nil, random: &random)!))
            #expect((0...1).contains(policy.delay(after: 2, retryAfter: nil, random: &random)!))
            #expect((0...2).contains(policy.delay(after: 3, retryAfter: nil, random: &random)!))
        }
        #expect(policy.delay(after: 4, retryAfter: nil, random: &random) == nil, "no attempt left")
        #expect(policy.delay(after: 1, retryAfter: 7, random: &random) == 7)
        #expect(policy.delay(after: 1, retryAfter: 31, random: &random) == nil, "longer than the budget")
    }

    @Test("Retry-After is read as seconds or as an HTTP date")
    func retryAfter() {
        let now = Date(timeIntervalSince1970: 784_111_777)  // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(RetryPolicy.parseRetryAfter("120") == 120)
        #expect(RetryPolicy.parseRetryAfter("Sun, 06 Nov 1994 08:49:47 GMT", now: now) == 10)
        #expect(RetryPolicy.parseRetryAfter("soon") == nil)
        #expect(RetryPolicy.parseRetryAfter("-5") == nil)
    }

    @Test("credentials: explicit, environment, GitHub Actions for ghcr.io, then config.json auths")
    func credentialOrder() async throws {
        let directory = NSTemporaryDirectory() + "kiln-creds-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = #"""
            {"auths": {"registry.example.com": {"auth": "\#(Data("alice:s3cret".utf8).base64EncodedString())"},
                       "https://index.docker.io/v1/": {"username": "hubuser", "password": "hubpass"}}}
            """#
        try config.write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        let store = CredentialStore(environment: ["DOCKER_CONFIG": directory])
        #expect(
            try await store.credential(for: "registry.example.com") == Credential(username: "alice", secret: "s3cret"))
        #expect(try await store.credential(for: "docker.io") == Credential(username: "hubuser", secret: "hubpass"))
        #expect(try await store.credential(for: "other.example.com") == nil)

        let github = CredentialStore(environment: [
            "DOCKER_CONFIG": directory, "GITHUB_TOKEN": "ghs_x", "GITHUB_ACTOR": "bot",
        ])
        #expect(try await github.credential(for: "ghcr.io") == Credential(username: "bot", secret: "ghs_x"))
        #expect(try await github.credential(for: "registry.example.com")?.username == "alice")

        let env = CredentialStore(environment: [
            "KILN_REGISTRY_USER": "ci", "KILN_REGISTRY_PASSWORD": "pw", "DOCKER_CONFIG": directory,
        ])
        #expect(try await env.credential(for: "registry.example.com") == Credential(username: "ci", secret: "pw"))
    }

    @Test("a credential never prints its secret")
    func redaction() {
        let credential = Credential(username: "alice", secret: "hunter2")
        #expect(!"\(credential)".contains("hunter2"))
        #expect(!String(reflecting: credential).contains("hunter2"))
    }

    @Test("a malformed config.json is an error naming the file")
    func brokenConfig() async throws {
        let directory = NSTemporaryDirectory() + "kiln-creds-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "{not json".write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        await #expect {
            try await CredentialStore(environment: ["DOCKER_CONFIG": directory]).credential(for: "x.io")
        } throws: { error in
            "\(error)".contains(directory + "/config.json")
        }
    }
}
