import KilnCore
import KilnOCI

/// An open upload session (distribution-spec "Pushing blobs").
struct UploadSession {
    /// The latest `Location`: some registries keep state in it, so a stale one fails.
    var location: String
    /// `OCI-Chunk-Min-Length`, when the registry sets one.
    var minimumChunk: Int64?
}

extension RegistryClient {
    /// Uploads a blob, in one `PUT` or in `PATCH` chunks depending on its size and the host's
    /// chunk size. A transient failure, or a session the registry lost, abandons the session
    /// (`DELETE`) and starts a new one, a bounded number of times; a 413 (body too large) makes
    /// every later upload to that host chunked, smaller.
    func upload(_ descriptor: Descriptor, body: BlobBody, to repository: Repository, session: String?)
        async throws(RegistryError)
    {
        var pending = session
        var attempt = 0
        var random = SystemRandomNumberGenerator()
        while true {
            attempt += 1
            var current: UploadSession?
            do {
                let open: UploadSession
                if let location = pending {
                    open = UploadSession(location: location)
                } else {
                    open = try await startUpload(to: repository)
                }
                pending = nil
                current = open
                let chunk = await chunkSize(for: repository.registry)
                if let chunk, descriptor.size > Int64(chunk) {
                    try await uploadChunks(
                        descriptor, body: body, to: repository, session: open, chunkSize: Int64(chunk))
                } else {
                    try await uploadWhole(descriptor, body: body, to: repository, session: open)
                }
                return
            } catch {
                if let current { await cancelUpload(current, in: repository) }
                if case .http(let failure) = error, Self.isBodyTooLarge(failure) {
                    await shrinkChunkSize(for: repository.registry)
                    guard attempt < 8 else { throw error }
                    continue
                }
                // A digest the registry rejects is tried once more from scratch (a proxy or a resume
                // may have garbled it); twice means the local bytes are wrong, for the caller to check.
                let sessionLost = Self.isLostSession(error) && !(error.registryCode == "DIGEST_INVALID" && attempt > 1)
                guard error.isRetryable || sessionLost,
                    let delay = configuration.retry.delay(after: attempt, retryAfter: nil, random: &random)
                else { throw error }
                logger.debug("restarting upload", metadata: ["blob": "\(descriptor.digest)", "error": "\(error)"])
                try await Self.sleep(seconds: delay)
            }
        }
    }

    /// A body over the registry's per-request cap: 413 from proxies, and GHCR's 416
    /// "the request body is too large and exceeds the maximum permissible limit".
    static func isBodyTooLarge(_ failure: RegistryError.Failure) -> Bool {
        failure.status == 413 || (failure.status == 416 && (failure.message ?? "").lowercased().contains("too large"))
    }

    private static func isLostSession(_ error: RegistryError) -> Bool {
        guard case .http(let failure) = error, let code = failure.code else { return false }
        // DIGEST_INVALID at the end: the bytes the registry assembled were not the blob (a
        // proxy or a resume went wrong); a fresh session sends them again from the start.
        return code == "BLOB_UPLOAD_INVALID" || code == "BLOB_UPLOAD_UNKNOWN" || code == "DIGEST_INVALID"
    }

    /// `POST /v2/NAME/blobs/uploads/` → 202 with the session's `Location`.
    func startUpload(to repository: Repository) async throws(RegistryError) -> UploadSession {
        let operation = "start an upload to \(repository)"
        let request = RegistryRequest(
            method: .POST, target: .path("/v2/\(repository.path)/blobs/uploads/"), operation: operation,
            scopes: [Scope.push(repository)], idempotent: true)
        let response = try await send(request, to: repository.registry)
        try response.expect([202], operation)
        guard let location = response.header("Location") else {
            throw .protocolViolation(
                host: repository.registry, operation: operation, reason: "sent 202 without a Location")
        }
        return UploadSession(
            location: location, minimumChunk: response.header("OCI-Chunk-Min-Length").flatMap { Int64($0) })
    }

    /// `PUT LOCATION?digest=…` with the whole blob.
    private func uploadWhole(
        _ descriptor: Descriptor, body: BlobBody, to repository: Repository, session: UploadSession
    )
        async throws(RegistryError)
    {
        let operation = "upload blob \(descriptor.digest.short) to \(repository)"
        let request = RegistryRequest(
            method: .PUT, target: .location(session.location, query: [("digest", descriptor.digest.description)]),
            headers: [("Content-Type", "application/octet-stream")], body: body.range(0, descriptor.size),
            operation: operation, scopes: [Scope.push(repository)], idempotent: false)
        let response = try await send(request, to: repository.registry)
        try response.expect([201, 204], operation)
        try Self.checkReportedDigest(response, expected: descriptor.digest, operation: operation)
    }

