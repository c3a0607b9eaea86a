import KilnCore

/// Somewhere blobs can be read from by digest: the local store, an OCI layout. The registry
/// client pushes from a source without knowing which it is.
package protocol BlobSource: Sendable {
    /// A file holding the blob's bytes, checked against the digest.
    func verifiedBlobPath(_ digest: Digest) throws -> String
    /// The file said to hold the blob, without reading it: for uploads, where the registry checks
    /// the digest of what arrives and a mismatch sends kiln to `verifiedBlobPath`.
    func blobFile(_ digest: Digest) throws -> String
    /// A small blob's bytes (manifests, configs), checked against the digest.
    func readBlob(_ digest: Digest, limit: Int) throws -> [UInt8]
    /// A file holding a blob the source does not hold yet, fetched from wherever it knows the
    /// blob is (a layer left in its registry); throws when it knows nowhere.
    func fetchBlob(_ descriptor: Descriptor) async throws -> String
}

extension BlobSource {
    package func fetchBlob(_ descriptor: Descriptor) async throws -> String {
        try blobFile(descriptor.digest)
    }
}
