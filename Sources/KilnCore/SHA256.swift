import COpenSSL

/// A streaming SHA-256 hasher on OpenSSL's EVP interface.
///
/// Feed it bytes in chunks of any size with `update`, then call `finalize` once. It holds only
/// OpenSSL's small context, so hashing a file of any size keeps memory flat. Not shareable across
/// tasks: one hasher belongs to one stream.
package final class SHA256Hasher {
    private let context: OpaquePointer
    private var finished = false

    package init() {
        guard let context = EVP_MD_CTX_new() else { fatalError("OpenSSL could not allocate a digest context") }
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            fatalError("OpenSSL refused to initialise SHA-256")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    /// Adds bytes to the hash.
    package func update(_ bytes: UnsafeRawBufferPointer) {
        precondition(!finished, "update after finalize")
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        // EVP_DigestUpdate fails only on a misused context, which `finished` rules out.
        _ = EVP_DigestUpdate(context, base, bytes.count)
    }

    /// Adds bytes to the hash.
    package func update(_ bytes: some ByteStorage) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Ends the stream and returns its digest. Call once.
    package func finalize() -> Digest {
        precondition(!finished, "finalize called twice")
        finished = true
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        _ = EVP_DigestFinal_ex(context, &out, &length)
        return Digest(sha256Bytes: out.prefix(Int(length)))
    }
}

/// Byte containers that can lend their storage; `[UInt8]`, `ArraySlice<UInt8>` and
/// `UnsafeRawBufferPointer` conform.
package protocol ByteStorage {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ByteStorage where Element == UInt8 {}
extension ArraySlice: ByteStorage where Element == UInt8 {}
extension UnsafeRawBufferPointer: ByteStorage {
    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self) }
}

extension Digest {
    /// The SHA-256 digest of bytes held in memory.
    package static func sha256(of bytes: some ByteStorage) -> Digest {
        let hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// The SHA-256 digest and size of a file, read in 1 MiB chunks.
    /// - Throws: `FileError` when the file cannot be opened or read.
    package static func sha256(ofFileAt path: String) throws(FileError) -> (digest: Digest, size: Int64) {
        let file = try ReadableFile(path: path)
        let hasher = SHA256Hasher()
        var size: Int64 = 0
        do {
            try file.forEachChunk { chunk in
                hasher.update(chunk)
                size += Int64(chunk.count)
            }
        } catch let error as FileError {
            throw error
        } catch {
            throw FileError("read", path: path, code: EIO)  // the body throws only FileError
        }
        return (hasher.finalize(), size)
    }
}
