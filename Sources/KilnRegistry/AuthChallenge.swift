/// One challenge from a `WWW-Authenticate` header (RFC 7235 §4.1), e.g.
/// `Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"`.
///
/// A header may hold several challenges; parameter values may be tokens or quoted strings with
/// backslash escapes and commas inside; scheme and parameter names are case-insensitive.
package struct AuthChallenge: Hashable, Sendable {
    /// The scheme, lower case: `basic`, `bearer`, …
    package var scheme: String
    /// Parameters by lower-case name.
    package var parameters: [String: String]

    package init(scheme: String, parameters: [String: String] = [:]) {
        self.scheme = scheme.lowercased()
        self.parameters = parameters
    }

    package var realm: String? { parameters["realm"] }
    package var service: String? { parameters["service"] }
    /// The scopes the challenge asks for (space-separated in the header).
    package var scopes: [String] { parameters["scope"]?.split(separator: " ").map(String.init) ?? [] }

    /// Parses every challenge in a header value; malformed parts end the parse, keeping what came before.
    package static func parse(_ header: String) -> [AuthChallenge] {
        var scanner = Scanner(Array(header.utf8))
        var challenges = [AuthChallenge]()
        while true {
            scanner.skip { $0 == .space || $0 == .tab || $0 == .comma }
            guard let scheme = scanner.token() else { break }
            var challenge = AuthChallenge(scheme: scheme)
            while true {
                scanner.skip { $0 == .space || $0 == .tab }
                let mark = scanner.position
                guard let name = scanner.token() else { break }
                scanner.skip { $0 == .space || $0 == .tab }
                guard scanner.consume(.equals) else {
                    // Not a parameter: the start of the next challenge.
                    scanner.position = mark
                    break
                }
                scanner.skip { $0 == .space || $0 == .tab }
                guard let value = scanner.quotedString() ?? scanner.token() else { break }
                challenge.parameters[name.lowercased()] = value
                scanner.skip { $0 == .space || $0 == .tab }
                guard scanner.consume(.comma) else { break }
            }
            challenges.append(challenge)
        }
        return challenges
    }
}

extension UInt8 {
    fileprivate static let space = UInt8(ascii: " ")
    fileprivate static let tab = UInt8(ascii: "\t")
    fileprivate static let comma = UInt8(ascii: ",")
    fileprivate static let equals = UInt8(ascii: "=")
    fileprivate static let quote = UInt8(ascii: "\"")
    fileprivate static let backslash = UInt8(ascii: "\\")
}

private struct Scanner {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func skip(while predicate: (UInt8) -> Bool) {
        while position < bytes.count, predicate(bytes[position]) { position += 1 }
    }

    mutating func consume(_ byte: UInt8) -> Bool {
        guard position < bytes.count, bytes[position] == byte else { return false }
        position += 1
        return true
    }

    /// An RFC 7230 token (also accepting `/` so token68-style bare values survive).
    mutating func token() -> String? {
        let start = position
        while position < bytes.count, Self.isTokenByte(bytes[position]) { position += 1 }
        return position > start ? String(decoding: bytes[start..<position], as: UTF8.self) : nil
    }

    mutating func quotedString() -> String? {
        guard consume(.quote) else { return nil }
        var value = [UInt8]()
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            if byte == .quote { return String(decoding: value, as: UTF8.self) }
            if byte == .backslash, position < bytes.count {
                value.append(bytes[position])
                position += 1
            } else {
                value.append(byte)
            }
        }
        return String(decoding: value, as: UTF8.self)  // unterminated: keep what there is
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            Array("!#$%&'*+-.^_`|~/:".utf8).contains(byte)
        }
    }
}
