import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A private working folder of one kiln process, named `PREFIX-PID-RANDOM` (lower case, so tools
/// that derive image names from paths accept it), removed by `remove()`, on SIGINT/SIGTERM, or —
/// after a `kill -9` — by the next `ScratchDirectory.sweep` of its parent.
package final class ScratchDirectory: Sendable {
    package let path: String
    private let registration: Interruption.Registration
    private let removed = Mutex(false)

    /// Creates a new folder under `parent` (made if missing), mode 0700.
    /// - Throws: `FileError` when `parent` cannot be made or written.
    package init(in parent: String, prefix: String) throws(FileError) {
        try FilePaths.makeDirectories(parent)
        var attempt = 0
        while true {
            attempt += 1
            let candidate = FilePaths.join(parent, "\(prefix)-\(getpid())-\(Self.randomSuffix())")
            if mkdir(candidate, 0o700) == 0 {
                path = candidate
                break
            }
            guard errno == EEXIST, attempt < 16 else { throw FileError("create a directory in", path: parent) }
        }
        registration = Interruption.removeOnInterrupt(path)
    }

    deinit { remove() }

    /// Removes the folder and everything in it. Safe to call more than once.
    package func remove() {
        let first = removed.withLock { removed in
            defer { removed = true }
            return !removed
        }
        guard first else { return }
        FilePaths.removeTree(path)
        registration.end()
    }

    /// Leaves the folder where it is, now and at exit (a user asked to keep it).
    package func keep() {
        removed.withLock { $0 = true }
        registration.end()
    }

    /// Removes the folder on a background thread, for a caller with work left that need not wait
    /// for a large tree (buildah's storage) to go. `waitForRemovals()`, run when kiln exits,
    /// waits for every such removal; an interrupt still removes the folder as for `remove()`.
    package func removeInBackground() {
        let first = removed.withLock { removed in
            defer { removed = true }
            return !removed
        }
        guard first else { return }
        let (path, registration) = (self.path, self.registration)
        Self.removals.enter()
        DispatchQueue.global(qos: .utility).async {
            FilePaths.removeTree(path)
            registration.end()
            Self.removals.leave()
        }
    }

    private static let removals = DispatchGroup()

    /// Waits for the folders `removeInBackground()` is removing.
    package static func waitForRemovals() { removals.wait() }

    static func randomSuffix() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() as UInt64
        return String(String(value, radix: 16).suffix(10))
    }

    /// The process id a scratch or temporary name was made by: `PREFIX-PID-RANDOM` or
    /// `.kiln-tmp-PID-…`.
    static func owner(of name: String) -> pid_t? {
        let rest: Substring
        if name.hasPrefix(AtomicFileWriter.temporaryPrefix) {
            rest = name.dropFirst(AtomicFileWriter.temporaryPrefix.count)
        } else {
            let parts = name.split(separator: "-", maxSplits: 2)
            guard parts.count == 3, parts[0].allSatisfy({ $0.isLetter }) else { return nil }
            rest = parts[1] + "-"
        }
        guard let dash = rest.firstIndex(of: "-"), let pid = pid_t(rest[..<dash]), pid > 0 else { return nil }
        return pid
    }

    /// Whether a process with this id runs (or exists under another user).
    static func isRunning(_ pid: pid_t) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    /// Removes what dead kiln processes left in `parent`, a folder kiln owns (the store's, the
    /// runtime folder): scratch folders and `.kiln-tmp-` files whose owner no longer runs.
    /// Returns the paths removed.
    @discardableResult
    package static func sweep(_ parent: String) -> [String] {
        sweep(parent, temporariesOnly: false)
    }

    /// Removes only `.kiln-tmp-PID-…` files of dead processes: for folders that are the user's
    /// (a processor's, a layout's), where no other name is kiln's to remove.
    @discardableResult
    package static func sweepTemporaries(_ parent: String) -> [String] {
        sweep(parent, temporariesOnly: true)
    }

    private static func sweep(_ parent: String, temporariesOnly: Bool) -> [String] {
        guard let names = try? FilePaths.contents(of: parent) else { return [] }
        var removed = [String]()
        for name in names {
            if temporariesOnly && !name.hasPrefix(AtomicFileWriter.temporaryPrefix) { continue }
            guard let pid = owner(of: name), pid != getpid(), !isRunning(pid) else { continue }
            let path = FilePaths.join(parent, name)
            FilePaths.removeTree(path)
            removed.append(path)
        }
        return removed
    }
}

/// Where kiln keeps what must never reach its store (which CI caches): secret files and
/// buildah's per-step storage, which holds buildah's own copies of secrets.
package enum RuntimeDirectory {
    /// `$KILN_RUNTIME_DIR`, else `$TMPDIR/kiln-UID`, else `/tmp/kiln-UID`.
    package static func path(environment: [String: String]) -> String {
        if let explicit = environment["KILN_RUNTIME_DIR"], !explicit.isEmpty { return explicit }
        let temporary = environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        return FilePaths.join(temporary, "kiln-\(getuid())")
    }

    /// Creates `path` (0700) when missing and checks that it is a real directory of this user
    /// that nobody else can write to (each scratch folder inside is 0700, each secret 0600).
    /// - Throws: `FileError` when it cannot be made, or exists but others could change it.
    package static func prepare(_ path: String) throws(FileError) {
        try FilePaths.makeDirectories(FilePaths.directory(of: path))
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw FileError("create directory", path: path) }
        var info = stat()
        guard lstat(path, &info) == 0 else { throw FileError("stat", path: path) }
        guard (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == getuid(), info.st_mode & 0o022 == 0 else {
            throw FileError(
                "use (it must be a directory of this user that no one else can write to)", path: path, code: EPERM)
        }
    }
}
