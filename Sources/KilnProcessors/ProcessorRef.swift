/// A processor's name as its `registry.yaml` gives it: `ns/name@ver`, e.g. `llm/litellm@1`.
public struct ProcessorRef: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var namespace: String
    public var name: String
    public var version: String

    /// Parses `ns/name@ver`; nil when the text has another shape.
    public init?(parsing text: String) {
        guard let at = text.lastIndex(of: "@"), let slash = text[..<at].lastIndex(of: "/") else { return nil }
        namespace = String(text[..<slash])
        name = String(text[text.index(after: slash)..<at])
        version = String(text[text.index(after: at)...])
        let allowed = { (part: String) in
            !part.isEmpty
                && part.unicodeScalars.allSatisfy {
                    $0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-/".unicodeScalars.contains($0)
                }
        }
        guard allowed(namespace), allowed(name), allowed(version), !name.contains("/"), !version.contains("/") else {
            return nil
        }
    }

    public var description: String { "\(namespace)/\(name)@\(version)" }

    public static func < (lhs: ProcessorRef, rhs: ProcessorRef) -> Bool { lhs.description < rhs.description }
}
