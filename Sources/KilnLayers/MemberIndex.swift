import KilnCore

/// The tar headers of a layer blob, kept next to the store as a small text file, so an image's
/// file system can be listed again without decompressing its layers (a base layer of hundreds of
/// MiB is read once per machine, not once per build).
///
/// One line per member, fields separated by tabs: kind (`d`, `f`, `l` symlink, `h` hard link,
/// `o` other), mode (octal), uid, gid, size, modification time (`SECONDS.NANOSECONDS`), a digest
/// of the extended attributes (or nothing), the special file (`p`, `c MAJOR:MINOR`,
/// `b MAJOR:MINOR`, or nothing), path, link target. Paths and targets are written with
/// `FieldText`'s escapes, so any name fits. The file is written atomically; one that does not
/// parse (an older format among them) is ignored and rewritten.
package enum MemberIndex {
    static let format = "kiln-member-index 2"

    /// The members of the blob at `blob`, from `index` when it is there, else read from the blob
    /// (and `index` written for next time).
    package static func members(ofBlobAt blob: String, index: String) throws(LayerError) -> [TarMember] {
        if let bytes = try? ReadableFile.readAll(path: index, limit: 256 << 20), let members = parse(bytes) {
            return members
        }
        let reader = try LayerReader(path: blob)
        var members = [TarMember]()
        while let member = try reader.next() { members.append(member) }
        try? FilePaths.makeDirectories(FilePaths.directory(of: index))
        try? AtomicFileWriter.write(Array(render(members).utf8), to: index)
        return members
    }

    /// Whether `bytes` read as a member index (of this format).
    package static func isValid(_ bytes: [UInt8]) -> Bool { parse(bytes) != nil }

    static func render(_ members: [TarMember]) -> String {
        var text = format + "\n"
        for member in members {
            let (kind, size, target): (String, Int64, String) =
                switch member.kind {
                case .directory: ("d", 0, "")
                case .regularFile(let size): ("f", size, "")
                case .symlink(let target): ("l", 0, target)
                case .hardLink(let target): ("h", 0, target)
                case .other: ("o", 0, "")
                }
            let fields = [
                kind, String(member.mode, radix: 8), String(member.uid), String(member.gid), String(size),
                "\(member.modifiedSeconds).\(member.modifiedNanoseconds)", member.xattrDigest, member.special,
                FieldText.escape(member.path), FieldText.escape(target),
            ]
            text += fields.joined(separator: "\t") + "\n"
        }
        return text
    }

    static func parse(_ bytes: [UInt8]) -> [TarMember]? {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first.map({ $0 == format }) == true, lines.last == "" else { return nil }
        var members = [TarMember]()
        members.reserveCapacity(lines.count)
        for line in lines.dropFirst().dropLast() {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 10, let mode = UInt32(fields[1], radix: 8), let uid = Int(fields[2]),
                let gid = Int(fields[3]), let size = Int64(fields[4]), let path = FieldText.unescape(fields[8]),
                let target = FieldText.unescape(fields[9])
            else { return nil }
            let time = fields[5].split(separator: ".", omittingEmptySubsequences: false)
            guard time.count == 2, let seconds = Int64(time[0]), let nanoseconds = Int(time[1]) else { return nil }
            let kind: TarMember.Kind
            switch fields[0] {
            case "d": kind = .directory
            case "f": kind = .regularFile(size: size)
            case "l": kind = .symlink(target: target)
            case "h": kind = .hardLink(target: target)
            case "o": kind = .other
            default: return nil
            }
            var member = TarMember(path: path, kind: kind, mode: mode, uid: uid, gid: gid)
            member.modifiedSeconds = seconds
            member.modifiedNanoseconds = nanoseconds
            member.xattrDigest = String(fields[6])
            member.special = String(fields[7])
            members.append(member)
        }
        return members
    }
}
