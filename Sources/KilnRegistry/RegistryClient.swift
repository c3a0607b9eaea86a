import AsyncHTTPClient
import KilnCore
import Logging
import NIOCore
import NIOSSL

/// kiln's client for the OCI distribution API (distribution-spec v1.1). One per run: it pools
/// connections, remembers each host's endpoint and auth challenge, and caches tokens per scope.
///
/// Protocol areas live in extensions: `+Transport` (sending, retries, endpoint discovery),
/// `+Auth` (Basic and Bearer), `+Blobs`, `+Upload`, `+Manifests`, `+Resolve`.
package final class RegistryClient: Sendable {
    let configuration: RegistryConfiguration
    let logger: Logger
    let http: HTTPClient
    /// For hosts named with `--insecure-registry`: TLS without certificate checks.
    let insecureHTTP: HTTPClient?
    let endpoints = EndpointCache()
    let tokens = TokenCache()
    let blobLocations = BlobLocations()
    let blobFlights = BlobFlights()

    /// - Throws: `RegistryError.caFile` when the CA file cannot be loaded.
    package init(configuration: RegistryConfiguration = RegistryConfiguration(), logger: Logger? = nil)
        throws(RegistryError)
    {
        self.configuration = configuration
        self.logger = logger ?? Logger(label: "kiln.registry", factory: { _ in SwiftLogNoOpLogHandler() })
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile = configuration.caFile ?? configuration.credentials.environment["SSL_CERT_FILE"] {
            do {
                tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(caFile))]
            } catch {
                throw .caFile(caFile)
            }
        }
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: Self.httpConfiguration(tls: tls))
        if configuration.insecureHosts.isEmpty {
            insecureHTTP = nil
        } else {
            var unverified = TLSConfiguration.makeClientConfiguration()
            unverified.certificateVerification = .none
            insecureHTTP = HTTPClient(
                eventLoopGroupProvider: .singleton, configuration: Self.httpConfiguration(tls: unverified))
        }
    }

    private static func httpConfiguration(tls: TLSConfiguration) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls, redirectConfiguration: .disallow, decompression: .disabled)
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: .seconds(15), read: .seconds(120))
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 16)
        // kiln retries with its own bounded policy; the pool's retries would hold a refused
        // connection until the connect timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        return configuration
    }

    /// Closes every connection. Call once, when the run is done with the registry.
    package func shutdown() async {
        try? await http.shutdown()
        try? await insecureHTTP?.shutdown()
    }
}
