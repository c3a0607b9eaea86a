#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file opened for reading, closed when the value goes away.
///
/// Reads go straight to `read(2)` in bounded chunks, never buffering the whole file.
package final class ReadableFile {
    /// The default chunk: 1 MiB, large enough to amortise system calls, small enough to keep memory flat.
    package static let defaultChunkSize = 1 << 20

    package let path: String
    private let descriptor: Int32

    /// Opens `path` read-only.
    /// - Throws: `FileError` naming the path.
    /// - Parameter nonBlocking: open without waiting, so a FIFO given by mistake cannot hang the
    ///   caller; check `status()` before reading.
    package init(path: String, nonBlocking: Bool = false) throws(FileError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | (nonBlocking ? O_NONBLOCK : 0))
        guard fd >= 0 else { throw FileError("open", path: path) }
        self.path = path
        self.descriptor = fd
    }

    deinit { close(descriptor) }

    /// The open file's `stat`.
    package func status() throws(FileError) -> stat {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw FileError("stat", path: path) }
        return info
    }

    /// Calls `body` with each chunk of the file, in order, until the end.
    /// - Throws: `FileError` if a read fails, or whatever `body` throws, unchanged.
    package func forEachChunk(
        chunkSize: Int = ReadableFile.defaultChunkSize, _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = read(descriptor, buffer.baseAddress, chunkSize)
            if count < 0 {
                if errno == EINTR { continue }
                throw FileError("read", path: path)
            }
            if count == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    /// Reads up to `limit` bytes from the start. Meant for small files (manifests, indexes).
    /// - Throws: `FileError` when the file is larger than `limit` or a read fails.
    /// - Throws: also for anything but a regular file: a FIFO named like a config file would
    ///   otherwise block the read forever, and a device would never end.
    package static func readAll(path: String, limit: Int = 64 << 20) throws(FileError) -> [UInt8] {
        let file = try ReadableFile(path: path, nonBlocking: true)
        let kind = FileKind(mode: try file.status().st_mode)
        guard kind == .regular else {
            throw FileError("read", path: path, code: EINVAL, reason: "it is a \(kind.name), not a regular file")
        }
        var bytes = [UInt8]()
        do {
            try file.forEachChunk { chunk in
                bytes.append(contentsOf: chunk)
                if bytes.count > limit { throw FileError("read (larger than \(limit) bytes)", path: path, code: EFBIG) }
            }
        } catch let error as FileError {
            throw error
        } catch {
            throw FileError("read", path: path, code: EIO)  // the body throws only FileError
        }
        return bytes
    }
}
