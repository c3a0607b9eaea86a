import CArchive
import KilnCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes entries as a PAX tar stream with libarchive, handing the bytes to a closure.
///
/// Only the fields that make up an image reach the stream: path, type, permission bits, numeric
/// owner, size, link target, device numbers and (when given) extended attributes. User and group names, access,
/// change and birth times are never set; the modification time is the fixed `epoch`. libarchive's
/// "restricted pax" format writes plain ustar headers and adds a pax extended header only where
/// ustar cannot hold a value (long or non-ASCII names, large ids or sizes).
///
/// libarchive converts names through the current locale, so the writer pins a UTF-8 locale on
/// its own thread while it works: the bytes must not depend on the caller's `LANG`.
final class TarWriter {
    private let archive: OpaquePointer
    private let sink: Sink
    private let locale: locale_t?
    private let previousLocale: locale_t?
    private let epoch: Int64
    private var closed = false

    /// Receives the tar bytes; errors from it end the stream and are rethrown by the writer.
    final class Sink {
        let consume: (UnsafeRawBufferPointer) throws -> Void
        var failure: (any Error)?
        init(_ consume: @escaping (UnsafeRawBufferPointer) throws -> Void) { self.consume = consume }
    }

    init(epoch: Int64, consume: @escaping (UnsafeRawBufferPointer) throws -> Void) throws(LayerError) {
        locale = kiln_utf8_locale()
        previousLocale = locale.map { uselocale($0) }
        guard let archive = archive_write_new() else {
            throw .archive("libarchive could not start a stream", path: nil)
        }
        self.archive = archive
        self.epoch = epoch
        self.sink = Sink(consume)
        do {
            try check(archive_write_set_format_pax_restricted(archive), path: nil)
            // Write in 64 KiB blocks and leave the last block unpadded: the stream ends with the two
            // zero records tar requires and nothing more, whatever the block size.
            try check(archive_write_set_bytes_per_block(archive, 64 << 10), path: nil)
            try check(archive_write_set_bytes_in_last_block(archive, 1), path: nil)
            let context = Unmanaged.passUnretained(sink).toOpaque()
            try check(archive_write_open2(archive, context, nil, tarWriteCallback, nil, nil), path: nil)
        } catch {
            archive_write_free(archive)
            restoreLocale()
            throw error
        }
    }

    deinit {
        if !closed { archive_write_free(archive) }
        restoreLocale()
    }

    private func restoreLocale() {
        if let previousLocale { uselocale(previousLocale) }
        if let locale { freelocale(locale) }
    }

    /// Writes one entry's header; a regular file's data follows through `writeData`.
    /// - Parameter size: the data size for regular files, 0 otherwise.
    func writeHeader(for entry: LayerEntry, size: Int64) throws {
        guard let header = archive_entry_new() else { throw LayerError.archive("out of memory", path: entry.path) }
        defer { archive_entry_free(header) }
        archive_entry_set_pathname_utf8(header, entry.path.description)
        archive_entry_set_perm(header, mode_t(entry.mode))
        archive_entry_set_uid(header, la_int64_t(entry.uid))
        archive_entry_set_gid(header, la_int64_t(entry.gid))
        archive_entry_set_mtime(header, time_t(epoch), 0)
        switch entry.content {
        case .directory:
            archive_entry_set_filetype(header, UInt32(Glibc.S_IFDIR))
        case .regularFile:
            archive_entry_set_filetype(header, UInt32(Glibc.S_IFREG))
            archive_entry_set_size(header, la_int64_t(size))
        case .symlink(let target):
            archive_entry_set_filetype(header, UInt32(Glibc.S_IFLNK))
            archive_entry_set_symlink_utf8(header, target)
        case .hardLink(let target):
            archive_entry_set_filetype(header, UInt32(Glibc.S_IFREG))
            archive_entry_set_hardlink_utf8(header, target.description)
            archive_entry_set_size(header, 0)
        case .special(let special):
            switch special.kind {
            case .fifo: archive_entry_set_filetype(header, UInt32(Glibc.S_IFIFO))
            case .characterDevice: archive_entry_set_filetype(header, UInt32(Glibc.S_IFCHR))
            case .blockDevice: archive_entry_set_filetype(header, UInt32(Glibc.S_IFBLK))
            }
            archive_entry_set_rdevmajor(header, dev_t(special.major))
            archive_entry_set_rdevminor(header, dev_t(special.minor))
        }
        for name in entry.xattrs.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let value = entry.xattrs[name]!
            value.withUnsafeBytes { archive_entry_xattr_add_entry(header, name, $0.baseAddress, $0.count) }
        }
        try check(archive_write_header(archive, header), path: entry.path)
    }

    /// Writes a chunk of the current regular file's data.
    func writeData(_ bytes: UnsafeRawBufferPointer, path: LayerPath) throws {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let written = archive_write_data(archive, base, bytes.count)
        if written < 0 || written != bytes.count {
            try rethrowSinkFailure()
            throw LayerError.archive(errorMessage(), path: path)
        }
    }

    /// Writes the end-of-archive records and flushes.
    func finish() throws {
        let status = archive_write_close(archive)
        closed = true
        defer { archive_write_free(archive) }
        if status != ARCHIVE_OK {
            try rethrowSinkFailure()
            throw LayerError.archive(errorMessage(), path: nil)
        }
    }

    private func check(_ status: Int32, path: LayerPath?) throws(LayerError) {
        // ARCHIVE_WARN would mean a lossy conversion (a name the locale cannot hold): treat as failure.
        guard status != ARCHIVE_OK else { return }
        if let failure = sink.failure as? LayerError { throw failure }
        throw .archive(errorMessage(), path: path)
    }

    private func rethrowSinkFailure() throws {
        if let failure = sink.failure { throw failure }
    }

    private func errorMessage() -> String {
        if let text = archive_error_string(archive) { return String(cString: text) }
        return "libarchive error \(archive_errno(archive))"
    }
}

/// libarchive's write callback: passes the bytes on, or records the error and reports failure.
private func tarWriteCallback(
    _ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ buffer: UnsafeRawPointer?, _ length: Int
) -> la_ssize_t {
    let sink = Unmanaged<TarWriter.Sink>.fromOpaque(context!).takeUnretainedValue()
    guard sink.failure == nil else { return -1 }
    do {
        try sink.consume(UnsafeRawBufferPointer(start: buffer, count: length))
        return la_ssize_t(length)
    } catch {
        sink.failure = error
        return -1
    }
}
