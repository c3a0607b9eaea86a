import CArchive
import KilnCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One member of a tar stream as a layer records it.
package struct TarMember: Sendable, Hashable {
    package enum Kind: Sendable, Hashable {
        case directory
        case regularFile(size: Int64)
        case symlink(target: String)
        /// A hard link to an earlier member (path normalised like `path`).
        case hardLink(target: String)
        /// Devices, FIFOs: kept in listings, never copied.
        case other
    }

    /// The path, `/`-separated, without a leading `/` or `./` and without a trailing `/`.
    package var path: String
    package var kind: Kind
    package var mode: UInt32
    package var uid: Int
    package var gid: Int
    /// The modification time, as the header gives it (what a step's `stat` sees).
    package var modifiedSeconds: Int64 = 0
    package var modifiedNanoseconds = 0
    /// A digest of the extended attributes (empty when there are none).
    package var xattrDigest = ""
    /// For `.other`: `p` (FIFO), `c MAJOR:MINOR` or `b MAJOR:MINOR`; empty otherwise.
    package var special = ""

    package init(path: String, kind: Kind, mode: UInt32, uid: Int, gid: Int) {
        self.path = path
        self.kind = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
    }
}

/// What a tar member holds beyond `TarMember`: its modification time, device numbers and
/// extended attributes.
package struct MemberDetails: Sendable {
    package var modifiedSeconds: Int64 = 0
    package var modifiedNanoseconds = 0
    /// For a FIFO or device node.
    package var special: LayerEntry.SpecialFile?
    package var xattrs: [String: [UInt8]] = [:]
}

