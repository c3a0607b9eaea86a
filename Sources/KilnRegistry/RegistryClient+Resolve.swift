import KilnCore
import KilnOCI

/// One platform's image of a resolved reference: its manifest and config, as the registry has them.
public struct ResolvedPlatformImage: Sendable {
    public let platform: Platform
    public let manifest: FetchedManifest
    public let imageManifest: ImageManifest
    public let config: ImageConfig
    public let configBytes: [UInt8]
}

/// A reference resolved to digests: the top-level manifest (index or image) and each platform's image.
public struct ResolvedImage: Sendable {
    public let reference: ImageReference
    public let root: FetchedManifest
    public let images: [ResolvedPlatformImage]

    /// The reference pinned to the top-level digest.
    public var pinned: ImageReference { reference.pinned(to: root.digest) }
}

extension RegistryClient {
    /// Resolves `reference` to its top-level digest and, for each of `platforms`, the manifest and
    /// config a build would start from. Layers are not downloaded.
    /// - Throws: `RegistryError.notFound` naming the platforms the image offers when one is missing.
    public func resolve(_ reference: ImageReference, platforms: [Platform]) async throws(RegistryError) -> ResolvedImage {
        let root = try await fetchManifest(reference)
        let repository = reference.repository
        var images = [ResolvedPlatformImage]()
        if root.mediaType.isIndex {
            let index = try decode(ImageIndex.self, root.bytes, "the index of \(reference)")
            for platform in platforms {
                guard let entry = index.manifest(for: platform) else {
                    let offered = index.manifests.compactMap { $0.platform?.description }
                    throw .notFound("\(reference) has no \(platform) image (it offers: \(offered.joined(separator: ", ")))")
                }
                let manifest = try await fetchManifest(ImageReference(repository: repository, digest: entry.digest))
                images.append(try await platformImage(manifest, platform: platform, repository: repository))
            }
        } else {
            let image = try await platformImage(root, platform: nil, repository: repository)
            for platform in platforms where !platform.matches(image.platform) {
                throw .notFound("\(reference) is a single \(image.platform) image, not \(platform)")
            }
            images.append(image)
        }
        return ResolvedImage(reference: reference, root: root, images: images)
    }

    private func platformImage(_ manifest: FetchedManifest, platform: Platform?, repository: Repository)
        async throws(RegistryError) -> ResolvedPlatformImage
    {
        let image = try decode(ImageManifest.self, manifest.bytes, "manifest \(manifest.digest)")
        let configBytes = try await fetchBlob(image.config.digest, from: repository)
        let config = try decode(ImageConfig.self, configBytes, "config \(image.config.digest)")
        return ResolvedPlatformImage(
            platform: platform ?? config.platform, manifest: manifest, imageManifest: image, config: config,
            configBytes: configBytes)
    }

    func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], _ what: String) throws(RegistryError) -> T {
        do {
            return try CanonicalJSON.decode(type, from: bytes, what: what)
        } catch {
            throw .protocolViolation(host: "registry", operation: "read \(what)", reason: "sent invalid JSON: \(error)")
        }
    }
}
