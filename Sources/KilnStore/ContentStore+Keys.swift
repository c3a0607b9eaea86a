import Foundation
import KilnCore

/// The key index: small JSON records under `keys/KIND/XX/HEX.json`, mapping a cache key (the
/// SHA-256 of a build's inputs) to what was built from it. A record is replaced whole and
/// atomically; readers see the old record or the new one.
extension ContentStore {
    /// The file a record lives in.
    package func recordPath(kind: String, key: Digest) throws(StoreError) -> String {
        guard !kind.isEmpty,
            kind.utf8.allSatisfy({ (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2d })
        else { throw .invalidKeyKind(kind) }
        return FilePaths.join(root, "keys/\(kind)/\(key.hex.prefix(2))/\(key.hex).json")
    }

    /// Stores `record` under `key`, replacing any earlier record.
    /// - Parameter durable: false for records that only save work (`AtomicFileWriter.commit`).
    package func setRecord(_ record: some Encodable, kind: String, key: Digest, durable: Bool = true)
        throws(StoreError)
    {
        let path = try recordPath(kind: kind, key: key)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let bytes: [UInt8]
        do {
            bytes = Array(try encoder.encode(record))
        } catch {
            throw .invalidRecord(path: path, reason: "\(error)")
        }
        do {
            try FilePaths.makeDirectories(FilePaths.directory(of: path))
            try AtomicFileWriter.write(bytes, to: path, durable: durable)
        } catch {
            throw .unusable(root: root, error)
        }
    }

    /// Replaces the record of `key` with what `change` makes of it (nil: none, or one that does
    /// not decode), with no other update of a `kind` record in between, in this process or
    /// another (`flock` on `keys/KIND.lock`): for records that several builds add to at once.
    package func updateRecord<Record: Codable>(
        _ type: Record.Type, kind: String, key: Digest, durable: Bool = true, _ change: (Record?) -> Record
    ) throws(StoreError) {
        let lockPath = FilePaths.join(root, "keys/\(kind).lock")
        let lock: StoreLock
        do {
            try FilePaths.makeDirectories(FilePaths.join(root, "keys"))
            lock = try StoreLock(path: lockPath, mode: .exclusive)
        } catch {
            throw .unusable(root: root, error)
        }
        defer { lock.release() }
        let current = try? record(type, kind: kind, key: key)
        try setRecord(change(current ?? nil), kind: kind, key: key, durable: durable)
    }

    /// The record stored under `key`, or nil when there is none.
    /// - Throws: `StoreError.invalidRecord` when the file exists but does not decode (it is left
    ///   in place for inspection; the caller treats the key as not built).
    /// The largest record read back: a larger one is never written usefully.
    package static let recordLimit = 1 << 20

    package func record<Record: Decodable>(_ type: Record.Type, kind: String, key: Digest) throws(StoreError) -> Record?
    {
        let path = try recordPath(kind: kind, key: key)
        guard FilePaths.exists(path) else { return nil }
        let bytes: [UInt8]
        do {
            bytes = try ReadableFile.readAll(path: path, limit: Self.recordLimit)
        } catch {
            throw .unreadable(path: path, error)
        }
        do {
            let record = try JSONDecoder().decode(Record.self, from: Data(bytes))
            // Looked up now: what `prunePlan` goes by.
            touch(path)
            return record
        } catch {
            throw .invalidRecord(path: path, reason: "\(error)")
        }
    }
}
