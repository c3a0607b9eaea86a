import KilnCore

/// A media type naming what a blob or manifest holds (image-spec `media-types.md`).
///
/// Kiln writes the OCI family; it reads the Docker v2 schema 2 family too, since base images
/// on Docker Hub and GHCR often use it. Parameters after `;` (as in a `Content-Type` header) are
/// not part of the value: `init(contentType:)` strips them.
package struct MediaType: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    package let rawValue: String

    package init(rawValue: String) { self.rawValue = rawValue }
    package init(_ rawValue: String) { self.rawValue = rawValue }

    /// From an HTTP `Content-Type`, ignoring parameters and surrounding space.
    package init(contentType: String) {
        let bare = contentType.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
        self.rawValue = bare.trimmingASCIIWhitespace()
    }

    package var description: String { rawValue }

    package init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    // OCI image-spec v1.1
    package static let ociManifest = MediaType("application/vnd.oci.image.manifest.v1+json")
    package static let ociIndex = MediaType("application/vnd.oci.image.index.v1+json")
    package static let ociConfig = MediaType("application/vnd.oci.image.config.v1+json")
    package static let ociLayer = MediaType("application/vnd.oci.image.layer.v1.tar")
    package static let ociLayerGzip = MediaType("application/vnd.oci.image.layer.v1.tar+gzip")
    package static let ociLayerZstd = MediaType("application/vnd.oci.image.layer.v1.tar+zstd")
    package static let ociEmpty = MediaType("application/vnd.oci.empty.v1+json")

    // Docker image manifest v2, schema 2
    package static let dockerManifest = MediaType("application/vnd.docker.distribution.manifest.v2+json")
    package static let dockerManifestList = MediaType("application/vnd.docker.distribution.manifest.list.v2+json")
    package static let dockerConfig = MediaType("application/vnd.docker.container.image.v1+json")
    package static let dockerLayerGzip = MediaType("application/vnd.docker.image.rootfs.diff.tar.gzip")
    package static let dockerForeignLayerGzip = MediaType(
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")

    /// An image manifest, OCI or Docker.
    package var isImageManifest: Bool { self == .ociManifest || self == .dockerManifest }
    /// An index or manifest list, OCI or Docker.
    package var isIndex: Bool { self == .ociIndex || self == .dockerManifestList }
    /// A layer whose bytes are gzip-compressed tar.
    package var isGzipLayer: Bool {
        self == .ociLayerGzip || self == .dockerLayerGzip || self == .dockerForeignLayerGzip
    }
}

extension String {
    package func trimmingASCIIWhitespace() -> String {
        let bytes = Array(utf8)
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0a || $0 == 0x0d }
        guard let start = bytes.firstIndex(where: { !isSpace($0) }),
            let end = bytes.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(decoding: bytes[start...end], as: UTF8.self)
    }
}
