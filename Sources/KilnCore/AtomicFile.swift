#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a file so that readers see either the old content or the complete new content, never
/// a part: bytes go to a temporary file in the destination's directory, which is flushed with
/// `fsync`, renamed over the destination, and the directory flushed too. A writer dropped without
/// `commit` removes its temporary file, and so does SIGINT or SIGTERM (`Interruption`), so a
/// failed or interrupted write leaves nothing behind. A process killed outright can leave a
/// `.kiln-tmp-PID-…` file, which is never mistaken for the real one: build contexts hide that
/// name, and `ScratchDirectory.sweep` removes it once its process is gone.
package final class AtomicFileWriter {
    /// How every temporary file's name starts; the owner's process id follows.
    package static let temporaryPrefix = ".kiln-tmp-"

    /// Where the file will appear on `commit`.
    package private(set) var destination: String
    /// The temporary file receiving the bytes.
    package let temporaryPath: String
    private var descriptor: Int32
    private var state: State = .open
    private let registration: Interruption.Registration

    private enum State { case open, committed, discarded }

    /// Creates the temporary file beside `destination`.
    /// - Parameter permissions: the mode the final file gets (before umask is not applied: exact).
    /// - Throws: `FileError` when the directory is missing or not writable.
    package init(destination: String, permissions: mode_t = 0o644) throws(FileError) {
        let directory = FilePaths.directory(of: destination)
        let base = FilePaths.lastComponent(of: destination)
        var template = Array("\(directory)/\(Self.temporaryPrefix)\(getpid())-\(base.prefix(40))-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw FileError("create a temporary file in", path: directory) }
        self.temporaryPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        self.descriptor = fd
        self.destination = destination
        self.registration = Interruption.removeOnInterrupt(temporaryPath)
        if fchmod(fd, permissions) != 0 {
            let error = FileError("set permissions on", path: temporaryPath)
            discard()
            throw error
        }
    }

    deinit { discard() }

    /// Appends bytes.
    /// - Throws: `FileError` when the write fails (disk full, I/O error).
    package func write(_ bytes: UnsafeRawBufferPointer) throws(FileError) {
        precondition(state == .open, "write after commit or discard")
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw FileError("write", path: temporaryPath)
            }
            offset += written
        }
    }

    /// Flushes the bytes to disk and moves the file into place, replacing what was there.
    /// - Parameter destination: a different final path in the same directory, when the name is
    ///   known only at the end (a blob named by its digest).
    /// - Parameter durable: false for a cache whose loss only costs work, never correctness: no
    ///   `fsync`, so after a crash the file may be old, or empty or cut short (which must not
    ///   parse), but never a mix.
    /// - Throws: `FileError` when flushing or renaming fails; the temporary file is removed then.
    package func commit(as destination: String? = nil, durable: Bool = true) throws(FileError) {
        precondition(state == .open, "commit twice")
        if let destination { self.destination = destination }
        guard !durable || fsync(descriptor) == 0 else {
            let error = FileError("flush", path: temporaryPath)
            discard()
            throw error
        }
        close(descriptor)
        descriptor = -1
        guard rename(temporaryPath, self.destination) == 0 else {
            let error = FileError("rename into place", path: self.destination)
            discard()
            throw error
        }
        state = .committed
        registration.end()
        if durable { FilePaths.syncDirectory(FilePaths.directory(of: self.destination)) }
    }

    /// Abandons the write and removes the temporary file. Safe to call more than once.
    package func discard() {
        guard state == .open else { return }
        state = .discarded
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        unlink(temporaryPath)
        registration.end()
    }

    /// Writes `bytes` to `path` atomically in one call.
    package static func write(
        _ bytes: some ByteStorage, to path: String, permissions: mode_t = 0o644, durable: Bool = true
    ) throws(FileError) {
        let writer = try AtomicFileWriter(destination: path, permissions: permissions)
        try writer.write(bytes)
        try writer.commit(durable: durable)
    }
}
