import KilnCore

/// The tar headers of a layer blob, kept next to the store as a small text file, so an image's
/// file system can be listed again without decompressing its layers (a base layer of hundreds of
/// MiB is read once per machine, not once per build).
///
/// One line per member, fields separated by tabs: kind (`d`, `f`, `l` symlink, `h` hard link,
/// `o` other), mode (octal), uid, gid, size, path, link target. A blob with a tab or newline in a
/// path gets no index and is read each time. The file is written atomically; one that does not
/// parse is ignored and rewritten.
package enum MemberIndex {
    /// The members of the blob at `blob`, from `index` when it is there, else read from the blob
    /// (and `index` written for next time).
    package static func members(ofBlobAt blob: String, index: String) throws(LayerError) -> [TarMember] {
        if let bytes = try? ReadableFile.readAll(path: index, limit: 256 << 20), let members = parse(bytes) {
            return members
        }
        let reader = try LayerReader(path: blob)
        var members = [TarMember]()
        while let member = try reader.next() { members.append(member) }
        if let text = render(members) {
            try? FilePaths.makeDirectories(FilePaths.directory(of: index))
            try? AtomicFileWriter.write(Array(text.utf8), to: index)
        }
        return members
    }

    static func render(_ members: [TarMember]) -> String? {
        var text = "kiln-member-index 1\n"
        for member in members {
            var fields: [String]
            switch member.kind {
            case .directory: fields = ["d", "0", member.path, ""]
            case .regularFile(let size): fields = ["f", String(size), member.path, ""]
            case .symlink(let target): fields = ["l", "0", member.path, target]
            case .hardLink(let target): fields = ["h", "0", member.path, target]
            case .other: fields = ["o", "0", member.path, ""]
            }
            if member.path.contains(where: { $0 == "\t" || $0 == "\n" })
                || fields[3].contains(where: { $0 == "\t" || $0 == "\n" })
            {
                return nil
            }
            fields.insert(contentsOf: [String(member.mode, radix: 8), String(member.uid), String(member.gid)], at: 1)
            text += fields.joined(separator: "\t") + "\n"
        }
        return text
    }

    static func parse(_ bytes: [UInt8]) -> [TarMember]? {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first == "kiln-member-index 1", lines.last == "" else { return nil }
        var members = [TarMember]()
        for line in lines.dropFirst().dropLast() {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 7, let mode = UInt32(fields[1], radix: 8), let uid = Int(fields[2]),
                let gid = Int(fields[3]),
                let size = Int64(fields[4])
            else { return nil }
            let kind: TarMember.Kind
            switch fields[0] {
            case "d": kind = .directory
            case "f": kind = .regularFile(size: size)
            case "l": kind = .symlink(target: fields[6])
            case "h": kind = .hardLink(target: fields[6])
            case "o": kind = .other
            default: return nil
            }
            members.append(TarMember(path: fields[5], kind: kind, mode: mode, uid: uid, gid: gid))
        }
        return members
    }
}
