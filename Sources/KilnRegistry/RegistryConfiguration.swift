import KilnCore

/// Settings for all registry traffic of one kiln run.
package struct RegistryConfiguration: Sendable {
    /// Hosts (`host[:port]`) allowed over plain HTTP or with unverified TLS, as Docker's
    /// `insecure-registries`. Loopback hosts may fall back to plain HTTP without being listed.
    package var insecureHosts: Set<String> = []
    /// Extra certificate authorities to trust (PEM), besides the system's.
    package var caFile: String?
    /// Where credentials come from.
    package var credentials: CredentialStore = CredentialStore()
    /// Blob uploads of one image push running at once (`--upload-jobs`). Several pushes (the
    /// lane's processors, `kiln push`'s images) each have this bound.
    package var uploadJobs: Int = 4
    /// Upload blobs larger than this in `PATCH` chunks of this size; 0 sends every blob in one
    /// request. The default, 4 MiB, fits under the per-request caps of GHCR (which answers 416
    /// past 4 MiB) and of proxies in front of self-hosted registries; a host that still answers
    /// "too large" gets smaller chunks for the rest of the run.
    package var chunkSize: Int = RegistryConfiguration.cappedChunkSize
    package var retry = RetryPolicy()
    /// Seconds one request may take, upload bodies included.
    package var requestTimeout: Int64 = 600
    /// Answers requests instead of the network (an in-memory registry in tests); nil in use.
    package var transport: (any RegistryTransport)?
    package var userAgent = "kiln/\(KilnVersion.current)"

    package init() {}

    /// The chunk size kiln uses where a registry front caps request bodies.
    package static let cappedChunkSize = 4 << 20

    /// Whether `host` is a loopback address (`localhost`, `127.x.x.x`, `[::1]`, with any port).
    package static func isLoopback(_ host: String) -> Bool {
        var name = Substring(host)
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return false }
            return name[name.index(after: name.startIndex)..<close] == "::1"
        }
        if let colon = name.lastIndex(of: ":") { name = name[..<colon] }
        return name == "localhost" || name.hasPrefix("127.")
    }
}
