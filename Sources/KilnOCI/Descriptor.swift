import KilnCore

/// A reference to content by media type, digest and size (image-spec `descriptor.md`).
package struct Descriptor: Hashable, Sendable, Codable {
    package var mediaType: MediaType
    package var digest: Digest
    package var size: Int64
    package var urls: [String]?
    package var annotations: [String: String]?
    package var data: String?
    package var platform: Platform?
    package var artifactType: MediaType?

    package init(
        mediaType: MediaType, digest: Digest, size: Int64,
        annotations: [String: String]? = nil, platform: Platform? = nil
    ) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
        self.platform = platform
    }
}

/// Well-known annotation keys (image-spec `annotations.md`).
package enum AnnotationKey {
    /// The tag of a manifest inside an OCI image layout's `index.json`.
    package static let refName = "org.opencontainers.image.ref.name"
    package static let created = "org.opencontainers.image.created"
}
