import KilnCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What `verify` found.
public struct StoreVerification: Sendable, Equatable {
    /// Blobs whose bytes matched their names.
    public var intact: Int = 0
    /// Blobs that did not, now removed.
    public var removedCorrupt: [Digest] = []
    /// Temporary files left by interrupted writers, now removed.
    public var removedTemporary: Int = 0
}

extension ContentStore {
    /// Re-hashes every blob, removing those that do not match their names, and removes temporary
    /// files that interrupted writers left behind. Holds the store lock exclusively meanwhile, so
    /// no ingest in progress loses its temporary file.
    public func verify() throws(StoreError) -> StoreVerification {
        let lock: StoreLock
        do {
            lock = try StoreLock(root: root, mode: .exclusive)
        } catch {
            throw .unusable(root: root, error)
        }
        defer { lock.release() }
        var report = StoreVerification()
        let names: [String]
        do {
            names = try FilePaths.contents(of: blobDirectory)
        } catch {
            throw .unusable(root: root, error)
        }
        for name in names.sorted() {
            let path = FilePaths.join(blobDirectory, name)
            if name.hasPrefix(".tmp-") {
                FilePaths.remove(path)
                report.removedTemporary += 1
                continue
            }
            guard let digest = try? Digest(sha256Hex: name) else { continue }
            do {
                _ = try verifiedPath(digest)
                report.intact += 1
            } catch .corruptBlob {
                report.removedCorrupt.append(digest)
            }
        }
        return report
    }
}
