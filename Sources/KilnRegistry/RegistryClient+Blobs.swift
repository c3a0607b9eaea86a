import KilnCore
import KilnOCI

/// How a blob came to be in the target repository.
public enum BlobPush: Sendable, Equatable {
    /// The repository had it (`HEAD` answered 200): nothing was sent.
    case alreadyPresent
    /// Mounted from another repository of the same registry: nothing was sent.
    case mounted
    /// Its bytes were uploaded.
    case uploaded(bytes: Int64)
}

/// Where a blob's bytes come from for an upload.
public enum BlobBody: Sendable {
    case bytes([UInt8])
    case file(path: String)
}

/// Which repositories this run has seen each blob in, so a later push to another repository of
/// the same registry can mount it instead of uploading it again.
actor BlobLocations {
    private var repositories = [Digest: [Repository]]()

    func record(_ digest: Digest, in repository: Repository) {
        if !(repositories[digest]?.contains(repository) ?? false) { repositories[digest, default: []].append(repository) }
    }

    func repository(holding digest: Digest, on registry: String, except target: Repository) -> Repository? {
        repositories[digest]?.first { $0.registry == registry && $0 != target }
    }
}

/// Token scopes (distribution `docs/spec/auth/scope.md`).
enum Scope {
    static func pull(_ repository: Repository) -> String { "repository:\(repository.path):pull" }
    static func push(_ repository: Repository) -> String { "repository:\(repository.path):pull,push" }
}

extension RegistryClient {
    /// Whether the repository already holds `digest` (`HEAD /v2/NAME/blobs/DIGEST`).
    public func blobExists(_ digest: Digest, in repository: Repository) async throws(RegistryError) -> Bool {
        let operation = "check blob \(digest.short) in \(repository)"
        let request = RegistryRequest(
            method: .HEAD, target: .path("/v2/\(repository.path)/blobs/\(digest)"), operation: operation,
            scopes: [Scope.push(repository)], idempotent: true)
        let response = try await send(request, to: repository.registry)
        switch response.status {
        case 200: return true
        case 404: return false
        default: throw response.failure(operation)
        }
    }

    /// Makes sure `repository` holds the blob `descriptor` names: skipped when present, mounted
    /// from `mountFrom` (same registry) when possible, uploaded otherwise.
    /// - Throws: `RegistryError`; the upload's digest is checked by the registry and against
    ///   the `Docker-Content-Digest` it reports.
    public func pushBlob(
        _ descriptor: Descriptor, body: BlobBody, to repository: Repository, mountFrom: Repository? = nil
    ) async throws(RegistryError) -> BlobPush {
        let outcome: BlobPush
        // Mount from the repository named, else from one where this run already saw the blob.
        let knownSource = await blobLocations.repository(holding: descriptor.digest, on: repository.registry, except: repository)
        if try await blobExists(descriptor.digest, in: repository) {
            outcome = .alreadyPresent
        } else if let source = mountFrom ?? knownSource, source.registry == repository.registry, source != repository,
            let session = try await mount(descriptor.digest, from: source, into: repository)
        {
            switch session {
            case .mounted: outcome = .mounted
            case let .uploadStarted(location):
                try await upload(descriptor, body: body, to: repository, session: location)
                outcome = .uploaded(bytes: descriptor.size)
            }
        } else {
            try await upload(descriptor, body: body, to: repository, session: nil)
            outcome = .uploaded(bytes: descriptor.size)
        }
        await blobLocations.record(descriptor.digest, in: repository)
        return outcome
    }

    enum MountResult {
        case mounted
        /// The registry could not mount and opened an ordinary upload session instead.
        case uploadStarted(location: String)
    }

    /// `POST /v2/NAME/blobs/uploads/?mount=DIGEST&from=SOURCE`: 201 is a mount, 202 an upload
    /// session. Any failure (including a token server refusing the source scope) returns nil, and
    /// the caller uploads as usual.
    private func mount(_ digest: Digest, from source: Repository, into repository: Repository) async throws(RegistryError)
        -> MountResult?
    {
        let request = RegistryRequest(
            method: .POST,
            target: .path("/v2/\(repository.path)/blobs/uploads/", query: [("mount", digest.description), ("from", source.path)]),
            operation: "mount blob \(digest.short) from \(source) into \(repository)",
            scopes: [Scope.push(repository), Scope.pull(source)], idempotent: false)
        guard let response = try? await send(request, to: repository.registry) else { return nil }
        switch response.status {
        case 201: return .mounted
        case 202: return response.header("Location").map { .uploadStarted(location: $0) }
        default: return nil
        }
    }
}
