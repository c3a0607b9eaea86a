import KilnCore

/// An image manifest (image-spec `manifest.md`): one config and the ordered layers.
/// Decodes Docker v2 schema 2 manifests too; unknown fields are ignored.
package struct ImageManifest: Hashable, Sendable, Codable {
    package var schemaVersion: Int
    package var mediaType: MediaType?
    package var artifactType: MediaType?
    package var config: Descriptor
    package var layers: [Descriptor]
    package var subject: Descriptor?
    package var annotations: [String: String]?

    package init(
        mediaType: MediaType = .ociManifest, config: Descriptor, layers: [Descriptor],
        annotations: [String: String]? = nil
    ) {
        self.schemaVersion = 2
        self.mediaType = mediaType
        self.config = config
        self.layers = layers
        self.annotations = annotations
    }
}

/// An image index or Docker manifest list (image-spec `image-index.md`): manifests per platform.
package struct ImageIndex: Hashable, Sendable, Codable {
    package var schemaVersion: Int
    package var mediaType: MediaType?
    package var artifactType: MediaType?
    package var manifests: [Descriptor]
    package var subject: Descriptor?
    package var annotations: [String: String]?

    package init(mediaType: MediaType = .ociIndex, manifests: [Descriptor], annotations: [String: String]? = nil) {
        self.schemaVersion = 2
        self.mediaType = mediaType
        self.manifests = manifests
        self.annotations = annotations
    }

    /// The first entry that is an image manifest for `platform`.
    package func manifest(for platform: Platform) -> Descriptor? {
        manifests.first { entry in
            guard entry.mediaType.isImageManifest, let entryPlatform = entry.platform else { return false }
            return platform.matches(entryPlatform)
        }
    }
}
