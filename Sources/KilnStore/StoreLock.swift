import KilnCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An advisory lock on the store (`flock` on `ROOT/lock`), held until `release` or deinit.
///
/// Writers that only add content take it shared, and so does a lane for its whole run (it reads
/// records and the blobs they name long after); maintenance that removes content (verification,
/// `kiln prune`, clean-up of stale temporary files) takes it exclusive, so it never removes a
/// file another process is still writing or about to read. `flock` locks go away with the process, so a killed kiln never
/// leaves the store locked.
package final class StoreLock {
    package enum Mode { case shared, exclusive }

    private var descriptor: Int32

    /// Blocks until the lock is granted; `waiting` is called first when another holds it.
    package convenience init(root: String, mode: Mode, waiting: () -> Void = {}) throws(FileError) {
        try self.init(path: FilePaths.join(root, "lock"), mode: mode, waiting: waiting)
    }

    /// A lock on the file at `path` (made when missing), blocking until it is granted. Each lock
    /// opens the file anew, so two in one process exclude each other as two processes do.
    package init(path: String, mode: Mode, waiting: () -> Void = {}) throws(FileError) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError("open the store lock", path: path) }
        let operation = mode == .shared ? LOCK_SH : LOCK_EX
        // Held by another: say so (`waiting`), then wait.
        if flock(fd, operation | LOCK_NB) == 0 {
            descriptor = fd
            return
        }
        if errno == EWOULDBLOCK { waiting() }
        while flock(fd, operation) != 0 {
            guard errno == EINTR else {
                let error = FileError("lock", path: path)
                close(fd)
                throw error
            }
        }
        descriptor = fd
    }

    deinit { release() }

    /// Gives the lock up; later calls do nothing.
    package func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
    }
}
