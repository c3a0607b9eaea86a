import AsyncHTTPClient
import Foundation
import KilnCore
import KilnOCI
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import _NIOFileSystem

/// Where a registry host is reached, and how it asks clients to authenticate.
struct Endpoint: Sendable {
    /// `https://host[:port]` or `http://host[:port]`.
    var baseURL: String
    /// TLS without certificate checks (`--insecure-registry` only).
    var unverifiedTLS: Bool
    /// The challenge `GET /v2/` answered with; nil for an open registry.
    var challenge: AuthChallenge?
}

/// What kiln learnt about each registry host during a run.
actor EndpointCache {
    private let endpoints = SingleFlight<String, Endpoint>(keeping: .successes)
    private var chunkSizes = [String: Int]()

    /// The endpoint for `host`, discovered once however many tasks ask at the same time.
    /// (A failed discovery is not kept: a later request tries again.)
    func endpoint(for host: String, discover: @escaping @Sendable () async throws -> Endpoint) async throws -> Endpoint
    {
        try await endpoints.value(for: host, discover).value
    }

    private var withoutReferrersAPI = Set<String>()
    private let referrersProbes = SingleFlight<String, RegistryResponse?>(keeping: .results)

    /// The first referrers request to `host` (`send`'s answer, nil when it failed) tells whether
    /// the host has the API; the callers arriving meanwhile wait for it instead of each asking.
    /// `made`: this caller's own request was the probe.
    func probeReferrers(_ host: String, _ send: @escaping @Sendable () async -> RegistryResponse?) async -> (
        response: RegistryResponse?, made: Bool
    ) {
        guard let probe = try? await referrersProbes.value(for: host, send) else { return (nil, false) }
        return (probe.value, probe.made)
    }

    func learnedChunkSize(_ host: String) -> Int? { chunkSizes[host] }
    func learnChunkSize(_ host: String, _ size: Int) { chunkSizes[host] = size }

    /// Whether `host` answered a referrers request as a registry without the API.
    func lacksReferrersAPI(_ host: String) -> Bool { withoutReferrersAPI.contains(host) }
    func learnLacksReferrersAPI(_ host: String) { withoutReferrersAPI.insert(host) }
}

/// Reads a successful response's body as it arrives (a blob download), instead of collecting it.
typealias BodyConsumer = @Sendable (HTTPClientResponse.Body) async throws -> Void

extension RegistryClient {
    /// Sends `request` to `registry`: authenticates, retries transient failures of idempotent
    /// requests with backoff (honouring `Retry-After`), re-authenticates once on 401, and follows
    /// redirects when the request allows them (never sending credentials to another host). The
    /// response is returned whatever its status; callers decide which statuses are success.
    /// - Parameter consume: reads a 200 response's body as it streams; the returned response then
    ///   has no body. A failure while reading is thrown as is, never retried.
    func send(_ request: RegistryRequest, to registry: String, consume: BodyConsumer? = nil) async throws(RegistryError)
        -> RegistryResponse
    {
        let endpoint = try await endpoint(for: registry)
        return try await send(request, endpoint: endpoint, registry: registry, consume: consume)
    }

