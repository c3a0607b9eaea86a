import KilnCore
import KilnOCI

extension OCILayout: BlobSource {
    /// A layout blob's path after checking its bytes; a layout is input kiln did not write, so
    /// a mismatch is reported but the file is left alone.
    package func verifiedBlobPath(_ digest: Digest) throws -> String {
        let path = blobPath(digest)
        guard FilePaths.exists(path) else { throw StoreError.layout(path: root, reason: "blob \(digest) is missing") }
        let actual: Digest
        do {
            actual = try Digest.sha256(ofFileAt: path).digest
        } catch {
            throw StoreError.unreadable(path: path, error)
        }
        guard actual == digest else { throw StoreError.layoutCorrupt(path: root, digest: digest, actual: actual) }
        return path
    }

    package func blobFile(_ digest: Digest) throws -> String {
        let path = blobPath(digest)
        guard FilePaths.exists(path) else { throw StoreError.layout(path: root, reason: "blob \(digest) is missing") }
        return path
    }

    package func readBlob(_ digest: Digest, limit: Int) throws -> [UInt8] {
        let path = blobPath(digest)
        guard FilePaths.exists(path) else { throw StoreError.layout(path: root, reason: "blob \(digest) is missing") }
        let bytes: [UInt8]
        do {
            bytes = try ReadableFile.readAll(path: path, limit: limit)
        } catch {
            throw StoreError.unreadable(path: path, error)
        }
        let actual = Digest.sha256(of: bytes)
        guard actual == digest else { throw StoreError.layoutCorrupt(path: root, digest: digest, actual: actual) }
        return bytes
    }

    /// The `index.json` entry named `tag`, or the only entry when `tag` is nil.
    /// - Throws: `StoreError.layout` when there is no such entry, or several and no tag.
    package func entry(tag: String?) throws(StoreError) -> Descriptor {
        let manifests = try index().manifests
        if let tag {
            guard let entry = manifests.last(where: { $0.annotations?[AnnotationKey.refName] == tag }) else {
                let tags = manifests.compactMap { $0.annotations?[AnnotationKey.refName] }
                throw .layout(
                    path: root,
                    reason: "no image tagged '\(tag)' (tags: \(tags.isEmpty ? "none" : tags.joined(separator: ", ")))")
            }
            return entry
        }
        guard manifests.count == 1 else {
            throw .layout(
                path: root,
                reason: manifests.isEmpty ? "index.json lists no image" : "several images; name one as DIR:TAG")
        }
        return manifests[0]
    }
}
