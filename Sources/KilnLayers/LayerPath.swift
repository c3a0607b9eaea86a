import KilnCore

/// A path inside an image's file system, as it appears in a layer: relative to the root, without
/// `.` or empty components, with every `..` resolved, and never escaping the root.
///
/// Identity and order are by UTF-8 bytes, not by Swift's Unicode-aware string comparison, so two
/// names that differ only in normalisation stay two paths, and sorting matches what `LC_ALL=C sort`
/// does on every machine.
package struct LayerPath: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The normalised path, e.g. `app/lib/x.py`.
    package let bytes: [UInt8]

    /// Normalises `text`.
    /// - Throws: `LayerError.invalidPath` when the path is empty, absolute, or climbs out of the root.
    package init(_ text: String) throws(LayerError) {
        if text.isEmpty { throw .invalidPath(text, reason: "the path is empty") }
        if text.utf8.contains(0) {
            throw .invalidPath(text.replacingOccurrences(of: "\u{0}", with: "\\0"), reason: "the path has a NUL byte")
        }
        if text.hasPrefix("/") { throw .invalidPath(text, reason: "layer paths must be relative to the image root") }
        var components = [Substring]()
        for component in text.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..":
                if components.isEmpty { throw .invalidPath(text, reason: "'..' climbs out of the image root") }
                components.removeLast()
            default: components.append(component)
            }
        }
        if components.isEmpty { throw .invalidPath(text, reason: "the path names the image root itself") }
        self.bytes = Array(components.joined(separator: "/").utf8)
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    /// The path as text.
    package var description: String { String(decoding: bytes, as: UTF8.self) }

    /// The parent directory, or nil for a top-level path.
    package var parent: LayerPath? {
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return nil }
        return LayerPath(bytes: Array(bytes[..<slash]))
    }

    /// Every ancestor, outermost first (`a`, `a/b` for `a/b/c`).
    package var ancestors: [LayerPath] {
        var result = [LayerPath]()
        var current = parent
        while let path = current {
            result.append(path)
            current = path.parent
        }
        return result.reversed()
    }

    /// This path with `component` appended; `component` is normalised the same way.
    package func appending(_ component: String) throws(LayerError) -> LayerPath {
        try LayerPath(description + "/" + component)
    }

    package static func < (lhs: LayerPath, rhs: LayerPath) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}
