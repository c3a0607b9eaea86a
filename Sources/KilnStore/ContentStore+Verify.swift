import KilnCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What `verify` found.
package struct StoreVerification: Sendable, Equatable {
    /// Blobs whose bytes matched their names.
    package var intact: Int = 0
    /// Blobs that did not, now removed.
    package var removedCorrupt: [Digest] = []
    /// Temporary files left by interrupted writers, now removed.
    package var removedTemporary: Int = 0
    /// Scratch folders of builds whose process is gone, now removed.
    package var removedScratch: Int = 0
}

extension ContentStore {
    /// Re-hashes every blob, removing those that do not match their names, and removes what
    /// interrupted runs left behind: temporary files (under the blobs and the key records) and the
    /// scratch folders of processes that are gone. Holds the store lock exclusively meanwhile, so
    /// no ingest in progress loses its temporary file.
    package func verify() throws(StoreError) -> StoreVerification {
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
            if name.hasPrefix(".tmp-") || name.hasPrefix(AtomicFileWriter.temporaryPrefix) {
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
        report.removedScratch = ScratchDirectory.sweep(scratchParent).count
        report.removedTemporary += sweepRecordTemporaries()
        return report
    }

    /// Temporary files of dead processes under `keys/`, `index/` and `stat/`.
    private func sweepRecordTemporaries() -> Int {
        var removed = 0
        for top in ["keys", "index", "stat"] {
            let directory = FilePaths.join(root, top)
            removed += ScratchDirectory.sweepTemporaries(directory).count
            for name in (try? FilePaths.contents(of: directory)) ?? [] {
                let child = FilePaths.join(directory, name)
                guard FilePaths.isDirectory(child) else { continue }
                removed += ScratchDirectory.sweepTemporaries(child).count
                for inner in (try? FilePaths.contents(of: child)) ?? []
                where FilePaths.isDirectory(FilePaths.join(child, inner)) {
                    removed += ScratchDirectory.sweepTemporaries(FilePaths.join(child, inner)).count
                }
            }
        }
        return removed
    }
}
