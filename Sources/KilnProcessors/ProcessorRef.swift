/// A processor's name as its `registry.yaml` gives it: `ns/name@ver`, e.g. `llm/litellm@1`.
package struct ProcessorRef: Hashable, Sendable, Comparable, CustomStringConvertible {
    package var namespace: String
    package var name: String
    package var version: String

    /// Parses `ns/name@ver`; nil when the text has another shape.
    package init?(parsing text: String) {
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

    package var description: String { "\(namespace)/\(name)@\(version)" }

    package static func < (lhs: ProcessorRef, rhs: ProcessorRef) -> Bool { lhs.description < rhs.description }
}
