import KilnCore
import KilnOCI

/// One platform's image of a resolved reference: its manifest and config, as the registry has them.
package struct ResolvedPlatformImage: Sendable {
    package let platform: Platform
    package let manifest: FetchedManifest
    package let imageManifest: ImageManifest
    package let config: ImageConfig
    package let configBytes: [UInt8]
}

/// A reference resolved to digests: the top-level manifest (index or image) and each platform's image.
package struct ResolvedImage: Sendable {
    package let reference: ImageReference
    package let root: FetchedManifest
    package let images: [ResolvedPlatformImage]

    /// The reference pinned to the top-level digest.
    package var pinned: ImageReference { reference.pinned(to: root.digest) }
}

extension RegistryClient {
    /// Resolves `reference` to its top-level digest and, for each of `platforms`, the manifest and
    /// config a build would start from. Layers are not downloaded.
    /// - Throws: `RegistryError.notFound` naming the platforms the image offers when one is missing.
    package func resolve(_ reference: ImageReference, platforms: [Platform]) async throws(RegistryError)
        -> ResolvedImage
    {
        let root = try await fetchManifest(reference)
        let repository = reference.repository
        var images = [ResolvedPlatformImage]()
        if root.mediaType.isIndex {
            let index = try decode(ImageIndex.self, root.bytes, "the index of \(reference)")
            for platform in platforms {
                let entry = try await imageEntry(
                    in: index, digest: root.digest, for: platform, reference: reference, seen: [root.digest])
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

    /// The image manifest an index offers for `platform`, following nested indexes (which some
    /// registries and tools write) and refusing a loop by name instead of following it forever.
    private func imageEntry(
        in index: ImageIndex, digest: Digest, for platform: Platform, reference: ImageReference, seen: [Digest]
    )
        async throws(RegistryError) -> Descriptor
    {
        if let entry = index.manifest(for: platform) { return entry }
        let nested = index.manifests.filter { entry in
            entry.mediaType.isIndex && (entry.platform.map(platform.matches) ?? true)
        }
        if let loop = nested.first(where: { seen.contains($0.digest) }) {
            let what = loop.digest == digest ? "lists itself" : "lists an index that lists it again"
            throw .protocolViolation(
                host: reference.repository.registry, operation: "resolve \(reference) for \(platform)",
                reason: "serves an index that \(what) (\(loop.digest.short)): a loop, with no image to build on")
        }
        if let child = nested.first, seen.count < 4 {
            let fetched = try await fetchManifest(
                ImageReference(repository: reference.repository, digest: child.digest))
            let childIndex = try decode(ImageIndex.self, fetched.bytes, "the index \(child.digest) of \(reference)")
            return try await imageEntry(
                in: childIndex, digest: child.digest, for: platform, reference: reference, seen: seen + [child.digest])
        }
        let offered = index.manifests.filter(\.mediaType.isImageManifest).compactMap { $0.platform?.description }
        throw .notFound(
            "\(reference) has no \(platform) image (\(offered.isEmpty ? "it lists no platform image" : "it offers: " + offered.joined(separator: ", ")))"
        )
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
