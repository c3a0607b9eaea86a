import KilnCore
import KilnOCI

/// A manifest or index as the registry sent it: exact bytes, their digest and media type.
package struct FetchedManifest: Sendable {
    package let bytes: [UInt8]
    package let mediaType: MediaType
    package let digest: Digest

    package var descriptor: Descriptor { Descriptor(mediaType: mediaType, digest: digest, size: Int64(bytes.count)) }
}

extension RegistryClient {
    /// Every manifest type kiln reads. Without the OCI index type, distribution, GHCR and Docker
    /// Hub answer 404 for multi-platform tags.
    static let manifestAccept = [MediaType.ociIndex, .ociManifest, .dockerManifestList, .dockerManifest]
        .map(\.rawValue).joined(separator: ", ")

    /// The largest manifest kiln reads (registries cap them at 4 MiB).
    static let manifestLimit = 8 << 20

    /// `fetchManifest`, nil when the registry has no such manifest (404): one request, not a
    /// `HEAD` and a `GET`.
    package func fetchManifestIfPresent(_ reference: ImageReference) async throws(RegistryError) -> FetchedManifest? {
        do {
            return try await fetchManifest(reference)
        } catch {
            guard case .http(let failure) = error, failure.status == 404 else { throw error }
            return nil
        }
    }

    /// `GET /v2/NAME/manifests/REFERENCE`. Fetched by digest, the bytes must hash to it; by tag,
    /// to the `Docker-Content-Digest` the registry reports, when it reports one.
    package func fetchManifest(_ reference: ImageReference) async throws(RegistryError) -> FetchedManifest {
        let repository = reference.repository
        let operation = "fetch manifest \(reference)"
        let request = RegistryRequest(
            method: .GET, target: .path("/v2/\(repository.path)/manifests/\(reference.manifestReference)"),
            headers: [("Accept", Self.manifestAccept)], operation: operation, scopes: [Scope.pull(repository)],
            idempotent: true, maxResponseBody: Self.manifestLimit)
        let response = try await send(request, to: repository.registry)
        try response.expect([200], operation)
        let digest = Digest.sha256(of: response.body)
        if let expected = reference.digest
            ?? response.header("Docker-Content-Digest").flatMap({ try? Digest(parsing: $0) }),
            expected != digest
        {
            throw .digestMismatch(operation: operation, expected: expected, actual: digest)
        }
        let mediaType =
            response.header("Content-Type").map(MediaType.init(contentType:))
            .flatMap { $0.isIndex || $0.isImageManifest ? $0 : nil }
            ?? Self.declaredMediaType(response.body) ?? .ociManifest
        return FetchedManifest(bytes: response.body, mediaType: mediaType, digest: digest)
    }

    /// `HEAD /v2/NAME/manifests/REFERENCE`: the descriptor, or nil when there is no such manifest.
    /// Falls back to `GET` when the registry sends no `Docker-Content-Digest` or no length.
    package func headManifest(_ reference: ImageReference) async throws(RegistryError) -> Descriptor? {
        let repository = reference.repository
        let operation = "check manifest \(reference)"
        let request = RegistryRequest(
            method: .HEAD, target: .path("/v2/\(repository.path)/manifests/\(reference.manifestReference)"),
            headers: [("Accept", Self.manifestAccept)], operation: operation, scopes: [Scope.pull(repository)],
            idempotent: true)
        let response = try await send(request, to: repository.registry)
        if response.status == 404 { return nil }
        try response.expect([200], operation)
        guard let digest = response.header("Docker-Content-Digest").flatMap({ try? Digest(parsing: $0) }),
            let size = response.header("Content-Length").flatMap({ Int64($0) }), size > 0
        else {
            // (No manifest is empty: a length of 0 is a proxy that dropped the real one.)
            return try await fetchManifest(reference).descriptor
        }
        let mediaType = response.header("Content-Type").map(MediaType.init(contentType:)) ?? .ociManifest
        return Descriptor(mediaType: mediaType, digest: digest, size: size)
    }

