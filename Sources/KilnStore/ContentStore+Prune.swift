import Foundation
import KilnCore
import KilnOCI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What pruning the store would remove (`kiln prune`, dry run by default), and what it keeps.
///
/// A record's modification time is when it was last written or looked up (`record` touches it),
/// so it says when a build last needed it. Records not used since the cutoff go; then, while
/// the blobs the kept records reach are more than the size limit, the least recently used
/// record goes. A blob is kept while a kept record reaches it (a manifest its config and layers,
/// an index its manifests, a read set the layers it names) or it was written after the cutoff;
/// the others go, with their member and content indexes.
package struct StorePrunePlan: Sendable {
    package struct Record: Sendable {
        package var path: String
        package var lastUsed: Date
    }

    package var records: [Record] = []
    package var blobs: [(digest: Digest, size: Int64)] = []
    /// What stays: blob bytes and records.
    package var keptBytes: Int64 = 0
    package var keptRecords = 0

    package var freedBytes: Int64 { blobs.reduce(0) { $0 + $1.size } }
}

extension ContentStore {
    /// What pruning would remove: records unused since `cutoff`, then the least recently used
    /// until the blobs kept fit in `maxBytes`, and the blobs nothing kept reaches.
    package func prunePlan(unusedSince cutoff: Date, maxBytes: Int64?) throws(StoreError) -> StorePrunePlan {
        var records = [(path: String, used: Date, reaches: Set<Digest>)]()
        var closures = [Digest: Set<Digest>]()
        for path in recordFiles() {
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            let used = Date(timeIntervalSince1970: TimeInterval(info.st_mtim.tv_sec))
            let bytes = (try? ReadableFile.readAll(path: path, limit: 1 << 20)) ?? []
            var reaches = Set<Digest>()
            for digest in Self.digests(in: bytes) { reaches.formUnion(closure(of: digest, memo: &closures)) }
            records.append((path, used, reaches))
        }
        var sizes = [Digest: Int64]()
        var blobTimes = [Digest: Date]()
        for digest in try allBlobs() {
            var info = stat()
            guard lstat(blobPath(digest), &info) == 0 else { continue }
            sizes[digest] = Int64(info.st_size)
            blobTimes[digest] = Date(timeIntervalSince1970: TimeInterval(info.st_mtim.tv_sec))
        }

        var plan = StorePrunePlan()
        var kept = records.filter { $0.used >= cutoff }.sorted { $0.used > $1.used }
        plan.records = records.filter { $0.used < cutoff }.map { .init(path: $0.path, lastUsed: $0.used) }
        // Blobs written since the cutoff that no record names yet (a base's layers) stay, unless
        // the size limit needs their room once every record that can go has gone.
        let recent = Set(blobTimes.filter { $0.value >= cutoff }.keys)
        func keptBlobs(_ kept: [(path: String, used: Date, reaches: Set<Digest>)], recent: Set<Digest>) -> Set<Digest> {
            var live = recent
            for record in kept { live.formUnion(record.reaches) }
            return live.filter { sizes[$0] != nil }
        }
        func total(_ live: Set<Digest>) -> Int64 { live.reduce(0) { $0 + (sizes[$1] ?? 0) } }
        var live = keptBlobs(kept, recent: recent)
        if let maxBytes {
            while total(live) > maxBytes, let oldest = kept.popLast() {
                plan.records.append(.init(path: oldest.path, lastUsed: oldest.used))
                live = keptBlobs(kept, recent: recent)
            }
            if total(live) > maxBytes { live = keptBlobs(kept, recent: []) }
        }
        plan.keptRecords = kept.count
        for (digest, size) in sizes.sorted(by: { $0.key.hex < $1.key.hex }) {
            if live.contains(digest) { plan.keptBytes += size } else { plan.blobs.append((digest, size)) }
        }
        return plan
    }

    /// Removes what `plan` lists (records first, so no record is left naming a missing blob).
    package func prune(_ plan: StorePrunePlan) {
        for record in plan.records { FilePaths.remove(record.path) }
        for blob in plan.blobs {
            FilePaths.remove(blobPath(blob.digest))
            let index = memberIndexPath(blob.digest)
            FilePaths.remove(index)
            FilePaths.remove(index.replacingOccurrences(of: ".members", with: ".digests"))
            let indexes = blobPath(blob.digest).replacingOccurrences(of: "/blobs/", with: "/index/")
            FilePaths.remove(indexes + ".digests")
            FilePaths.remove(indexes + ".contents")
        }
    }

    /// The keys of `kind` whose records were written or looked up since `cutoff`.
    package func recordKeys(kind: String, usedSince cutoff: Date) -> Set<Digest> {
        var keys = Set<Digest>()
        let folder = FilePaths.join(root, "keys/\(kind)")
        for shard in (try? FilePaths.contents(of: folder)) ?? [] {
            for name in (try? FilePaths.contents(of: FilePaths.join(folder, shard))) ?? [] where name.hasSuffix(".json")
            {
                var info = stat()
                guard lstat(FilePaths.join(folder, "\(shard)/\(name)"), &info) == 0,
                    Date(timeIntervalSince1970: TimeInterval(info.st_mtim.tv_sec)) >= cutoff,
                    let key = try? Digest(sha256Hex: String(name.dropLast(5)))
                else { continue }
                keys.insert(key)
            }
        }
        return keys
    }

    /// Marks a record used now (its modification time), for `prunePlan`.
    func touch(_ path: String) {
        _ = utimensat(AT_FDCWD, path, nil, 0)
    }

    /// Every record file under `keys/`.
    private func recordFiles() -> [String] {
        var files = [String]()
        let keys = FilePaths.join(root, "keys")
        for kind in (try? FilePaths.contents(of: keys)) ?? [] {
            for shard in (try? FilePaths.contents(of: FilePaths.join(keys, kind))) ?? [] {
                let folder = FilePaths.join(keys, "\(kind)/\(shard)")
                for name in (try? FilePaths.contents(of: folder)) ?? [] where name.hasSuffix(".json") {
                    files.append(FilePaths.join(folder, name))
                }
            }
        }
        return files
    }

    /// `digest` and every blob it names, transitively: a manifest's config and layers, an
    /// index's manifests, a read set's layers (any `sha256:` digest in a small JSON blob).
    private func closure(of digest: Digest, memo: inout [Digest: Set<Digest>]) -> Set<Digest> {
        if let known = memo[digest] { return known }
        memo[digest] = [digest]  // a cycle ends here
        var result: Set<Digest> = [digest]
        if let size = size(of: digest), size < 4 << 20,
            let bytes = try? ReadableFile.readAll(path: blobPath(digest), limit: 4 << 20),
            bytes.first == UInt8(ascii: "{")
        {
            for child in Self.digests(in: bytes) where child != digest {
                result.formUnion(closure(of: child, memo: &memo))
            }
        }
        memo[digest] = result
        return result
    }

    /// Every `sha256:HEX` in `bytes` (JSON text), and every bare 64-hex string a record keeps
    /// as a key.
    static func digests(in bytes: [UInt8]) -> Set<Digest> {
        var found = Set<Digest>()
        let text = String(decoding: bytes, as: UTF8.self)
        var rest = text[...]
        while let range = rest.range(of: "sha256:") {
            let hex = rest[range.upperBound...].prefix(64)
            if hex.count == 64, let digest = try? Digest(sha256Hex: String(hex)) { found.insert(digest) }
            rest = rest[range.upperBound...]
        }
        return found
    }
}
