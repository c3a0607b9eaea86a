import Foundation
import KilnCore

/// A DSSE envelope (Dead Simple Signing Envelope, v1): a payload, its type, and signatures over
/// the pre-authentication encoding of both (`PAE`), so a signature covers the type too. kiln
/// signs provenance statements this way, as `cosign attest` does.
package struct DSSEEnvelope: Codable, Sendable, Equatable {
    package static let mediaType = MediaType("application/vnd.dsse.envelope.v1+json")

    package struct Signature: Codable, Sendable, Equatable {
        package var keyid: String
        /// Base64 of the signature bytes.
        package var sig: String
    }

    /// Base64 of the payload bytes.
    package var payload: String
    package var payloadType: String
    package var signatures: [Signature]

    /// `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal bytes.
    package static func pae(type: String, body: [UInt8]) -> [UInt8] {
        Array("DSSEv1 \(type.utf8.count) \(type) \(body.count) ".utf8) + body
    }

    /// `payload` of `payloadType`, signed by `key`.
    package static func signed(_ payload: [UInt8], type: String, by key: SigningKey) throws(SigningError)
        -> DSSEEnvelope
    {
        let signature = try key.sign(pae(type: type, body: payload))
        return DSSEEnvelope(
            payload: Data(payload).base64EncodedString(), payloadType: type,
            signatures: [Signature(keyid: key.keyID, sig: Data(signature).base64EncodedString())])
    }

    /// The payload's bytes, when some signature is `key`'s over it and its type; nil otherwise.
    package func verified(by key: VerifyingKey) -> [UInt8]? {
        guard let body = Data(base64Encoded: payload).map(Array.init) else { return nil }
        let message = Self.pae(type: payloadType, body: body)
        for signature in signatures {
            guard let bytes = Data(base64Encoded: signature.sig) else { continue }
            if key.verify(Array(bytes), of: message) { return body }
        }
        return nil
    }
}
