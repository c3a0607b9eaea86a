/// Tag names, as the distribution spec defines them: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`. Shared
/// by image references and OCI layout `ref.name`s.
package enum Tag {
    package static func isValid(_ tag: String) -> Bool {
        let bytes = Array(tag.utf8)
        func isWord(_ byte: UInt8) -> Bool {
            (0x30...0x39).contains(byte) || (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte) || byte == 0x5f
        }
        guard let first = bytes.first, isWord(first), bytes.count <= 128 else { return false }
        return bytes.dropFirst().allSatisfy { isWord($0) || $0 == 0x2e || $0 == 0x2d }
    }
}
