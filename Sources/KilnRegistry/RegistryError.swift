import KilnCore

/// Why talking to a registry failed. Descriptions name the registry, repository and operation,
/// the HTTP status and the registry's own error code and message when it sent one, and never a
/// credential or a token.
package enum RegistryError: KilnError, Equatable {
    /// The registry answered with an error status.
    case http(Failure)
    /// The registry could not be reached, or the connection broke.
    case connection(host: String, operation: String, reason: String)
    /// The registry's host name does not resolve.
    case unknownHost(String)
    /// The TLS handshake failed (unknown certificate authority, wrong host name, …).
    case tls(host: String, reason: String)
    /// Authentication failed for good (bad credentials, no permission).
    case unauthorized(Failure)
    /// Bytes did not hash to the digest they were sent or fetched as.
    case digestMismatch(operation: String, expected: Digest, actual: Digest)
    /// The registry's answer broke the protocol (missing header, malformed JSON, oversized body).
    case protocolViolation(host: String, operation: String, reason: String)
    /// The `--ca-file` (or `SSL_CERT_FILE`) could not be loaded as PEM certificates.
    case caFile(String)
    /// Credentials could not be found or read (a broken config.json, a failing helper).
    case credentials(String)
    /// Something the user asked for does not exist (a platform missing from an index, …).
    case notFound(String)
    /// A response body broke off while it was being read into a sink (which holds part of it):
    /// never repeated as is; the caller starts over into a new sink when the cause is retryable.
    indirect case bodyInterrupted(RegistryError)
    /// Writing a downloaded body failed on this machine (a full disk).
    case sink(String, category: ErrorCategory)
    /// The task was cancelled while it waited to try again.
    case cancelled

    /// The facts of one failed request.
    package struct Failure: Sendable, Equatable, CustomStringConvertible {
        package var operation: String
        package var method: String
        /// The URL without query string or credentials.
        package var url: String
        package var status: Int
        /// The registry's error code (`NAME_UNKNOWN`, `DENIED`, …) and message, when given.
        package var code: String?
        package var message: String?

        package init(
            operation: String, method: String, url: String, status: Int, code: String? = nil, message: String? = nil
        ) {
            self.operation = operation
            self.method = method
            self.url = url
            self.status = status
            self.code = code
            self.message = message
        }

        package var description: String {
            var text = "\(operation): \(method) \(url) answered HTTP \(status)"
            if let code { text += " \(code)" }
            if let message, !message.isEmpty { text += ": \(message)" }
            return text
        }
    }

    package var description: String {
        switch self {
        case .http(let failure): failure.description
        case .connection(let host, let operation, let reason): "\(operation): cannot reach registry \(host): \(reason)"
        case .unknownHost(let host): "registry host '\(host)' does not resolve (check the name, or the network)"
        case .tls(let host, let reason):
            "TLS with \(host) failed: \(reason) (for a private CA pass --ca-file; for a plain-HTTP registry --insecure-registry \(host))"
        case .unauthorized(let failure): "\(failure.description) (check the credentials for this registry)"
        case .digestMismatch(let operation, let expected, let actual):
            "\(operation): expected \(expected), got \(actual)"
        case .protocolViolation(let host, let operation, let reason): "\(operation): registry \(host) \(reason)"
        case .caFile(let path): "cannot load CA certificates from '\(path)' (a PEM file is expected)"
        case .credentials(let reason): "credentials: \(reason)"
        case .notFound(let reason): reason
        case .bodyInterrupted(let error): error.description
        case .sink(let reason, _): reason
        case .cancelled: "stopped before the registry answered (cancelled)"
        }
    }

    package var category: ErrorCategory {
        switch self {
        case .caFile, .credentials, .notFound: .input
        case .digestMismatch: .integrity
        case .http, .connection, .unknownHost, .tls, .unauthorized, .protocolViolation: .network
        case .bodyInterrupted(let error): error.category
        case .sink(_, let category): category
        case .cancelled: .internal
        }
    }

    /// The registry's error code (`DIGEST_INVALID`, `NAME_UNKNOWN`, …), when it sent one.
    package var registryCode: String? {
        switch self {
        case .http(let failure), .unauthorized(let failure): failure.code
        default: nil
        }
    }

    /// Whether repeating the same request may succeed: network trouble and 408/429/5xx. The one
    /// retry decision of the client (`RegistryClient.send` asks it of every answer).
    package var isRetryable: Bool {
        switch self {
        case .connection: true
        case .http(let failure): Self.isRetryable(status: failure.status)
        default: false
        }
    }

    /// The statuses a registry answers for trouble that passes: 408, 429 and 5xx gateways.
    package static func isRetryable(status: Int) -> Bool {
        [408, 429, 500, 502, 503, 504].contains(status)
    }
}
