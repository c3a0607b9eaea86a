import COpenSSL

/// Why a key could not be read or used.
package struct SigningError: KilnError {
    package var message: String
    package var category: ErrorCategory { .input }
    package var description: String { message }

    package init(_ message: String) { self.message = message }
}

/// A key pair's private half, read from a PEM file (PKCS#8 or SEC1, unencrypted): ECDSA P-256
/// (signatures over SHA-256, DER-encoded) or Ed25519. It signs provenance statements.
package final class SigningKey: @unchecked Sendable {
    // An EVP_PKEY, never changed once read (OpenSSL allows concurrent use of a const key).
    private let key: OpaquePointer
    /// SHA-256 of the public key's DER SubjectPublicKeyInfo, hex: the `keyid` of signatures.
    package let keyID: String

    package init(pemFile path: String) throws(SigningError) {
        key = try KeyPEM.load(path, private: true)
        keyID = KeyPEM.keyID(key)
    }

    deinit { EVP_PKEY_free(key) }

    /// The signature of `message` (ECDSA: over its SHA-256, DER; Ed25519: over the message).
    package func sign(_ message: [UInt8]) throws(SigningError) -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { throw SigningError("OpenSSL could not start a signature") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit(context, nil, KeyPEM.digest(for: key), nil, key) == 1 else {
            throw SigningError("OpenSSL could not sign with this key")
        }
        var length = 0
        guard EVP_DigestSign(context, nil, &length, message, message.count) == 1 else {
            throw SigningError("OpenSSL could not sign with this key")
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &signature, &length, message, message.count) == 1 else {
            throw SigningError("OpenSSL could not sign with this key")
        }
        return Array(signature.prefix(length))
    }
}

/// A public key, read from a PEM `PUBLIC KEY` file, that checks signatures.
package final class VerifyingKey: @unchecked Sendable {
    private let key: OpaquePointer
    package let keyID: String

    package init(pemFile path: String) throws(SigningError) {
        key = try KeyPEM.load(path, private: false)
        keyID = KeyPEM.keyID(key)
    }

    deinit { EVP_PKEY_free(key) }

    /// Whether `signature` is this key's over `message`.
    package func verify(_ signature: [UInt8], of message: [UInt8]) -> Bool {
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit(context, nil, KeyPEM.digest(for: key), nil, key) == 1 else { return false }
        return EVP_DigestVerify(context, signature, signature.count, message, message.count) == 1
    }
}

/// PEM keys through OpenSSL.
enum KeyPEM {
    /// The key in the PEM file at `path`: a private key (unencrypted) or a public one, of a
    /// kind kiln signs with; each refusal says what to do.
    static func load(_ path: String, private: Bool) throws(SigningError) -> OpaquePointer {
        let what = `private` ? "signing key" : "public key"
        let bytes: [UInt8]
        do {
            bytes = try ReadableFile.readAll(path: path, limit: 1 << 20)
        } catch {
            throw SigningError("cannot read the \(what) \(path): \(error)")
        }
        guard let key = read(bytes, private: `private`) else {
            throw SigningError(
                `private`
                    ? "\(path) is not an unencrypted PEM private key (make one: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \(path))"
                    : "\(path) is not a PEM public key (the public half of a signing key: openssl pkey -in KEY -pubout)"
            )
        }
        guard supported(key) else {
            EVP_PKEY_free(key)
            throw SigningError(
                "\(path): kiln \(`private` ? "signs with" : "checks signatures of") ECDSA P-256 or Ed25519 keys only")
        }
        return key
    }

    static func read(_ bytes: [UInt8], private: Bool) -> OpaquePointer? {
        bytes.withUnsafeBytes { buffer -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return nil }
            defer { BIO_free(bio) }
            // No passphrase prompt: an encrypted key is refused.
            let noPassphrase:
                @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32, UnsafeMutableRawPointer?) ->
                    Int32 = { _, _, _, _ in 0 }
            return `private`
                ? PEM_read_bio_PrivateKey(bio, nil, noPassphrase, nil)
                : PEM_read_bio_PUBKEY(bio, nil, noPassphrase, nil)
        }
    }

    static func supported(_ key: OpaquePointer) -> Bool {
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_ED25519: return true
        case EVP_PKEY_EC:
            var name = [CChar](repeating: 0, count: 64)
            var length = 0
            guard EVP_PKEY_get_utf8_string_param(key, "group", &name, name.count, &length) == 1 else { return false }
            return String(decoding: name.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "prime256v1"
        default: return false
        }
    }

    /// SHA-256 for ECDSA; none for Ed25519 (it hashes the message itself).
    static func digest(for key: OpaquePointer) -> OpaquePointer? {
        EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? nil : EVP_sha256()
    }

    /// The SHA-256 (hex) of the key's DER SubjectPublicKeyInfo.
    static func keyID(_ key: OpaquePointer) -> String {
        var der: UnsafeMutablePointer<UInt8>?
        let length = i2d_PUBKEY(key, &der)
        guard length > 0, let der else { return "" }
        defer { CRYPTO_free(der, #file, #line) }
        return Digest.sha256(of: Array(UnsafeBufferPointer(start: der, count: Int(length)))).hex
    }
}
