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
    package func downloadBlob<Sink: ByteSink>(
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
            } catch {
                // A body that broke off midway: start over into a fresh sink. Everything else
                // (before the body) was retried by `send` already.
                guard case .bodyInterrupted(let cause) = error, cause.isRetryable,
                    let delay = configuration.retry.delay(after: attempt, retryAfter: nil, random: &random)
                else { throw error }
                try await Self.sleep(seconds: delay)
            }
        }
    }

    /// What one attempt has read so far (the consumer is its only user, one chunk at a time).
    private final class Progress: @unchecked Sendable {
        let sink: any ByteSink
        let hasher = SHA256Hasher()
        var received: Int64 = 0

        init(sink: any ByteSink) { self.sink = sink }
    }

    private func downloadOnce(
        _ descriptor: Descriptor, from repository: Repository, into sink: some ByteSink, operation: String
    )
        async throws(RegistryError)
    {
        var request = RegistryRequest(
            method: .GET, target: .path("/v2/\(repository.path)/blobs/\(descriptor.digest)"), operation: operation,
            scopes: [Scope.pull(repository)], idempotent: true)
        request.followsRedirects = true
        let progress = Progress(sink: sink)
        let (registry, size) = (repository.registry, descriptor.size)
        let response = try await send(request, to: registry) { body in
            for try await chunk in body {
                progress.received += Int64(chunk.readableBytes)
                guard progress.received <= size else {
                    throw RegistryError.protocolViolation(
                        host: registry, operation: operation,
                        reason: "sent more than the \(size) bytes the descriptor names")
                }
                try chunk.withUnsafeReadableBytes { bytes in
                    progress.hasher.update(bytes)
                    try progress.sink.write(bytes)
                }
            }
        }
        try response.expect([200], operation)
        let actual = progress.hasher.finalize()
        guard progress.received == descriptor.size, actual == descriptor.digest else {
            throw .digestMismatch(operation: operation, expected: descriptor.digest, actual: actual)
        }
    }
}