    /// `PUT /v2/NAME/manifests/REFERENCE` with exactly `bytes`, typed as their own `mediaType`.
    /// Returns the digest kiln computed, after checking the registry agrees.
    @discardableResult
    package func putManifest(_ bytes: [UInt8], mediaType: MediaType, to repository: Repository, reference: String)
        async throws(RegistryError) -> Digest
    {
        let digest = Digest.sha256(of: bytes)
        let operation = "push manifest \(digest.short) to \(repository):\(reference)"
        let request = RegistryRequest(
            method: .PUT, target: .path("/v2/\(repository.path)/manifests/\(reference)"),
            headers: [("Content-Type", mediaType.rawValue)], body: .bytes(bytes), operation: operation,
            scopes: [Scope.push(repository)], idempotent: true)
        let response = try await send(request, to: repository.registry)
        try response.expect([201, 200, 204], operation)
        try Self.checkReportedDigest(response, expected: digest, operation: operation)
        return digest
    }

    /// `GET /v2/NAME/referrers/DIGEST` (distribution spec v1.1): the manifests whose `subject` is
    /// `digest`, or nil when the registry has no referrers API (distribution 2.8 and GHCR answer
    /// 404; then the `sha256-HEX` tag stands in for it, `referrersTag`).
    package func referrers(of digest: Digest, in repository: Repository) async throws(RegistryError) -> [Descriptor]? {
        let operation = "list referrers of \(digest.short) in \(repository)"
        let request = RegistryRequest(
            method: .GET, target: .path("/v2/\(repository.path)/referrers/\(digest)"),
            headers: [("Accept", MediaType.ociIndex.rawValue)], operation: operation,
            scopes: [Scope.pull(repository)], idempotent: true, maxResponseBody: Self.manifestLimit)
        // A registry with the API never answers 404 for a repository it has (distribution spec
        // v1.1): once a host has, its other referrers requests are not sent.
        let host = repository.registry
        if await endpoints.lacksReferrersAPI(host) { return nil }
        let endpoints = self.endpoints
        @Sendable func answer() async throws(RegistryError) -> RegistryResponse {
            let response = try await send(request, to: host)
            if response.status == 404 || response.status == 405,
                response.failure(operation).registryCode != "NAME_UNKNOWN"
            {
                await endpoints.learnLacksReferrersAPI(host)
            }
            return response
        }
        let probe = await endpoints.probeReferrers(host) { try? await answer() }
        let response: RegistryResponse
        if probe.made, let answered = probe.response {
            response = answered
        } else {
            if await endpoints.lacksReferrersAPI(host) { return nil }
            response = try await answer()
        }
        if response.status == 404 || response.status == 405 { return nil }
        try response.expect([200], operation)
        guard let index = try? CanonicalJSON.decode(ImageIndex.self, from: response.body, what: "referrers") else {
            return nil
        }
        return index.manifests
    }

    /// The tag that lists the referrers of `digest` where a registry has no referrers API
    /// (distribution spec v1.1, "Referrers Tag Schema"): `sha256-HEX`, an index.
    package static func referrersTag(_ digest: Digest) -> String { "sha256-" + digest.hex }

    /// A small blob's bytes (an image config), verified against its digest. Follows a redirect
    /// to a storage URL without sending credentials there.
    package func fetchBlob(_ digest: Digest, from repository: Repository, limit: Int = 16 << 20)
        async throws(RegistryError) -> [UInt8]
    {
        let operation = "fetch blob \(digest.short) from \(repository)"
        var request = RegistryRequest(
            method: .GET, target: .path("/v2/\(repository.path)/blobs/\(digest)"), operation: operation,
            scopes: [Scope.pull(repository)], idempotent: true, maxResponseBody: limit)
        request.followsRedirects = true
        let response = try await send(request, to: repository.registry)
        try response.expect([200], operation)
        let actual = Digest.sha256(of: response.body)
        guard actual == digest else { throw .digestMismatch(operation: operation, expected: digest, actual: actual) }
        return response.body
    }

    /// The `mediaType` a manifest declares in its body, for registries that send a vague Content-Type.
    static func declaredMediaType(_ bytes: [UInt8]) -> MediaType? {
        struct Probe: Decodable { var mediaType: MediaType? }
        return try? CanonicalJSON.decode(Probe.self, from: bytes, what: "manifest").mediaType
    }
}