    /// The one request path: every registry request, the `/v2/` probe included, goes through it.
    func send(_ request: RegistryRequest, endpoint: Endpoint, registry: String, consume: BodyConsumer? = nil)
        async throws(RegistryError) -> RegistryResponse
    {
        var request = request
        var scopes = request.scopes
        var attempt = 0
        var redirects = 0
        var reauthenticated = false
        var random = SystemRandomNumberGenerator()
        while true {
            attempt += 1
            let authorization: String?
            switch request.authentication {
            case .registry:
                authorization = try await self.authorization(
                    endpoint: endpoint, registry: registry, scopes: scopes, fresh: reauthenticated)
            case .given(let header):
                authorization = header
            }
            let response: RegistryResponse
            do {
                response = try await execute(
                    request, endpoint: endpoint, authorization: authorization, registry: registry, consume: consume)
            } catch {
                guard request.idempotent, error.isRetryable,
                    let delay = configuration.retry.delay(after: attempt, retryAfter: nil, random: &random)
                else { throw error }
                logger.debug(
                    "retrying after error", metadata: ["operation": "\(request.operation)", "error": "\(error)"])
                try await Self.sleep(seconds: delay)
                continue
            }
            if response.status == 401, !reauthenticated, endpoint.challenge != nil,
                case .registry = request.authentication
            {
                // The token may have expired or lack a scope the registry now names: fetch a new
                // one with the union of scopes, once.
                reauthenticated = true
                attempt -= 1
                if let header = response.header("WWW-Authenticate"),
                    let challenge = AuthChallenge.parse(header).first(where: { $0.scheme == "bearer" })
                {
                    scopes = Array(Set(scopes + challenge.scopes)).sorted()
                }
                continue
            }
            if request.followsRedirects, [301, 302, 303, 307, 308].contains(response.status),
                let location = response.header("Location")
            {
                // Blob downloads on GHCR and Docker Hub redirect to storage URLs; credentials
                // stay with the registry's own host (`execute`).
                redirects += 1
                guard redirects <= 5 else {
                    throw .protocolViolation(
                        host: registry, operation: request.operation, reason: "redirected too many times")
                }
                request.target = .location(location)
                attempt -= 1
                continue
            }
            if request.idempotent, RegistryError.isRetryable(status: response.status) {
                let retryAfter = response.header("Retry-After").flatMap { RetryPolicy.parseRetryAfter($0) }
                if let delay = configuration.retry.delay(after: attempt, retryAfter: retryAfter, random: &random) {
                    try await Self.sleep(seconds: delay)
                    continue
                }
            }
            return response
        }
    }

