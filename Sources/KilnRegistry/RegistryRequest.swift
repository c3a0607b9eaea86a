import AsyncHTTPClient
import Foundation
import KilnCore
import NIOHTTP1

/// One request to a registry, described before it is sent, so a retry can send it again.
struct RegistryRequest: Sendable {
    enum Target: Sendable {
        /// A path under the endpoint (`/v2/…`) with query items, encoded by kiln.
        case path(String, query: [(String, String)] = [])
        /// A URL the registry gave (an upload `Location`), with extra query items appended.
        case location(String, query: [(String, String)] = [])
        /// A URL outside the registry's API, used as given: a token server's realm.
        case absolute(String)
    }

    /// Where the `Authorization` header comes from.
    enum Authentication: Sendable {
        /// The registry's own scheme (Basic, or a Bearer token for `scopes`), re-authenticated
        /// once on 401, and sent only to the registry's own host.
        case registry
        /// This header (or none) exactly: a token request carries the Basic credential to the
        /// token server, which may be another host. Never re-authenticated.
        case given(String?)
    }

    enum Body: Sendable {
        case none
        case bytes([UInt8])
        /// `length` bytes of a file from `offset`, streamed in 1 MiB chunks.
        case file(path: String, offset: Int64, length: Int64)

        var length: Int64 {
            switch self {
            case .none: 0
            case .bytes(let bytes): Int64(bytes.count)
            case .file(_, _, let length): length
            }
        }
    }

    var method: HTTPMethod
    var target: Target
    var headers: [(String, String)] = []
    var body: Body = .none
    /// What kiln was doing, for messages: "push blob sha256:… to ghcr.io/acme/app".
    var operation: String
    /// The token scopes the request needs.
    var scopes: [String]
    /// Safe to repeat as is after a transient failure.
    var idempotent: Bool
    /// The most response body bytes kiln will read.
    var maxResponseBody = 64 << 10
    /// Follow 3xx redirects (blob downloads go to storage URLs); credentials stay behind.
    var followsRedirects = false
    var authentication = Authentication.registry
}

/// What the registry answered.
struct RegistryResponse: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
    /// The request URL, without query, for messages.
    var url: String
    var method: String

    func header(_ name: String) -> String? { headers.first(name: name) }

    /// The registry's structured error (`{"errors":[{"code":…,"message":…}]}`), when the body has one.
    var registryError: (code: String, message: String)? {
        struct Envelope: Decodable {
            struct Item: Decodable {
                var code: String?
                var message: String?
            }
            var errors: [Item]?
        }
        guard let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(body)),
            let first = envelope.errors?.first
        else { return nil }
        return (first.code ?? "UNKNOWN", first.message ?? "")
    }

    /// The failure this response stands for, as an error naming the operation.
    func failure(_ operation: String) -> RegistryError {
        let parsed = registryError
        var message = parsed?.message
        if parsed == nil, !body.isEmpty, body.count < 300 {
            let text = String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.contains("<") { message = text }  // keep short plain-text bodies, drop HTML pages
        }
        let failure = RegistryError.Failure(
            operation: operation, method: method, url: url, status: status, code: parsed?.code, message: message)
        return status == 401 || status == 403 ? .unauthorized(failure) : .http(failure)
    }

    /// Throws `failure(operation)` unless the status is one of `accepted`.
    func expect(_ accepted: Set<Int>, _ operation: String) throws(RegistryError) {
        guard accepted.contains(status) else { throw failure(operation) }
    }
}

enum QueryEncoding {
    /// Percent-encodes a query component, keeping RFC 3986 unreserved characters and `:/@`.
    static func encode(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"), UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "@"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    static func append(_ query: [(String, String)], to url: String) -> String {
        guard !query.isEmpty else { return url }
        let items = query.map { "\(encode($0.0))=\(encode($0.1))" }.joined(separator: "&")
        return url + (url.contains("?") ? "&" : "?") + items
    }

    /// The URL without its query string, for messages (upload URLs carry state in the query).
    static func withoutQuery(_ url: String) -> String {
        url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
    }
}
