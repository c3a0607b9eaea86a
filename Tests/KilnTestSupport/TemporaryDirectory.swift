import Foundation

/// A fresh directory under /tmp for one test, removed when the value goes away: the one scratch
/// helper every test target uses.
public final class TemporaryDirectory {
    public let path: String

    /// `/tmp/kiln-LABEL-XXXXXXXX`.
    public init(_ label: String = "test") throws {
        path = "/tmp/kiln-\(label)-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// A new folder inside, made with its parents.
    public func sub(_ name: String) throws -> String {
        let full = path + "/" + name
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        return full
    }

    /// Writes `text` to `relative` inside, making its folders.
    public func write(_ relative: String, _ text: String) throws {
        let url = URL(fileURLWithPath: path).appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
    }
}
