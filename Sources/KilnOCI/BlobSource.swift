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
}