    /// Waits between attempts; a cancelled task stops waiting and gives up (`.cancelled`).
    static func sleep(seconds: Double) async throws(RegistryError) {
        do {
            try await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9))
        } catch {
            throw .cancelled
        }
    }

    /// Contacts `registry` once (`GET /v2/`, remembered for the client's later requests): throws
    /// when it cannot be reached, so a caller with many requests to make learns it once.
    package func reach(_ registry: String) async throws(RegistryError) {
        _ = try await endpoint(for: registry)
    }

    /// Finds how to reach `registry`: HTTPS first; plain HTTP only for loopback hosts and hosts
    /// named with `--insecure-registry`, and only when it really answers as a registry there.
    func endpoint(for registry: String) async throws(RegistryError) -> Endpoint {
        do {
            return try await endpoints.endpoint(for: registry) { try await self.discoverEndpoint(registry) }
        } catch let error as RegistryError {
            throw error
        } catch {
            throw .connection(host: registry, operation: "contact registry \(registry)", reason: "\(error)")
        }
    }

    private func discoverEndpoint(_ registry: String) async throws(RegistryError) -> Endpoint {
        let host = Repository(registry: registry, path: "x").endpointHost
        let insecure = configuration.insecureHosts.contains(registry) || configuration.insecureHosts.contains(host)
        let plainAllowed = insecure || RegistryConfiguration.isLoopback(host)
        do {
            return try await ping(Endpoint(baseURL: "https://\(host)", unverifiedTLS: insecure), registry: registry)
        } catch let httpsError {
            guard plainAllowed else { throw httpsError }
            do {
                return try await ping(Endpoint(baseURL: "http://\(host)", unverifiedTLS: false), registry: registry)
            } catch let plainError {
                // A TLS failure with a host that then answers a registry's error status over plain
                // HTTP means it speaks plain HTTP: that status (a 503, say) is the news, not the
                // handshake. Anything else there (a TLS server's 400 to plain HTTP) is not.
                if case .tls = httpsError, case .http = plainError { throw plainError }
                throw httpsError
            }
        }
    }

    /// `GET /v2/`: 200 for an open registry, 401 with the challenge otherwise. Sent (and
    /// retried) like any idempotent request, without credentials.
    private func ping(_ candidate: Endpoint, registry: String) async throws(RegistryError) -> Endpoint {
        let operation = "contact registry \(registry)"
        let request = RegistryRequest(
            method: .GET, target: .path("/v2/"), operation: operation, scopes: [], idempotent: true)
        // No challenge is known yet, so `send` adds no credentials and does not re-authenticate.
        let response = try await send(request, endpoint: candidate, registry: registry)
        var endpoint = candidate
        switch response.status {
        case 200:
            return endpoint
        case 401:
            let challenges = AuthChallenge.parse(response.header("WWW-Authenticate") ?? "")
            endpoint.challenge = challenges.first { $0.scheme == "bearer" } ?? challenges.first { $0.scheme == "basic" }
            return endpoint
        case let status where RegistryError.isRetryable(status: status):
            throw response.failure(operation)
        default:
            throw .protocolViolation(
                host: registry, operation: operation,
                reason: "answered GET \(candidate.baseURL)/v2/ with HTTP \(response.status); is this a registry?")
        }
    }

    /// The full URL a target stands for. A `Location` may be absolute or relative; it may not
    /// move an HTTPS session to plain HTTP.
    func url(for target: RegistryRequest.Target, endpoint: Endpoint, registry: String) throws(RegistryError) -> String {
        switch target {
        case .path(let path, let query):
            return QueryEncoding.append(query, to: endpoint.baseURL + path)
        case .location(let location, let query):
            let absolute: String
            if location.hasPrefix("https://") || location.hasPrefix("http://") {
                if endpoint.baseURL.hasPrefix("https://") && location.hasPrefix("http://") {
                    throw .protocolViolation(
                        host: registry, operation: "follow an upload location",
                        reason: "redirected an HTTPS upload to plain HTTP (\(QueryEncoding.withoutQuery(location)))")
                }
                absolute = location
            } else if location.hasPrefix("/") {
                absolute = endpoint.baseURL + location
            } else {
                absolute = endpoint.baseURL + "/v2/" + location
            }
            return QueryEncoding.append(query, to: absolute)
        case .absolute(let url):
            return url
        }
    }

    /// One HTTP exchange, no retries. File bodies are streamed from disk in 1 MiB chunks.
    func execute(
        _ request: RegistryRequest, endpoint: Endpoint, authorization: String?, registry: String,
        consume: BodyConsumer? = nil
    )
        async throws(RegistryError) -> RegistryResponse
    {
        let url = try url(for: request.target, endpoint: endpoint, registry: registry)
        var http = HTTPClientRequest(url: url)
        http.method = request.method
        http.headers.add(name: "User-Agent", value: configuration.userAgent)
        for (name, value) in request.headers { http.headers.add(name: name, value: value) }
        // Credentials go only to the registry's own host, never to a host a Location points at;
        // a given header (a token request's) goes where the request was addressed.
        if let authorization {
            switch request.authentication {
            case .registry where url.hasPrefix(endpoint.baseURL + "/"), .given:
                http.headers.add(name: "Authorization", value: authorization)
            case .registry:
                break
            }
        }
        let client = endpoint.unverifiedTLS ? (insecureHTTP ?? self.http) : self.http
        let deadline = NIODeadline.now() + .seconds(configuration.requestTimeout)
        do {
            if let transport = configuration.transport {
                return try await exchange(
                    http, with: transport, request: request, url: url, registry: registry, consume: consume)
            }
            switch request.body {
            case .none:
                if [.POST, .PUT, .PATCH].contains(request.method) { http.body = .bytes(ByteBuffer()) }
                return try await collect(
                    client.execute(http, deadline: deadline), request: request, url: url, registry: registry,
                    consume: consume)
            case .bytes(let bytes):
                http.body = .bytes(ByteBuffer(bytes: bytes))
                return try await collect(client.execute(http, deadline: deadline), request: request, url: url)
            case .file(let path, let offset, let length):
                return try await FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { handle in
                    var streamed = http
                    let chunks = handle.readChunks(in: offset..<(offset + length), chunkLength: .mebibytes(1))
                    streamed.body = .stream(chunks, length: .known(length))
                    let response = try await client.execute(streamed, deadline: deadline)
                    return try await collect(response, request: request, url: url)
                }
            }
        } catch let error as RegistryError {
            throw error
        } catch {
            throw Self.classify(error, registry: registry, operation: request.operation)
        }
    }

    /// The exchange answered by `transport` instead of the network (see `RegistryTransport`).
    private func exchange(
        _ http: HTTPClientRequest, with transport: any RegistryTransport, request: RegistryRequest, url: String,
        registry: String, consume: BodyConsumer?
    ) async throws -> RegistryResponse {
        var bytes = [UInt8]()
        switch request.body {
        case .none: break
        case .bytes(let given): bytes = given
        case .file(let path, let offset, let length):
            let chunk = try await FileSystem.shared.withFileHandle(forReadingAt: FilePath(path)) { handle in
                try await handle.readChunk(fromAbsoluteOffset: offset, length: .bytes(length))
            }
            bytes = Array(buffer: chunk)
        }
        let answer = try await transport.respond(
            to: TransportRequest(
                method: http.method.rawValue, url: url, headers: http.headers.map { ($0.name, $0.value) }, body: bytes))
        let response = HTTPClientResponse(
            status: HTTPResponseStatus(statusCode: answer.status),
            headers: HTTPHeaders(answer.headers.map { ($0.name, $0.value) }),
            body: .bytes(ByteBuffer(bytes: answer.body)))
        return try await collect(response, request: request, url: url, registry: registry, consume: consume)
    }

    private func collect(
        _ response: HTTPClientResponse, request: RegistryRequest, url: String, registry: String = "",
        consume: BodyConsumer? = nil
    ) async throws -> RegistryResponse {
        if let consume, response.status == .ok {
            // A failure now leaves part of the body in the consumer's sink: it is never retried
            // here (`bodyInterrupted` is not retryable); the caller starts over with a new sink.
            do {
                try await consume(response.body)
            } catch let error as RegistryError {
                throw RegistryError.bodyInterrupted(error)
            } catch let error as any KilnError {
                throw RegistryError.sink(error.description, category: error.category)
            } catch {
                throw RegistryError.bodyInterrupted(
                    Self.classify(error, registry: registry, operation: request.operation))
            }
            return RegistryResponse(
                status: 200, headers: response.headers, body: [], url: QueryEncoding.withoutQuery(url),
                method: request.method.rawValue)
        }
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: request.maxResponseBody)
        } catch is NIOTooManyBytesError {
            throw RegistryError.protocolViolation(
                host: QueryEncoding.withoutQuery(url), operation: request.operation,
                reason: "sent a response body over \(request.maxResponseBody) bytes")
        }
        return RegistryResponse(
            status: Int(response.status.code), headers: response.headers, body: Array(buffer: body),
            url: QueryEncoding.withoutQuery(url), method: request.method.rawValue)
    }

    /// Turns a transport error into a registry error that says what happened in plain words,
    /// deciding by the error's type (never its text): TLS, an unresolvable host, or a connection
    /// that failed.
    static func classify(_ error: any Error, registry: String, operation: String) -> RegistryError {
        switch error {
        case let ssl as NIOSSLError: return .tls(host: registry, reason: "\(ssl)")
        case let extra as NIOSSLExtraError: return .tls(host: registry, reason: "\(extra)")
        case let boring as BoringSSLError: return .tls(host: registry, reason: "\(boring)")
        case let file as FileSystemError:
            return .connection(
                host: registry, operation: operation, reason: "reading the upload body failed: \(file.message)")
        case let connection as NIOConnectionError:
            if connection.connectionErrors.isEmpty, connection.dnsAError != nil || connection.dnsAAAAError != nil {
                return .unknownHost(registry)
            }
            let reasons = Set(connection.connectionErrors.map { describeConnection($0.error) })
            return .connection(host: registry, operation: operation, reason: reasons.sorted().joined(separator: "; "))
        default:
            return .connection(host: registry, operation: operation, reason: describeConnection(error))
        }
    }

    private static func describeConnection(_ error: any Error) -> String {
        switch error {
        case let client as HTTPClientError:
            switch client {
            case .connectTimeout: return "connection timed out"
            case .readTimeout: return "the registry stopped answering (read timeout)"
            case .deadlineExceeded: return "the request took longer than its deadline"
            case .remoteConnectionClosed: return "the registry closed the connection"
            default: return "\(client)"
            }
        case let io as IOError:
            switch io.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ECONNRESET: return "the connection was reset"
            default: return String(cString: strerror(io.errnoCode))
            }
        default:
            return "\(error)"
        }
    }
}
