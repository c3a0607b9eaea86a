import Foundation
import KilnCore

/// A user name and secret for a registry. Its descriptions never show the secret.
package struct Credential: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    package var username: String
    package var secret: String

    package init(username: String, secret: String) {
        self.username = username
        self.secret = secret
    }

    /// `Basic base64(user:secret)`.
    var basicAuthorization: String { "Basic " + Data("\(username):\(secret)".utf8).base64EncodedString() }

    package var description: String { "Credential(\(username), secret redacted)" }
    package var debugDescription: String { description }
}

/// Finds credentials for a registry host, in this order: explicit ones (flags or
/// `KILN_REGISTRY_USER` + `KILN_REGISTRY_PASSWORD`); `GITHUB_ACTOR` + `GITHUB_TOKEN` for ghcr.io;
/// Docker's `config.json` (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`): `credHelpers`
/// for the host, then `auths`, then `credsStore`, helpers run as `docker-credential-NAME get`.
package struct CredentialStore: Sendable {
    package var explicit: Credential?
    package var environment: [String: String]

    package init(explicit: Credential? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.explicit = explicit
        self.environment = environment
    }

    /// The credential for `registry` (as written in references: `ghcr.io`, `docker.io`, `host:port`).
    /// - Throws: `RegistryError.credentials` when config.json is malformed or a helper fails.
    package func credential(for registry: String) async throws(RegistryError) -> Credential? {
        if let explicit { return explicit }
        if let user = environment["KILN_REGISTRY_USER"], let password = environment["KILN_REGISTRY_PASSWORD"],
            !user.isEmpty
        {
            return Credential(username: user, secret: password)
        }
        if registry == "ghcr.io", let token = environment["GITHUB_TOKEN"], !token.isEmpty {
            return Credential(username: environment["GITHUB_ACTOR"] ?? "github-actions", secret: token)
        }
        guard let config = try dockerConfig() else { return nil }
        let keys = Self.configKeys(for: registry)
        if let helper = keys.lazy.compactMap({ config.credHelpers?[$0] }).first {
            return try await CredentialHelper(name: helper).get(serverURL: keys[0])
        }
        if let entry = keys.lazy.compactMap({ config.auths?[$0] }).first(where: { $0.hasCredential }) {
            return try entry.credential(registry: registry)
        }
        if let store = config.credsStore, !store.isEmpty {
            return try await CredentialHelper(name: store).get(serverURL: keys[0])
        }
        return nil
    }

    /// The keys config.json may use for a registry; Docker Hub's is its old v1 URL.
    static func configKeys(for registry: String) -> [String] {
        if registry == "docker.io" {
            return ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
        }
        return [
            registry, "https://\(registry)", "http://\(registry)", "https://\(registry)/v1/", "https://\(registry)/v2/",
        ]
    }

    var configPath: String {
        if let directory = environment["DOCKER_CONFIG"], !directory.isEmpty { return directory + "/config.json" }
        return (environment["HOME"] ?? NSHomeDirectory()) + "/.docker/config.json"
    }

    func dockerConfig() throws(RegistryError) -> DockerConfig? {
        let path = configPath
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .credentials("cannot read '\(path)'")
        }
        do {
            return try JSONDecoder().decode(DockerConfig.self, from: data)
        } catch {
            throw .credentials("'\(path)' is not a valid Docker config file")
        }
    }
}

/// The parts of Docker's config.json kiln reads.
struct DockerConfig: Decodable {
    struct AuthEntry: Decodable {
        var auth: String?
        var username: String?
        var password: String?
        var identitytoken: String?

        var hasCredential: Bool { auth?.isEmpty == false || username?.isEmpty == false || identitytoken != nil }

        func credential(registry: String) throws(RegistryError) -> Credential {
            if let username, let password, !username.isEmpty { return Credential(username: username, secret: password) }
            if let auth, let decoded = Data(base64Encoded: auth).map({ String(decoding: $0, as: UTF8.self) }),
                let colon = decoded.firstIndex(of: ":")
            {
                return Credential(
                    username: String(decoded[..<colon]), secret: String(decoded[decoded.index(after: colon)...]))
            }
            if let identitytoken { return Credential(username: "<token>", secret: identitytoken) }
            throw .credentials("the config.json entry for \(registry) holds no usable credential")
        }
    }

    var auths: [String: AuthEntry]?
    var credHelpers: [String: String]?
    var credsStore: String?
}

/// Runs `docker-credential-NAME get`, sending the server URL on stdin and reading
/// `{"Username":…,"Secret":…}` from stdout. The secret travels only through the pipe.
struct CredentialHelper {
    var name: String

    func get(serverURL: String) async throws(RegistryError) -> Credential? {
        let program = "docker-credential-\(name)"
        let result: (status: Int32, output: Data)
        do {
            result = try await Self.run(program, input: Data(serverURL.utf8))
        } catch {
            throw .credentials("could not run \(program): \(error.localizedDescription)")
        }
        let text = String(decoding: result.output, as: UTF8.self)
        if result.status != 0 {
            if text.lowercased().contains("credentials not found") { return nil }
            throw .credentials("\(program) get failed with status \(result.status)")
        }
        struct Answer: Decodable {
            var username: String
            var secret: String

            enum CodingKeys: String, CodingKey {
                case username = "Username"
                case secret = "Secret"
            }
        }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: result.output) else {
            throw .credentials("\(program) get printed something that is not a credential")
        }
        return Credential(username: answer.username, secret: answer.secret)
    }

    private static func run(_ program: String, input: Data) async throws -> (Int32, Data) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program, "get"]
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        return try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { finished in
                let output = stdout.fileHandleForReading.readDataToEndOfFile()
                continuation.resume(returning: (finished.terminationStatus, output))
            }
            do {
                try process.run()
                stdin.fileHandleForWriting.write(input)
                try? stdin.fileHandleForWriting.close()
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}
