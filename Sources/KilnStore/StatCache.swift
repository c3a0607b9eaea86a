import KilnCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Remembers the SHA-256 of files by what `stat` says about them (size, mtime, ctime, inode), so
/// an unchanged tree is re-checked without reading any content, as git's index does.
///
/// One cache file per directory tree, `stat/HEX.tsv` in the store (HEX: the SHA-256 of the tree's
/// absolute path), one line per file: `sha256-hex size mtime-ns ctime-ns inode path`. It is
/// replaced atomically by `save()`; a damaged or missing file only means files are read again.
/// A file changed within the last two seconds is not remembered: its mtime could repeat for a
/// second change made in the same clock tick.
package final class StatCache: Sendable {
    package struct Identity: Hashable, Sendable {
        package var size: Int64
        package var mtime: Int64
        package var ctime: Int64
        package var inode: UInt64
    }

    package let path: String
    private struct State {
        var entries: [String: (identity: Identity, digest: Digest)] = [:]
        var dirty = false
    }
    private let state = Mutex(State())

    /// Opens the cache of the tree at `tree` (an absolute path) in `store`.
    package init(store: ContentStore, tree: String) {
        path = FilePaths.join(store.root, "stat/\(Digest.sha256(of: Array(tree.utf8)).hex).tsv")
        guard let bytes = try? ReadableFile.readAll(path: path, limit: 256 << 20) else { return }
        var entries = [String: (identity: Identity, digest: Digest)]()
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 5, omittingEmptySubsequences: false)
            guard fields.count == 6, let digest = try? Digest(sha256Hex: String(decoding: fields[0], as: UTF8.self)),
                let size = Int64(String(decoding: fields[1], as: UTF8.self)),
                let mtime = Int64(String(decoding: fields[2], as: UTF8.self)),
                let ctime = Int64(String(decoding: fields[3], as: UTF8.self)),
                let inode = UInt64(String(decoding: fields[4], as: UTF8.self))
            else { continue }
            entries[String(decoding: fields[5], as: UTF8.self)] = (
                Identity(size: size, mtime: mtime, ctime: ctime, inode: inode), digest
            )
        }
        state.withLock { $0.entries = entries }
    }

    /// What `lstat` says about a file now, nil when it cannot be read.
    package static func identity(of path: String) -> Identity? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return identity(info)
    }

    /// The identity an `lstat` result gives.
    package static func identity(_ info: stat) -> Identity {
        Identity(
            size: Int64(info.st_size), mtime: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec),
            ctime: Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec), inode: UInt64(info.st_ino))
    }

    /// Nanoseconds since 1970 on the clock files' times come from.
    package static func wallClock() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    /// Whether the object `identity` describes was last changed more than two seconds before
    /// `instant` (a `wallClock()` reading): only then can a later change not leave the same times
    /// behind (coarse file-system clocks, two writes in one tick).
    package static func isSettled(_ identity: Identity, at instant: Int64) -> Bool {
        instant - max(identity.mtime, identity.ctime) > 2_000_000_000
    }

    /// The remembered digest of `relative` when the file still looks the same.
    package func digest(_ relative: String, identity: Identity) -> Digest? {
        state.withLock { state in
            guard let entry = state.entries[relative], entry.identity == identity else { return nil }
            return entry.digest
        }
    }

    /// Remembers a digest just computed (unless the file changed too recently to trust its mtime).
    package func remember(_ relative: String, identity: Identity, digest: Digest) {
        guard Self.isSettled(identity, at: Self.wallClock()), !relative.contains("\n") else { return }
        state.withLock { state in
            if let entry = state.entries[relative], entry.identity == identity, entry.digest == digest { return }
            state.entries[relative] = (identity, digest)
            state.dirty = true
        }
    }

    /// Writes the cache back when something new was remembered.
    package func save() throws(FileError) {
        let text: String? = state.withLock { state in
            guard state.dirty else { return nil }
            state.dirty = false
            var text = ""
            for (relative, entry) in state.entries.sorted(by: { $0.key < $1.key }) {
                let identity = entry.identity
                text +=
                    "\(entry.digest.hex) \(identity.size) \(identity.mtime) \(identity.ctime) \(identity.inode) \(relative)\n"
            }
            return text
        }
        guard let text else { return }
        try FilePaths.makeDirectories(FilePaths.directory(of: path))
        try AtomicFileWriter.write(Array(text.utf8), to: path)
    }
}
