import KilnCore

/// One blob being written into the store: bytes go to a temporary file beside the blobs and are
/// hashed on the way; `commit` renames the file to its digest. Dropping an ingest without
/// committing removes the temporary file.
///
/// Two processes ingesting the same content both write their own temporary file and both rename
/// it to the same name; rename is atomic, so the name always holds one complete, valid copy.
package final class BlobIngest: ByteSink {
    private let store: ContentStore
    private let file: AtomicFileWriter
    private let hasher = SHA256Hasher()
    private var size: Int64 = 0
    private let lock: StoreLock

    init(store: ContentStore) throws(FileError) {
        self.store = store
        // A shared lock: ingests run side by side, while `kiln store verify` (exclusive) waits
        // rather than sweeping away a temporary file that is still being written.
        self.lock = try StoreLock(root: store.root, mode: .shared)
        self.file = try AtomicFileWriter(destination: store.blobDirectory + "/.ingest", permissions: 0o444)
    }

    /// Appends bytes to the blob.
    package func write(_ bytes: UnsafeRawBufferPointer) throws(FileError) {
        hasher.update(bytes)
        size += Int64(bytes.count)
        try file.write(bytes)
    }

    func writeOrThrow(_ bytes: [UInt8]) throws(StoreError) {
        do {
            try write(bytes)
        } catch {
            throw .unusable(root: store.root, error)
        }
    }

    /// Finishes the blob and moves it into place under its digest.
    /// - Parameter expected: when given, a blob hashing to anything else is discarded.
    /// - Throws: `StoreError.digestMismatch`, or `.unusable` when flushing or renaming fails.
    @discardableResult
    package func commit(expected: Digest? = nil) throws(StoreError) -> (digest: Digest, size: Int64) {
        let digest = hasher.finalize()
        if let expected, expected != digest {
            file.discard()
            throw .digestMismatch(expected: expected, actual: digest)
        }
        do {
            try file.commit(as: store.blobPath(digest))
        } catch {
            throw .unusable(root: store.root, error)
        }
        lock.release()
        return (digest, size)
    }

    /// Abandons the blob.
    package func discard() {
        file.discard()
        lock.release()
    }
}
