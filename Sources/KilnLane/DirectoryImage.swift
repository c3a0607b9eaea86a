import KilnCore
import KilnLayers
import KilnOCI
import KilnStore

/// `kiln image create`: an image of one directory, one deterministic layer under a prefix, for
/// each platform (one index when several), with the runtime config given.
package struct DirectoryImageRequest: Sendable {
    package var entries: [LayerEntry]
    /// Where the directory lands in the image, for the history entry.
    package var prefix: String
    package var platforms: [Platform]
    package var runtime: ContainerConfig
    package var layerOptions: LayerOptions
    package var output: LayoutReference

    package init(
        entries: [LayerEntry], prefix: String, platforms: [Platform], runtime: ContainerConfig,
        layerOptions: LayerOptions,
        output: LayoutReference
    ) {
        self.entries = entries
        self.prefix = prefix
        self.platforms = platforms
        self.runtime = runtime
        self.layerOptions = layerOptions
        self.output = output
    }
}

package enum DirectoryImage {
    /// Writes the layer into the store and the image into the layout; the bundle and its layer.
    package static func create(_ request: DirectoryImageRequest, store: ContentStore) throws -> (
        bundle: ImageBundle, layer: LayerResult
    ) {
        let ingest = try store.beginIngest()
        let layer = try LayerWriter.write(request.entries, options: request.layerOptions, to: ingest)
        try ingest.commit(expected: layer.digest)
        let created = SourceDateEpoch.rfc3339(request.layerOptions.epoch)
        let history = History(created: created, createdBy: "kiln image create: directory contents to \(request.prefix)")
        let images = try request.platforms.map { (platform) throws(OCIError) in
            try PlatformImage(
                config: ImageConfig(
                    platform: platform, created: created, config: request.runtime,
                    rootfs: RootFS(diffIDs: [layer.diffID]),
                    history: [history]),
                layers: [layer.descriptor])
        }
        let bundle = try ImageBundle(images: images)
        try OCILayout(root: request.output.directory).write(bundle, tag: request.output.tag, layersFrom: store)
        return (bundle, layer)
    }
}
