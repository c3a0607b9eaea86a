/// A content digest as the OCI image spec defines it (image-spec `descriptor.md`, "Digests"):
/// `algorithm ":" encoded`. Kiln produces and accepts SHA-256 only, in its canonical form of
/// 64 lower-case hex characters; anything else is rejected when parsed, so no API past the edge
/// of the program handles a digest as a free string.
package struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The hash algorithms kiln understands.
    package enum Algorithm: String, Sendable, Hashable {
        case sha256
    }

    /// The algorithm, `.sha256`.
    package let algorithm: Algorithm
    /// The 64 lower-case hex characters of the hash.
    package let hex: String

    /// Parses `sha256:<64 lower-case hex>` strictly.
    /// - Throws: `DigestError.invalid` with the reason when the text is not of that form.
    package init(parsing text: String) throws(DigestError) {
        guard let colon = text.firstIndex(of: ":") else {
            throw .invalid(text, reason: "expected 'sha256:' followed by 64 hex characters")
        }
        let name = String(text[..<colon])
        let encoded = String(text[text.index(after: colon)...])
        guard let algorithm = Algorithm(rawValue: name) else {
            throw .invalid(text, reason: "unsupported algorithm '\(name)' (only sha256 is supported)")
        }
        try self.init(algorithm: algorithm, hex: encoded, original: text)
    }

    /// Builds a SHA-256 digest from its hex part, checked as strictly as `init(parsing:)`.
    package init(sha256Hex hex: String) throws(DigestError) {
        try self.init(algorithm: .sha256, hex: hex, original: "sha256:" + hex)
    }

    private init(algorithm: Algorithm, hex: String, original: String) throws(DigestError) {
        guard hex.utf8.count == 64 else {
            throw .invalid(original, reason: "expected 64 hex characters after 'sha256:', found \(hex.utf8.count)")
        }
        guard hex.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw .invalid(original, reason: "the hex part must be lower-case 0-9 and a-f")
        }
        self.algorithm = algorithm
        self.hex = hex
    }

    /// Builds a digest from raw hash bytes (32 for SHA-256).
    package init(sha256Bytes bytes: some Sequence<UInt8>) {
        let table = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(table[Int(byte >> 4)])
            out.append(table[Int(byte & 0x0f)])
        }
        precondition(out.count == 64, "a SHA-256 hash has 32 bytes")
        self.algorithm = .sha256
        self.hex = String(decoding: out, as: UTF8.self)
    }

    /// `sha256:<hex>`, the form registries and OCI documents use.
    package var description: String { "\(algorithm.rawValue):\(hex)" }
    package var debugDescription: String { "Digest(\(description))" }
    /// The first 12 hex characters, for messages meant for people.
    package var short: String { String(hex.prefix(12)) }

    package static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.description < rhs.description }
}

extension Digest: Codable {
    package init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            try self.init(parsing: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Why a text is not a digest.
package enum DigestError: KilnError, Equatable {
    case invalid(String, reason: String)

    package var description: String {
        switch self {
        case .invalid(let text, let reason): "'\(text)' is not a valid digest: \(reason)"
        }
    }

    package var category: ErrorCategory { .input }
}
