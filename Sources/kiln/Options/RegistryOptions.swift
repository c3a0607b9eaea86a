import ArgumentParser
import Foundation
import KilnRegistry

/// Flags for commands that talk to registries. A password is never a flag value (it would show
/// in the process list): it comes from stdin, the environment, or Docker's config.json.
struct RegistryOptions: ParsableArguments {
    @Option(
        name: .customLong("insecure-registry"),
        help: ArgumentHelp("Allow plain HTTP or unverified TLS for this host[:port] (repeatable).", valueName: "host"))
    var insecureRegistries: [String] = []

    @Option(name: .customLong("ca-file"), help: ArgumentHelp("Also trust these PEM certificates.", valueName: "file"))
    var caFile: String?

    @Option(help: ArgumentHelp("User name for the registry (password from --password-stdin).", valueName: "name"))
    var username: String?

    @Flag(name: .customLong("password-stdin"), help: "Read the registry password or token from stdin.")
    var passwordStdin = false

    @Option(
        name: .customLong("upload-jobs"),
        help: ArgumentHelp("Blob uploads running at once within one image's push.", valueName: "n"))
    var uploadJobs: Int = 4

    @Option(
        name: .customLong("chunk-size"),
        help: ArgumentHelp(
            "Upload blobs larger than this many MiB in chunks of this size (default 4, which GHCR and most proxies accept; 0: one request per blob).",
            valueName: "MiB"))
    var chunkSizeMiB: Int?

    func validate() throws {
        if passwordStdin && username == nil { throw ValidationError("--password-stdin needs --username NAME.") }
        if uploadJobs < 1 { throw ValidationError("--upload-jobs takes a positive number, e.g. --upload-jobs 4.") }
    }

    func configuration() -> RegistryConfiguration {
        var configuration = RegistryConfiguration()
        configuration.insecureHosts = Set(insecureRegistries)
        configuration.caFile = caFile
        configuration.uploadJobs = uploadJobs
        if let chunkSizeMiB { configuration.chunkSize = chunkSizeMiB << 20 }
        if let username, passwordStdin {
            let password = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                .trimmingCharacters(in: .newlines)
            configuration.credentials = CredentialStore(explicit: Credential(username: username, secret: password))
        }
        return configuration
    }

    /// Runs `body` with a client, shutting it down afterwards whatever happens.
    func withClient<T>(_ body: (RegistryClient) async throws -> T) async throws -> T {
        let client = try RegistryClient(configuration: configuration())
        do {
            let result = try await body(client)
            await client.shutdown()
            return result
        } catch {
            await client.shutdown()
            throw error
        }
    }
}
