import KilnCore
import KilnOCI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An OCI image layout directory (image-spec `image-layout.md`): `oci-layout`, `index.json`
/// and `blobs/sha256/…`, as `skopeo copy oci:DIR:TAG` and `umoci unpack --image DIR:TAG` read it.
///
/// Writing an image adds its blobs, then replaces `index.json` atomically with the new entry
/// (an entry with the same tag is replaced), so a reader never sees an index naming a blob that
/// is not there yet.
package struct OCILayout: Sendable {
    package let root: String

    /// Opens an existing layout for reading.
    /// - Throws: `StoreError.layout` when `root` has no `oci-layout` file.
    package init(existingAt root: String) throws(StoreError) {
        guard FilePaths.exists(FilePaths.join(root, "oci-layout")) else {
            throw .layout(path: root, reason: "not an OCI image layout (no oci-layout file)")
        }
        self.root = root
    }

    /// Opens the layout at `root` for writing, creating it when missing, and removes the
    /// half-written blobs a killed kiln left in it.
    /// - Throws: `StoreError.layout` when `root` holds something that is not an OCI layout.
    package init(root: String) throws(StoreError) {
        self.root = root
        let marker = FilePaths.join(root, "oci-layout")
        ScratchDirectory.sweepTemporaries(FilePaths.join(root, "blobs/sha256"))
        ScratchDirectory.sweepTemporaries(root)
        do {
            try FilePaths.makeDirectories(FilePaths.join(root, "blobs/sha256"))
            if !FilePaths.exists(marker) {
                try AtomicFileWriter.write(Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8), to: marker)
            }
        } catch {
            throw .layoutFile(path: root, error)
        }
    }

    /// The file holding a blob of this layout.
    package func blobPath(_ digest: Digest) -> String { FilePaths.join(root, "blobs/sha256/\(digest.hex)") }

    /// Writes `bundle` into the layout and names it `tag` in `index.json` (untagged when nil).
    /// Layer blobs are taken from `store`, verified on the way.
    package func write(_ bundle: ImageBundle, tag: String?, layersFrom store: ContentStore) throws(StoreError) {
        if let tag { try Self.validate(tag: tag) }
        for image in bundle.images {
            for layer in image.manifest.value.layers {
                try copyBlob(layer.digest, from: store)
            }
            try putBlob(image.config.bytes, digest: image.config.descriptor.digest)
            try putBlob(image.manifest.bytes, digest: image.manifest.descriptor.digest)
        }
        if case .multiPlatform(let index, _) = bundle {
            try putBlob(index.bytes, digest: index.descriptor.digest)
        }
        var entry = bundle.root
        if case .multiPlatform = bundle { entry.platform = nil }
        try addToIndex(entry, tag: tag)
    }

    /// The entries `index.json` lists now.
    package func index() throws(StoreError) -> ImageIndex {
        let path = FilePaths.join(root, "index.json")
        guard FilePaths.exists(path) else { return ImageIndex(manifests: []) }
        do {
            let bytes = try ReadableFile.readAll(path: path, limit: 16 << 20)
            return try CanonicalJSON.decode(ImageIndex.self, from: bytes, what: path)
        } catch let error as KilnError {
            throw .layout(path: root, reason: error.description)
        } catch {
            throw .layout(path: root, reason: "\(error)")
        }
    }

    private func addToIndex(_ descriptor: Descriptor, tag: String?) throws(StoreError) {
        // Serialise concurrent writers of the same layout: flock on the directory itself, which
        // adds no file that other tools would have to ignore.
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .layoutFile(path: root, FileError("open", path: root)) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        var index = try index()
        var entry = descriptor
        if let tag {
            entry.annotations = [AnnotationKey.refName: tag]
            index.manifests.removeAll { $0.annotations?[AnnotationKey.refName] == tag }
        }
        index.manifests.append(entry)
        index.mediaType = .ociIndex
        do {
            try AtomicFileWriter.write(try CanonicalJSON.encode(index), to: FilePaths.join(root, "index.json"))
        } catch let error as FileError {
            throw .layoutFile(path: root, error)
        } catch let error as KilnError {
            throw .layout(path: root, reason: error.description)
        } catch {
            throw .layout(path: root, reason: "\(error)")
        }
    }

    private func putBlob(_ bytes: [UInt8], digest: Digest) throws(StoreError) {
        let path = blobPath(digest)
        if FilePaths.exists(path) { return }
        do {
            try AtomicFileWriter.write(bytes, to: path)
        } catch {
            throw .layoutFile(path: root, error)
        }
    }

    private func copyBlob(_ digest: Digest, from store: ContentStore) throws(StoreError) {
        let destination = blobPath(digest)
        if FilePaths.exists(destination) { return }
        let source = try store.verifiedPath(digest)
        do {
            try FilePaths.copyFile(from: source, to: destination)
        } catch {
            throw .layoutFile(path: root, error)
        }
    }

    /// Tags follow the distribution spec's rule (`Tag.isValid`).
    package static func validate(tag: String) throws(StoreError) {
        guard Tag.isValid(tag) else {
            throw .layout(
                path: tag, reason: "'\(tag)' is not a valid tag (letters, digits, '_', '.', '-'; at most 128)")
        }
    }
}

/// `oci:DIR[:TAG]`, the form skopeo uses for an OCI layout target.
package struct LayoutReference: Sendable, Equatable, CustomStringConvertible {
    package var directory: String
    package var tag: String?

    /// Parses `oci:DIR[:TAG]` (the `oci:` prefix may be left out).
    package init(parsing text: String) throws(StoreError) {
        var rest = Substring(text)
        if rest.hasPrefix("oci:") { rest = rest.dropFirst(4) }
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            directory = String(rest[..<colon])
            let tag = String(rest[rest.index(after: colon)...])
            try OCILayout.validate(tag: tag)
            self.tag = tag
        } else {
            directory = String(rest)
            tag = nil
        }
        guard !directory.isEmpty else { throw .layout(path: text, reason: "write oci:DIRECTORY[:TAG]") }
    }

    package var description: String { "oci:\(directory)" + (tag.map { ":\($0)" } ?? "") }
}
