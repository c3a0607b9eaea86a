import AsyncHTTPClient
import KilnCore
import KilnOCI
import NIOCore

extension RegistryClient {
    /// Streams a blob (a base image layer) into a sink, hashing on the way: the bytes must hash
    /// to the descriptor's digest and be exactly its size, and nothing past the size is read.
    /// A redirect to a storage host is followed without credentials. Transient failures start
    /// the download again into a fresh sink from `makeSink`; the failed sink is dropped unused.
    ///
    /// - Returns: the sink holding the verified bytes, for the caller to commit.
    public func downloadBlob<Sink: ByteSink>(
        _ descriptor: Descriptor, from repository: Repository, into makeSink: () throws -> Sink
    ) async throws -> Sink {
        let operation = "download blob \(descriptor.digest.short) from \(repository)"
        var attempt = 0
        var random = SystemRandomNumberGenerator()
        while true {
            attempt += 1
            let sink = try makeSink()
            do {
                try await downloadOnce(descriptor, from: repository, into: sink, operation: operation)
                // A later push to another repository of this registry can mount it from here.
                await blobLocations.record(descriptor.digest, in: repository)
                return sink
            } catch let error as RegistryError where error.isRetryable {
                guard let delay = configuration.retry.delay(after: attempt, retryAfter: nil, random: &random) else { throw error }
                await Self.sleep(seconds: delay)
            }
        }
    }

    private func downloadOnce(_ descriptor: Descriptor, from repository: Repository, into sink: some ByteSink, operation: String)
        async throws
    {
        let registry = repository.registry
        let endpoint = try await endpoint(for: registry)
        var url = endpoint.baseURL + "/v2/\(repository.path)/blobs/\(descriptor.digest)"
        var authorization = try await authorization(endpoint: endpoint, registry: registry, scopes: [Scope.pull(repository)], fresh: false)
        let client = endpoint.unverifiedTLS ? (insecureHTTP ?? http) : http
        for _ in 0..<6 {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "User-Agent", value: configuration.userAgent)
            if let authorization, url.hasPrefix(endpoint.baseURL + "/") { request.headers.add(name: "Authorization", value: authorization) }
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, deadline: .now() + .seconds(configuration.requestTimeout))
            } catch {
                throw Self.classify(error, registry: registry, operation: operation)
            }
            let status = Int(response.status.code)
            if [301, 302, 303, 307, 308].contains(status), let location = response.headers.first(name: "Location") {
                url = location.hasPrefix("/") ? endpoint.baseURL + location : location
                continue
            }
            if status == 401, endpoint.challenge != nil {
                authorization = try await self.authorization(endpoint: endpoint, registry: registry, scopes: [Scope.pull(repository)], fresh: true)
                continue
            }
            guard status == 200 else {
                let body = Array(buffer: (try? await response.body.collect(upTo: 64 << 10)) ?? ByteBuffer())
                throw RegistryResponse(status: status, headers: response.headers, body: body,
                                       url: QueryEncoding.withoutQuery(url), method: "GET").failure(operation)
            }
            let hasher = SHA256Hasher()
            var received: Int64 = 0
            do {
                for try await chunk in response.body {
                    received += Int64(chunk.readableBytes)
                    guard received <= descriptor.size else {
                        throw RegistryError.protocolViolation(host: registry, operation: operation,
                                                              reason: "sent more than the \(descriptor.size) bytes the descriptor names")
                    }
                    try chunk.withUnsafeReadableBytes { bytes in
                        hasher.update(bytes)
                        try sink.write(bytes)
                    }
                }
            } catch let error as RegistryError {
                throw error
            } catch let error as FileError {
                throw error
            } catch {
                throw Self.classify(error, registry: registry, operation: operation)
            }
            let actual = hasher.finalize()
            guard received == descriptor.size, actual == descriptor.digest else {
                throw RegistryError.digestMismatch(operation: operation, expected: descriptor.digest, actual: actual)
            }
            return
        }
        throw RegistryError.protocolViolation(host: registry, operation: operation, reason: "redirected too many times")
    }
}