    /// `PATCH`es in order with `Content-Range`, taking the next offset from the registry's
    /// `Range`; a broken `PATCH` is resumed from what `GET LOCATION` says arrived. Ends with
    /// `PUT LOCATION?digest=…`.
    private func uploadChunks(
        _ descriptor: Descriptor, body: BlobBody, to repository: Repository, session: UploadSession, chunkSize: Int64
    ) async throws(RegistryError) {
        let operation = "upload blob \(descriptor.digest.short) to \(repository)"
        let chunk = max(chunkSize, session.minimumChunk ?? 0)
        var location = session.location
        var offset: Int64 = 0
        var failures = 0  // in a row, for the current chunk
        var random = SystemRandomNumberGenerator()
        while offset < descriptor.size {
            let length = min(chunk, descriptor.size - offset)
            let request = RegistryRequest(
                method: .PATCH, target: .location(location),
                headers: [
                    ("Content-Type", "application/octet-stream"), ("Content-Range", "\(offset)-\(offset + length - 1)"),
                ],
                body: body.range(offset, length), operation: operation, scopes: [Scope.push(repository)],
                idempotent: false)
            var failure: RegistryError?
            do throws(RegistryError) {
                let response = try await send(request, to: repository.registry)
                if [202, 201, 204].contains(response.status) {
                    location = response.header("Location") ?? location
                    offset = Self.nextOffset(fromRange: response.header("Range")) ?? offset + length
                    failures = 0
                    continue
                }
                let refused = response.failure(operation)
                if case .http(let details) = refused, Self.isBodyTooLarge(details) { throw refused }
                guard response.status == 416 || refused.isRetryable else { throw refused }
                failure = refused
            } catch {
                guard error.isRetryable else { throw error }
                failure = error
            }
            // The chunk did not land, or not all of it: ask the registry how far it got and go on
            // from there, after a pause that grows while the same chunk keeps failing.
            failures += 1
            guard failures <= Self.chunkFailureBudget,
                let delay = RetryPolicy(maxAttempts: Self.chunkFailureBudget + 1, baseDelay: 0.2, maxDelay: 4)
                    .delay(after: failures, retryAfter: nil, random: &random)
            else { throw failure! }
            logger.debug(
                "resuming chunked upload", metadata: ["blob": "\(descriptor.digest)", "failure": "\(failure!)"])
            try await Self.sleep(seconds: delay)
            (location, offset) = try await uploadStatus(location, in: repository, operation: operation)
        }
        let finish = RegistryRequest(
            method: .PUT, target: .location(location, query: [("digest", descriptor.digest.description)]),
            headers: [("Content-Type", "application/octet-stream")], operation: operation,
            scopes: [Scope.push(repository)], idempotent: false)
        let response = try await send(finish, to: repository.registry)
        try response.expect([201, 204], operation)
        try Self.checkReportedDigest(response, expected: descriptor.digest, operation: operation)
    }

    /// How often one chunk may fail in a row before the upload starts over.
    static let chunkFailureBudget = 8

    /// `GET LOCATION` → 204 with `Range: 0-END`: where to resume.
    private func uploadStatus(_ location: String, in repository: Repository, operation: String)
        async throws(RegistryError) -> (String, Int64)
    {
        let request = RegistryRequest(
            method: .GET, target: .location(location), operation: operation, scopes: [Scope.push(repository)],
            idempotent: true)
        let response = try await send(request, to: repository.registry)
        try response.expect([204], operation)
        // distribution answers "0-0" both for an empty session and for one holding one byte;
        // kiln never sends a one-byte chunk, so "0-0" here means nothing arrived.
        let range = response.header("Range")
        let offset = range == "0-0" ? 0 : Self.nextOffset(fromRange: range) ?? 0
        return (response.header("Location") ?? location, offset)
    }

    /// `DELETE LOCATION`, best effort: an abandoned session expires on its own anyway.
    private func cancelUpload(_ session: UploadSession, in repository: Repository) async {
        let request = RegistryRequest(
            method: .DELETE, target: .location(session.location), operation: "cancel an upload to \(repository)",
            scopes: [Scope.push(repository)], idempotent: false)
        _ = try? await send(request, to: repository.registry)
    }

    /// `Range: 0-END` (inclusive) means the next byte to send is END+1.
    static func nextOffset(fromRange header: String?) -> Int64? {
        guard let header, let dash = header.lastIndex(of: "-"), let end = Int64(header[header.index(after: dash)...])
        else {
            return nil
        }
        return end + 1
    }

    static func checkReportedDigest(_ response: RegistryResponse, expected: Digest, operation: String)
        throws(RegistryError)
    {
        guard let reported = response.header("Docker-Content-Digest") else { return }
        guard let digest = try? Digest(parsing: reported) else { return }
        guard digest == expected else {
            throw .digestMismatch(operation: operation, expected: expected, actual: digest)
        }
    }

    /// The chunk size for `registry`: one a "too large" answer taught during this run, else the
    /// configured one (0 or less: never chunk).
    func chunkSize(for registry: String) async -> Int? {
        if let learned = await endpoints.learnedChunkSize(registry) { return learned }
        return configuration.chunkSize > 0 ? configuration.chunkSize : nil
    }

    private func shrinkChunkSize(for registry: String) async {
        let current = await chunkSize(for: registry)
        let next = current.map { max($0 / 2, 256 << 10) } ?? RegistryConfiguration.cappedChunkSize
        await endpoints.learnChunkSize(registry, next)
    }
}

extension BlobBody {
    func range(_ offset: Int64, _ length: Int64) -> RegistryRequest.Body {
        switch self {
        case .bytes(let bytes): .bytes(Array(bytes[Int(offset)..<Int(offset + length)]))
        case .file(let path): .file(path: path, offset: offset, length: length)
        case .deferred: preconditionFailure("a deferred body is made concrete before its upload")
        }
    }
}
