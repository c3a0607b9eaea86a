import Foundation
import KilnCore

/// The one place kiln turns model values into JSON bytes.
///
/// Registries and digests deal in raw bytes, so every document kiln writes must come out the same
/// on every machine and run: keys sorted, no insignificant whitespace, slashes not escaped. A value
/// is encoded once; the bytes are kept (`Encoded`) and are what gets hashed, stored and pushed.
package enum CanonicalJSON {
    /// Encodes `value` canonically.
    package static func encode(_ value: some Encodable) throws(OCIError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw .encoding(String(describing: type(of: value)), reason: "\(error)")
        }
    }

    /// Decodes a document, ignoring fields the model does not know.
    /// - Throws: `OCIError.decoding` naming what was being read.
    package static func decode<T: Decodable>(_ type: T.Type, from bytes: some ByteStorage, what: String)
        throws(OCIError) -> T
    {
        do {
            return try bytes.withUnsafeBytes { try JSONDecoder().decode(T.self, from: Data($0)) }
        } catch let error as DecodingError {
            throw .decoding(what, reason: Self.explain(error))
        } catch {
            throw .decoding(what, reason: "\(error)")
        }
    }

    private static func explain(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "the document" : keys.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing '\(key.stringValue)' in \(path(context))"
        case .typeMismatch(_, let context): return "wrong type at \(path(context)): \(context.debugDescription)"
        case .valueNotFound(_, let context): return "missing value at \(path(context))"
        case .dataCorrupted(let context): return "\(context.debugDescription) at \(path(context))"
        @unknown default: return "\(error)"
        }
    }
}

/// A value together with the exact bytes it was encoded to, and the descriptor of those bytes.
package struct Encoded<Value: Sendable>: Sendable {
    package let value: Value
    package let bytes: [UInt8]
    package let descriptor: Descriptor

    /// Encodes `value` canonically and describes the bytes with `mediaType`.
    package init(_ value: Value, mediaType: MediaType, platform: Platform? = nil) throws(OCIError)
    where Value: Encodable {
        self.value = value
        self.bytes = try CanonicalJSON.encode(value)
        self.descriptor = Descriptor(
            mediaType: mediaType, digest: .sha256(of: bytes), size: Int64(bytes.count), platform: platform)
    }

    /// Keeps bytes as received (from a registry or a file), decoding them without re-encoding.
    package init(decoding bytes: [UInt8], mediaType: MediaType, what: String) throws(OCIError) where Value: Decodable {
        self.value = try CanonicalJSON.decode(Value.self, from: bytes, what: what)
        self.bytes = bytes
        self.descriptor = Descriptor(mediaType: mediaType, digest: .sha256(of: bytes), size: Int64(bytes.count))
    }
}

/// Failures turning model values into JSON and back.
package enum OCIError: KilnError, Equatable {
    case encoding(String, reason: String)
    case decoding(String, reason: String)

    package var description: String {
        switch self {
        case .encoding(let what, let reason): "cannot encode \(what): \(reason)"
        case .decoding(let what, let reason): "cannot read \(what): \(reason)"
        }
    }

    package var category: ErrorCategory {
        switch self {
        case .encoding: .internal
        case .decoding: .input
        }
    }
}
