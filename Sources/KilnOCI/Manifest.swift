import KilnCore

/// An image manifest (image-spec `manifest.md`): one config and the ordered layers.
/// Decodes Docker v2 schema 2 manifests too; unknown fields are ignored.
public struct ImageManifest: Hashable, Sendable, Codable {
    public var schemaVersion: Int
    public var mediaType: MediaType?
    public var artifactType: MediaType?
    public var config: Descriptor
    public var layers: [Descriptor]
    public var subject: Descriptor?
    public var annotations: [String: String]?

    public init(
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
public struct ImageIndex: Hashable, Sendable, Codable {
    public var schemaVersion: Int
    public var mediaType: MediaType?
    public var artifactType: MediaType?
    public var manifests: [Descriptor]
    public var subject: Descriptor?
    public var annotations: [String: String]?

    public init(mediaType: MediaType = .ociIndex, manifests: [Descriptor], annotations: [String: String]? = nil) {
        self.schemaVersion = 2
        self.mediaType = mediaType
        self.manifests = manifests
        self.annotations = annotations
    }

    /// The first entry that is an image manifest for `platform`.
    public func manifest(for platform: Platform) -> Descriptor? {
        manifests.first { entry in
            guard entry.mediaType.isImageManifest, let entryPlatform = entry.platform else { return false }
            return platform.matches(entryPlatform)
        }
    }
}
