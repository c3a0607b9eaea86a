/// Any text (a path may hold any byte but NUL) as one field of a tab-separated line, and back:
/// `\` `\t` `\n` `\r` are written `\\` `\t` `\n` `\r`, nothing else changes.
package enum FieldText {
    package static func escape(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x5C || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) else {
            return text
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(text.utf8.count + 8)
        for byte in text.utf8 {
            switch byte {
            case 0x5C: bytes += [0x5C, 0x5C]
            case 0x09: bytes += [0x5C, UInt8(ascii: "t")]
            case 0x0A: bytes += [0x5C, UInt8(ascii: "n")]
            case 0x0D: bytes += [0x5C, UInt8(ascii: "r")]
            default: bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Nil when the field holds an escape `escape` does not write.
    package static func unescape(_ field: Substring) -> String? {
        guard field.utf8.contains(0x5C) else { return String(field) }
        var bytes = [UInt8]()
        var iterator = field.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == 0x5C else {
                bytes.append(byte)
                continue
            }
            switch iterator.next() {
            case 0x5C: bytes.append(0x5C)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            default: return nil
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
