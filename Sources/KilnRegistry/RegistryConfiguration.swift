import KilnCore

/// Settings for all registry traffic of one kiln run.
public struct RegistryConfiguration: Sendable {
    /// Hosts (`host[:port]`) allowed over plain HTTP or with unverified TLS, as Docker's
    /// `insecure-registries`. Loopback hosts may fall back to plain HTTP without being listed.
    public var insecureHosts: Set<String> = []
    /// Extra certificate authorities to trust (PEM), besides the system's.
    public var caFile: String?
    /// Where credentials come from.
    public var credentials: CredentialStore = CredentialStore()
    /// Blob uploads of one push running at once per registry host.
    public var jobs: Int = 4
    /// Upload blobs larger than this in PATCH chunks of this size; nil lets kiln decide per host
    /// (chunks of 4 MiB for ghcr.io, whose front rejects larger bodies, and for any host that
    /// answers 413; one request otherwise).
    public var chunkSize: Int?
    public var retry = RetryPolicy()
    /// Seconds one request may take, upload bodies included.
    public var requestTimeout: Int64 = 600
    public var userAgent = "kiln/\(KilnVersion.current)"

    public init() {}

    /// The chunk size kiln uses where a registry front caps request bodies.
    public static let cappedChunkSize = 4 << 20

    /// Whether `host` is a loopback address (`localhost`, `127.x.x.x`, `[::1]`, with any port).
    public static func isLoopback(_ host: String) -> Bool {
        var name = Substring(host)
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return false }
            return name[name.index(after: name.startIndex)..<close] == "::1"
        }
        if let colon = name.lastIndex(of: ":") { name = name[..<colon] }
        return name == "localhost" || name.hasPrefix("127.")
    }
}