/// Reads tar streams (a base image's layers, or an archive `ADD` unpacks), compressed or not:
/// libarchive detects gzip, bzip2, xz and zstd by their magic numbers.
package final class LayerReader {
    private let archive: OpaquePointer
    private let path: String
    private let locale: locale_t?
    private let previousLocale: locale_t?
    /// The header `next()` read last (libarchive's, valid until the next call).
    private var current: OpaquePointer?

    /// Opens the file at `path` as a (possibly compressed) tar stream.
    /// - Throws: `LayerError.archive` when it is not one.
    package init(path: String) throws(LayerError) {
        self.path = path
        locale = kiln_utf8_locale()
        previousLocale = locale.map { uselocale($0) }
        guard let archive = archive_read_new() else { throw .archive("libarchive could not start reading", path: nil) }
        self.archive = archive
        archive_read_support_filter_all(archive)
        archive_read_support_format_tar(archive)
        archive_read_support_format_gnutar(archive)
        guard archive_read_open_filename(archive, path, 64 << 10) == ARCHIVE_OK else {
            // deinit runs for a class whose stored properties are all set, and frees what we hold.
            let message = Self.message(archive)
            throw .archive("'\(path)' is not a readable tar archive: \(message)", path: nil)
        }
    }

    deinit {
        archive_read_free(archive)
        if let previousLocale { uselocale(previousLocale) }
        if let locale { freelocale(locale) }
    }

    /// Whether the file at `path` is a tar archive (compressed or not), as `ADD` decides.
    package static func isArchive(_ path: String) -> Bool {
        guard let reader = try? LayerReader(path: path) else { return false }
        return (try? reader.next()) != nil
    }

    /// The next member, or nil at the end. Its data is read with `readData` before the next call.
    package func next() throws(LayerError) -> TarMember? {
        var entry: OpaquePointer?
        let status = archive_read_next_header(archive, &entry)
        current = nil
        if status == ARCHIVE_EOF { return nil }
        guard status >= ARCHIVE_WARN, let entry else {
            throw .archive("'\(path)' is not a readable tar archive: \(Self.message(archive))", path: nil)
        }
        current = entry
        let name = Self.normalize(archive_entry_pathname(entry).map { String(cString: $0) } ?? "")
        let mode = UInt32(archive_entry_perm(entry)) & 0o7777
        let uid = Int(archive_entry_uid(entry))
        let gid = Int(archive_entry_gid(entry))
        let kind: TarMember.Kind
        if let target = archive_entry_hardlink(entry) {
            kind = .hardLink(target: Self.normalize(String(cString: target)))
        } else {
            switch archive_entry_filetype(entry) & 0o170000 {
            case 0o040000: kind = .directory
            case 0o100000: kind = .regularFile(size: archive_entry_size(entry))
            case 0o120000: kind = .symlink(target: archive_entry_symlink(entry).map { String(cString: $0) } ?? "")
            default: kind = .other
            }
        }
        var member = TarMember(path: name, kind: kind, mode: mode, uid: uid, gid: gid)
        let details = details()
        member.modifiedSeconds = details.modifiedSeconds
        member.modifiedNanoseconds = details.modifiedNanoseconds
        if !details.xattrs.isEmpty {
            var text = [UInt8]()
            for (name, value) in details.xattrs.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
                text += Array(name.utf8) + [0] + Array(String(value.count).utf8) + [0] + value
            }
            member.xattrDigest = Digest.sha256(of: text).hex
        }
        if let special = details.special {
            switch special.kind {
            case .fifo: member.special = "p"
            case .characterDevice: member.special = "c \(special.major):\(special.minor)"
            case .blockDevice: member.special = "b \(special.major):\(special.minor)"
            }
        }
        return member
    }

    /// What the member `next()` returned holds beyond `TarMember`: what unpacking it onto disk
    /// needs (`LayerApplier`).
    package func details() -> MemberDetails {
        guard let entry = current else { return MemberDetails() }
        var details = MemberDetails()
        if archive_entry_mtime_is_set(entry) != 0 {
            details.modifiedSeconds = Int64(archive_entry_mtime(entry))
            details.modifiedNanoseconds = Int(archive_entry_mtime_nsec(entry))
        }
        if archive_entry_hardlink(entry) == nil {
            let kind: LayerEntry.SpecialFile.Kind? =
                switch archive_entry_filetype(entry) & 0o170000 {
                case 0o010000: .fifo
                case 0o020000: .characterDevice
                case 0o060000: .blockDevice
                default: nil
                }
            if let kind {
                details.special = LayerEntry.SpecialFile(
                    kind: kind, major: UInt32(archive_entry_rdevmajor(entry)),
                    minor: UInt32(archive_entry_rdevminor(entry)))
            }
        }
        if archive_entry_xattr_reset(entry) > 0 {
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK {
                guard let name else { continue }
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                details.xattrs[String(cString: name)] = bytes
            }
        }
        return details
    }

    /// Streams the current member's bytes into `sink`.
    package func readData(into sink: some ByteSink) throws(LayerError) {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = buffer.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
            if count == 0 { return }
            guard count > 0 else { throw .archive("reading '\(path)' failed: \(Self.message(archive))", path: nil) }
            let failure = buffer.withUnsafeBytes { (raw) -> FileError? in
                do {
                    try sink.write(UnsafeRawBufferPointer(rebasing: raw[..<count]))
                    return nil
                } catch {
                    return error as? FileError ?? FileError("write data of", path: self.path, code: EIO)
                }
            }
            if let failure { throw .output(failure) }
        }
    }

    /// The current member's bytes, refusing more than `limit`.
    package func readData(limit: Int) throws(LayerError) -> [UInt8] {
        let collector = Collector(limit: limit)
        try readData(into: collector)
        return collector.bytes
    }

    private final class Collector: ByteSink {
        var bytes = [UInt8]()
        let limit: Int
        init(limit: Int) { self.limit = limit }
        func write(_ buffer: UnsafeRawBufferPointer) throws(FileError) {
            guard bytes.count + buffer.count <= limit else {
                throw FileError("read (file too large)", path: "layer member", code: EFBIG)
            }
            bytes += buffer
        }
    }

    static func normalize(_ name: String) -> String {
        var parts = [Substring]()
        for part in name.split(separator: "/") where part != "." && !part.isEmpty { parts.append(part) }
        return parts.joined(separator: "/")
    }

    private static func message(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }
}
