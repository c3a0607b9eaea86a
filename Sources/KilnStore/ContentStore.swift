import KilnCore
import KilnOCI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Kiln's local content-addressed store: blobs named by their SHA-256, and a small index from
/// cache keys to records (see `cache/README.md` for the layout on disk).
///
/// Writes are atomic (temporary file in the same directory, `fsync`, `rename`), so a reader or a
/// killed writer never sees half a blob. Reads are verified: a blob whose bytes do not hash to its
/// name is reported, removed, and never returned. Several kiln processes can share one store;
/// they coordinate through an advisory lock file (`StoreLock`) where renames alone are not enough.
package struct ContentStore: Sendable {
    /// The store's directory.
    package let root: String

    /// Opens (creating if needed) the store at `root`.
    /// - Throws: `StoreError.unusable` when the directories cannot be created.
    package init(root: String) throws(StoreError) {
        self.root = root
        do {
            try FilePaths.makeDirectories(blobDirectory)
            try FilePaths.makeDirectories(FilePaths.join(root, "keys"))
        } catch {
            throw .unusable(root: root, error)
        }
    }

    /// Where the store lives when no `--cache-dir` is given: `$KILN_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`.
    package static func defaultRoot(environment: [String: String]) -> String {
        if let explicit = environment["KILN_CACHE_DIR"], !explicit.isEmpty { return explicit }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return FilePaths.join(xdg, "kiln") }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "/root"
        return FilePaths.join(home, ".cache/kiln")
    }

    var blobDirectory: String { FilePaths.join(root, "blobs/sha256") }

    /// The file holding a blob (which may not exist; use `verifiedPath` to read).
    package func blobPath(_ digest: Digest) -> String { FilePaths.join(blobDirectory, digest.hex) }

    /// Where the member index of a layer blob is kept (`index/XX/HEX.members`).
    package func memberIndexPath(_ digest: Digest) -> String {
        FilePaths.join(root, "index/\(digest.hex.prefix(2))/\(digest.hex).members")
    }

    /// Whether a blob is present, without reading it.
    package func contains(_ digest: Digest) -> Bool { FilePaths.exists(blobPath(digest)) }

    /// The size of a present blob.
    package func size(of digest: Digest) -> Int64? { FilePaths.fileSize(blobPath(digest)) }

    /// Starts writing a new blob; its name is settled by its content at `commit`.
    package func beginIngest() throws(StoreError) -> BlobIngest {
        do {
            return try BlobIngest(store: self)
        } catch {
            throw .unusable(root: root, error)
        }
    }

    /// Stores bytes held in memory (configs, manifests) and returns their descriptor.
    package func put(_ bytes: [UInt8], mediaType: MediaType) throws(StoreError) -> Descriptor {
        let ingest = try beginIngest()
        try ingest.writeOrThrow(bytes)
        let (digest, size) = try ingest.commit()
        return Descriptor(mediaType: mediaType, digest: digest, size: size)
    }

    /// Copies a file into the store.
    /// - Parameter expected: when given, the file must hash to it or nothing is stored.
    package func putFile(at path: String, expected: Digest? = nil) throws(StoreError) -> (digest: Digest, size: Int64) {
        let ingest = try beginIngest()
        do {
            try ReadableFile(path: path).forEachChunk { chunk in try ingest.write(chunk) }
        } catch let error as FileError {
            throw .unreadable(path: path, error)
        } catch {
            throw .unreadable(path: path, FileError("read", path: path, code: EIO))
        }
        return try ingest.commit(expected: expected)
    }

    /// The path of a blob whose bytes have just been checked against its digest.
    /// - Throws: `StoreError.missingBlob`, or `.corruptBlob` after removing a blob that does not
    ///   match its name, so the next run fetches or builds it again.
    package func verifiedPath(_ digest: Digest) throws(StoreError) -> String {
        let path = blobPath(digest)
        guard FilePaths.exists(path) else { throw .missingBlob(digest) }
        let actual: Digest
        do {
            actual = try Digest.sha256(ofFileAt: path).digest
        } catch {
            throw .unreadable(path: path, error)
        }
        guard actual == digest else {
            FilePaths.remove(path)
            throw .corruptBlob(digest, actual: actual, path: path)
        }
        return path
    }

    /// A small blob's bytes, verified.
    package func read(_ digest: Digest, limit: Int = 16 << 20) throws(StoreError) -> [UInt8] {
        let path = blobPath(digest)
        guard FilePaths.exists(path) else { throw .missingBlob(digest) }
        let bytes: [UInt8]
        do {
            bytes = try ReadableFile.readAll(path: path, limit: limit)
        } catch {
            throw .unreadable(path: path, error)
        }
        let actual = Digest.sha256(of: bytes)
        guard actual == digest else {
            FilePaths.remove(path)
            throw .corruptBlob(digest, actual: actual, path: path)
        }
        return bytes
    }

    /// Every blob digest present (no content check).
    package func allBlobs() throws(StoreError) -> [Digest] {
        do {
            return try FilePaths.contents(of: blobDirectory).compactMap { try? Digest(sha256Hex: $0) }.sorted()
        } catch {
            throw .unusable(root: root, error)
        }
    }
}

extension ContentStore: BlobSource {
    package func verifiedBlobPath(_ digest: Digest) throws -> String { try verifiedPath(digest) }
    package func blobFile(_ digest: Digest) throws -> String {
        guard contains(digest) else { throw StoreError.missingBlob(digest) }
        return blobPath(digest)
    }
    package func readBlob(_ digest: Digest, limit: Int) throws -> [UInt8] { try read(digest, limit: limit) }
}

extension ContentStore {
    /// Where the store keeps the working folders of builds (`tmp/`).
    package var scratchParent: String { FilePaths.join(root, "tmp") }

    /// A new empty folder under the store for a build's working files (staged file contents),
    /// removed by the caller, on SIGINT/SIGTERM, or by a later `sweepLeftovers()`.
    package func makeScratchDirectory(prefix: String) throws(StoreError) -> ScratchDirectory {
        do {
            return try ScratchDirectory(in: scratchParent, prefix: prefix)
        } catch {
            throw .unusable(root: root, error)
        }
    }

    /// Removes what killed kiln processes left in the store: their scratch folders and their
    /// half-written blobs. Cheap (two directory listings); every run starts with it.
    @discardableResult
    package func sweepLeftovers() -> [String] {
        ScratchDirectory.sweep(scratchParent) + ScratchDirectory.sweepTemporaries(blobDirectory)
    }
}
