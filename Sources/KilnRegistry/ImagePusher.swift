import KilnCore
import KilnOCI

/// What a push did.
package struct PushReport: Sendable {
    package var reference: ImageReference
    /// The top-level descriptor pushed (index or manifest).
    package var root: Descriptor
    /// Each platform's manifest digest (empty platform for a single manifest without one).
    package var platforms: [(platform: Platform?, digest: Digest)]
    package var uploaded = 0
    package var skipped = 0
    package var mounted = 0
    package var bytesUploaded: Int64 = 0
    /// The tag already named this image; nothing was sent.
    package var alreadyPresent = false
}

/// Pushes an image (an index with its manifests, or one manifest) from a blob source to a
/// repository, in the order registries require: blobs, then each platform manifest by digest,
/// then the top level under the tag. Blobs go up in parallel, `uploadJobs` at a time, each one only
/// once even when several platforms share it.
package struct ImagePusher: Sendable {
    package let client: RegistryClient

    package init(client: RegistryClient) { self.client = client }

    /// - Parameters:
    ///   - root: the index or manifest to push, as listed in the source.
    ///   - target: where; its tag names the result (a digest-only target pushes untagged).
    ///   - mountFrom: another repository of the same registry that may hold the blobs already.
    ///   - puttingRoot: false: everything the root lists, but not the root itself (the caller
    ///     puts it later, under a tag that must come last).
    package func push(
        _ root: Descriptor, from source: some BlobSource, to target: ImageReference,
        mountFrom: Repository? = nil, puttingRoot: Bool = true
    ) async throws -> PushReport {
        let rootBytes = try source.readBlob(root.digest, limit: RegistryClient.manifestLimit)
        if let tag = target.tag,
            let current = try await client.headManifest(ImageReference(repository: target.repository, tag: tag)),
            current.digest == root.digest
        {
            // The tag already names this exact image: the registry holds everything it lists
            // (it refuses manifests whose children are missing), so there is nothing to send.
            return PushReport(
                reference: target, root: root, platforms: try Self.platforms(root, rootBytes), alreadyPresent: true)
        }
        var children = [(descriptor: Descriptor, bytes: [UInt8])]()
        var blobs = [Descriptor]()
        if root.mediaType.isIndex {
            let index = try CanonicalJSON.decode(ImageIndex.self, from: rootBytes, what: "index \(root.digest)")
            for entry in index.manifests {
                let bytes = try source.readBlob(entry.digest, limit: RegistryClient.manifestLimit)
                children.append((entry, bytes))
                blobs += try Self.blobs(of: bytes, digest: entry.digest)
            }
        } else {
            blobs = try Self.blobs(of: rootBytes, digest: root.digest)
        }
        var unique = [Digest: Descriptor]()
        for blob in blobs { unique[blob.digest] = blob }

        var report = PushReport(reference: target, root: root, platforms: [])
        let outcomes = try await pushBlobs(
            Array(unique.values), from: source, to: target.repository, mountFrom: mountFrom)
        for outcome in outcomes {
            switch outcome {
            case .alreadyPresent: report.skipped += 1
            case .mounted: report.mounted += 1
            case .uploaded(let bytes):
                report.uploaded += 1
                report.bytesUploaded += bytes
            }
        }
        for child in children {
            try await putManifest(
                child.bytes, mediaType: child.descriptor.mediaType, to: target.repository,
                reference: child.descriptor.digest.description, from: source)
            report.platforms.append((child.descriptor.platform, child.descriptor.digest))
        }
        let reference = target.tag ?? root.digest.description
        if puttingRoot {
            try await putManifest(
                rootBytes, mediaType: root.mediaType, to: target.repository, reference: reference, from: source)
        }
        if children.isEmpty { report.platforms.append((root.platform, root.digest)) }
        return report
    }

    /// The platform manifests an index lists, or the manifest itself.
    static func platforms(_ root: Descriptor, _ bytes: [UInt8]) throws -> [(platform: Platform?, digest: Digest)] {
        guard root.mediaType.isIndex else { return [(root.platform, root.digest)] }
        let index = try CanonicalJSON.decode(ImageIndex.self, from: bytes, what: "index \(root.digest)")
        return index.manifests.map { ($0.platform, $0.digest) }
    }

    /// The config and layers a manifest lists (foreign layers with URLs are not pushed).
    static func blobs(of manifestBytes: [UInt8], digest: Digest) throws -> [Descriptor] {
        let manifest = try CanonicalJSON.decode(ImageManifest.self, from: manifestBytes, what: "manifest \(digest)")
        return [manifest.config] + manifest.layers.filter { $0.urls?.isEmpty ?? true }
    }

    private func pushBlobs(
        _ blobs: [Descriptor], from source: some BlobSource, to repository: Repository,
        mountFrom: Repository?
    ) async throws -> [BlobPush] {
        let width = max(1, client.configuration.uploadJobs)
        let ordered = blobs.sorted { $0.size > $1.size }  // start the big ones first
        let client = self.client
        return try await ordered.mapConcurrently(width: width) { blob in
            // Streamed unread: the registry hashes what arrives and refuses a mismatch. A blob
            // the source does not hold (a layer left in its registry) is fetched only when it
            // must be uploaded.
            let body: BlobBody
            if let path = try? source.blobFile(blob.digest) {
                body = .file(path: path)
            } else {
                body = .deferred { () throws(RegistryError) -> String in
                    do {
                        return try await source.fetchBlob(blob)
                    } catch let error as RegistryError {
                        throw error
                    } catch {
                        throw .sink("\(error)", category: .io)
                    }
                }
            }
            do {
                return try await client.pushBlob(blob, body: body, to: repository, mountFrom: mountFrom)
            } catch let error as RegistryError where error.registryCode == "DIGEST_INVALID" {
                _ = try source.verifiedBlobPath(blob.digest)  // throws, naming the file, when it is corrupt
                throw error
            }
        }
    }

    /// How often a manifest `PUT` is retried after the registry called one of its blobs invalid
    /// or unknown.
    static let manifestRecheckBudget = 4

    /// `PUT`s a manifest or index whose blobs (or child manifests) were pushed before it. A
    /// registry may still refuse it with `DIGEST_INVALID` or `MANIFEST_BLOB_UNKNOWN` while another
    /// upload of one of those blobs commits (another runner, another kiln): each such refusal
    /// re-checks what the manifest lists with `HEAD`, pushes again from `source` whatever is
    /// missing, and retries, a bounded number of times.
    package func putManifest(
        _ bytes: [UInt8], mediaType: MediaType, to repository: Repository, reference: String,
        from source: some BlobSource
    ) async throws {
        var attempt = 0
        var random = SystemRandomNumberGenerator()
        while true {
            attempt += 1
            do {
                try await client.putManifest(bytes, mediaType: mediaType, to: repository, reference: reference)
                return
            } catch {
                guard Self.isReferenceRefusal(error), attempt < Self.manifestRecheckBudget else { throw error }
                let delay =
                    RetryPolicy(maxAttempts: Self.manifestRecheckBudget, baseDelay: 0.25, maxDelay: 2)
                    .delay(after: attempt, retryAfter: nil, random: &random) ?? 0
                try await RegistryClient.sleep(seconds: delay)
                try await restoreReferences(of: bytes, mediaType: mediaType, in: repository, from: source)
            }
        }
    }

    /// The refusals that mean "something this manifest lists is not (yet, or no longer) there".
    static func isReferenceRefusal(_ error: RegistryError) -> Bool {
        ["DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "MANIFEST_UNKNOWN"].contains(
            error.registryCode ?? "")
    }

    static func isReferenceRefusal(_ error: any Error) -> Bool {
        (error as? RegistryError).map(isReferenceRefusal) ?? false
    }

    /// Makes sure every blob (or, for an index, every child manifest) that `bytes` lists is in
    /// `repository`, pushing from `source` what a `HEAD` does not find.
    private func restoreReferences(
        of bytes: [UInt8], mediaType: MediaType, in repository: Repository, from source: some BlobSource
    )
        async throws
    {
        if mediaType.isIndex {
            let index = try CanonicalJSON.decode(ImageIndex.self, from: bytes, what: "index")
            for child in index.manifests
            where try await client.headManifest(ImageReference(repository: repository, digest: child.digest)) == nil {
                let childBytes = try source.readBlob(child.digest, limit: RegistryClient.manifestLimit)
                try await putManifest(
                    childBytes, mediaType: child.mediaType, to: repository, reference: child.digest.description,
                    from: source)
            }
            return
        }
        for blob in try Self.blobs(of: bytes, digest: Digest.sha256(of: bytes)) {
            // A fresh push: HEAD first, so a blob that is there costs one request.
            _ = try await client.pushBlob(blob, body: .file(path: try source.blobFile(blob.digest)), to: repository)
        }
    }
}
