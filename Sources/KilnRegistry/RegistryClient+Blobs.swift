import KilnCore
import KilnOCI

/// How a blob came to be in the target repository.
package enum BlobPush: Sendable, Equatable {
    /// The repository had it (`HEAD` answered 200): nothing was sent.
    case alreadyPresent
    /// Mounted from another repository of the same registry: nothing was sent.
    case mounted
    /// Its bytes were uploaded.
    case uploaded(bytes: Int64)
}

/// Where a blob's bytes come from for an upload.
package enum BlobBody: Sendable {
    case bytes([UInt8])
    case file(path: String)
    /// A blob the caller does not hold yet: the file `fetch` makes, asked for only when the
    /// registry neither has the blob nor can mount it (so it must be uploaded).
    case deferred(@Sendable () async throws(RegistryError) -> String)
}

extension RegistryClient {
    /// Notes that `repository` holds the blob `digest` (its manifest lists it), so a push to
    /// another repository of the same registry mounts it from there.
    package func noteBlob(_ digest: Digest, in repository: Repository) async {
        await blobLocations.record(digest, in: repository)
    }
}

/// Which repositories this run has seen each blob in, so a later push to another repository of
/// the same registry can mount it instead of uploading it again.
actor BlobLocations {
    private var repositories = [Digest: [Repository]]()

    func record(_ digest: Digest, in repository: Repository) {
        if !(repositories[digest]?.contains(repository) ?? false) {
            repositories[digest, default: []].append(repository)
        }
    }

    func repository(holding digest: Digest, on registry: String, except target: Repository) -> Repository? {
        repositories[digest]?.first { $0.registry == registry && $0 != target }
    }
}

/// Blob pushes under way in this run, one per (repository, digest). A second push of the same
/// blob into the same repository waits for the first and then finds the blob there, instead of
/// uploading (or mounting) it a second time at once: distribution writes a repository's blob link
/// non-atomically, and a manifest `PUT` that reads it while another upload of the same blob
/// commits is refused with `DIGEST_INVALID`.
actor BlobFlights {
    private struct Key: Hashable {
        var repository: Repository
        var digest: Digest
    }

    private var flights = [Key: Task<BlobPush, any Error>]()

    /// Runs `push` once no other push of the same blob into the same repository is under way.
    func run(_ digest: Digest, in repository: Repository, _ push: @escaping @Sendable () async throws -> BlobPush)
        async throws -> BlobPush
    {
        let key = Key(repository: repository, digest: digest)
        // Pushes of one blob run one after the other, in the order they were asked for; each
        // starts over whatever the earlier one's outcome (and finds the blob with `HEAD` when
        // the earlier one landed it).
        let earlier = flights[key]
        let task = Task {
            _ = await earlier?.result
            return try await push()
        }
        flights[key] = task
        let result = await task.result
        if flights[key] == task { flights[key] = nil }
        return try result.get()
    }
}

/// Token scopes (distribution `docs/spec/auth/scope.md`).
enum Scope {
    static func pull(_ repository: Repository) -> String { "repository:\(repository.path):pull" }
    static func push(_ repository: Repository) -> String { "repository:\(repository.path):pull,push" }
}

extension RegistryClient {
    /// Whether the repository already holds `digest` (`HEAD /v2/NAME/blobs/DIGEST`).
    package func blobExists(_ digest: Digest, in repository: Repository) async throws(RegistryError) -> Bool {
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
    package func pushBlob(
        _ descriptor: Descriptor, body: BlobBody, to repository: Repository, mountFrom: Repository? = nil
    ) async throws(RegistryError) -> BlobPush {
        do {
            return try await blobFlights.run(descriptor.digest, in: repository) {
                try await self.pushBlobNow(descriptor, body: body, to: repository, mountFrom: mountFrom)
            }
        } catch let error as RegistryError {
            throw error
        } catch {
            throw .connection(
                host: repository.registry, operation: "push blob \(descriptor.digest.short)", reason: "\(error)")
        }
    }

    private func pushBlobNow(
        _ descriptor: Descriptor, body: BlobBody, to repository: Repository, mountFrom: Repository?
    ) async throws(RegistryError) -> BlobPush {
        let outcome: BlobPush
        // Mount from a repository where this run saw the blob (pushed or pulled it), else from the
        // one the caller names as likely to hold it.
        let knownSource = await blobLocations.repository(
            holding: descriptor.digest, on: repository.registry, except: repository)
        func concrete() async throws(RegistryError) -> BlobBody {
            if case .deferred(let fetch) = body { return .file(path: try await fetch()) }
            return body
        }
        if try await blobExists(descriptor.digest, in: repository) {
            outcome = .alreadyPresent
        } else if let source = knownSource ?? mountFrom, source.registry == repository.registry, source != repository,
            let session = try await mount(descriptor.digest, from: source, into: repository)
        {
            switch session {
            case .mounted: outcome = .mounted
            case .uploadStarted(let location):
                try await upload(descriptor, body: try await concrete(), to: repository, session: location)
                outcome = .uploaded(bytes: descriptor.size)
            }
        } else {
            try await upload(descriptor, body: try await concrete(), to: repository, session: nil)
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
    private func mount(_ digest: Digest, from source: Repository, into repository: Repository)
        async throws(RegistryError)
        -> MountResult?
    {
        let request = RegistryRequest(
            method: .POST,
            target: .path(
                "/v2/\(repository.path)/blobs/uploads/", query: [("mount", digest.description), ("from", source.path)]),
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
