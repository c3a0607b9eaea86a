import KilnCore

/// One platform's image, ready to store or push: its config and manifest, each encoded once.
/// The layer blobs it lists live elsewhere (the store) and are addressed by digest.
package struct PlatformImage: Sendable {
    package let config: Encoded<ImageConfig>
    package let manifest: Encoded<ImageManifest>

    /// Encodes `config` and the manifest listing it with `layers`, in that order.
    package init(config: ImageConfig, layers: [Descriptor], annotations: [String: String]? = nil) throws(OCIError) {
        let config = try Encoded(config, mediaType: .ociConfig)
        self.config = config
        self.manifest = try Encoded(
            ImageManifest(config: config.descriptor, layers: layers, annotations: annotations),
            mediaType: .ociManifest)
    }

    /// The platform the config declares.
    package var platform: Platform { config.value.platform }

    /// The manifest's descriptor with its platform, as an index lists it.
    package var descriptor: Descriptor {
        var descriptor = manifest.descriptor
        descriptor.platform = platform
        return descriptor
    }
}

/// What a build produces: one image, or an index of images for several platforms.
package enum ImageBundle: Sendable {
    case single(PlatformImage)
    case multiPlatform(index: Encoded<ImageIndex>, images: [PlatformImage])

    /// An index over `images` when there are several (or when `forceIndex`), else the one image.
    package init(images: [PlatformImage], forceIndex: Bool = false) throws(OCIError) {
        precondition(!images.isEmpty, "an image bundle needs at least one image")
        if images.count == 1 && !forceIndex {
            self = .single(images[0])
        } else {
            let index = try Encoded(ImageIndex(manifests: images.map(\.descriptor)), mediaType: .ociIndex)
            self = .multiPlatform(index: index, images: images)
        }
    }

    /// The top-level descriptor: the index, or the single manifest.
    package var root: Descriptor {
        switch self {
        case .single(let image): image.descriptor
        case .multiPlatform(let index, _): index.descriptor
        }
    }

    /// The per-platform images.
    package var images: [PlatformImage] {
        switch self {
        case .single(let image): [image]
        case .multiPlatform(_, let images): images
        }
    }
}
