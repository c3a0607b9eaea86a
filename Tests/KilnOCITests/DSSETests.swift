import Foundation
import KilnCore
import KilnOCI
import KilnTestSupport
import Testing

/// DSSE envelopes signed with keys openssl made: what verifies, and what does not.
@Suite("Signed statements (DSSE)")
struct DSSETests {
    static func openssl(_ arguments: String, in folder: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "cd '\(folder)' && openssl \(arguments)"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "openssl \(arguments)")
    }

    /// (private, public) PEM paths of a new key made with `algorithm` options.
    static func pair(_ folder: String, _ name: String, _ algorithm: String) throws -> (String, String) {
        try openssl("genpkey \(algorithm) -out \(name).pem", in: folder)
        try openssl("pkey -in \(name).pem -pubout -out \(name).pub", in: folder)
        return ("\(folder)/\(name).pem", "\(folder)/\(name).pub")
    }

    @Test("PAE is the spec's encoding")
    func pae() {
        #expect(
            String(
                decoding: DSSEEnvelope.pae(type: "http://example.com/HelloWorld", body: Array("hello world".utf8)),
                as: UTF8.self)
                == "DSSEv1 29 http://example.com/HelloWorld 11 hello world")
    }

    @Test("P-256 and Ed25519 sign and verify; another key, another payload or another type do not verify")
    func roundTrip() throws {
        let folder = try TemporaryDirectory("dsse")
        for (name, algorithm) in [
            ("ec", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"), ("ed", "-algorithm ED25519"),
        ] {
            let (privatePath, publicPath) = try Self.pair(folder.path, name, algorithm)
            let (_, otherPath) = try Self.pair(folder.path, name + "-other", algorithm)
            let key = try SigningKey(pemFile: privatePath)
            let payload = Array(#"{"_type":"https://in-toto.io/Statement/v1"}"#.utf8)
            let envelope = try DSSEEnvelope.signed(payload, type: "application/vnd.in-toto+json", by: key)
            #expect(envelope.signatures.first?.keyid == key.keyID)
            #expect(envelope.verified(by: try VerifyingKey(pemFile: publicPath)) == payload, "\(name)")
            #expect(try VerifyingKey(pemFile: publicPath).keyID == key.keyID)
            #expect(envelope.verified(by: try VerifyingKey(pemFile: otherPath)) == nil, "\(name): another key")
            var altered = envelope
            altered.payload = Data(Array(#"{"_type":"x"}"#.utf8)).base64EncodedString()
            #expect(altered.verified(by: try VerifyingKey(pemFile: publicPath)) == nil, "\(name): another payload")
            var retyped = envelope
            retyped.payloadType = "text/plain"
            #expect(retyped.verified(by: try VerifyingKey(pemFile: publicPath)) == nil, "\(name): another type")
        }
    }

    @Test("keys kiln does not sign with are refused by name: secp256k1, RSA, encrypted, not a key")
    func refusedKeys() throws {
        let folder = try TemporaryDirectory("dsse-refused")
        let (k1, _) = try Self.pair(folder.path, "k1", "-algorithm EC -pkeyopt ec_paramgen_curve:secp256k1")
        let (rsa, _) = try Self.pair(folder.path, "rsa", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048")
        try Self.openssl(
            "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes-128-cbc -pass pass:secret -out locked.pem",
            in: folder.path)
        try "not a key\n".write(toFile: folder.path + "/text.pem", atomically: true, encoding: .utf8)
        for path in [k1, rsa] {
            #expect(throws: SigningError.self) { try SigningKey(pemFile: path) }
            do {
                _ = try SigningKey(pemFile: path)
            } catch {
                #expect(error.description.contains("ECDSA P-256 or Ed25519"), "\(error)")
            }
        }
        for path in [folder.path + "/locked.pem", folder.path + "/text.pem"] {
            do {
                _ = try SigningKey(pemFile: path)
                Issue.record("\(path) was read as a signing key")
            } catch {
                #expect(error.description.contains("not an unencrypted PEM private key"), "\(error)")
            }
        }
    }
}
