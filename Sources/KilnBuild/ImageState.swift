import KilnCore
import KilnLayers
import KilnOCI
import KilnStore

/// A stage's image as instructions change it: config, layers, and (built on first use) what
/// its file system holds.
struct ImageState {
    var config: ImageConfig
    var layers: [Descriptor]
    /// The step key of this state: chained from the base's platform manifest digest through
    /// every instruction applied (see `StepKeys`).
    var stepKey: Digest
    /// Blob files of layers not yet applied to `filesystem` (read only when an instruction needs it).
    private var pendingBlobs: [(blob: String, index: String)] = []
    private var filesystemValue = ImageFilesystem()

    /// An empty image for `platform` (`FROM scratch`).
    init(scratchFor platform: Platform) {
        config = ImageConfig(platform: platform, config: ContainerConfig(), rootfs: RootFS(diffIDs: []), history: [])
        layers = []
        stepKey = StepKeys.start(scratch: platform)
    }

    /// The state `FROM base` starts from: the base's config and layers, untouched.
    init(base: BaseImage, store: ContentStore) {
        config = base.config
        layers = base.layers.map { layer in
            var layer = layer
            // The same bytes under the OCI name, as an OCI manifest lists them.
            if layer.mediaType == .dockerLayerGzip { layer.mediaType = .ociLayerGzip }
            return layer
        }
        stepKey = StepKeys.start(base: base.manifestDigest)
        pendingBlobs = base.layers.map { (store.blobPath($0.digest), store.memberIndexPath($0.digest)) }
    }

    /// The container config, changed in place (no copy per instruction: a Dockerfile of many
    /// thousand `LABEL`s builds in linear time).
    var runtime: ContainerConfig {
        get { config.config ?? ContainerConfig() }
        _modify {
            if config.config == nil { config.config = ContainerConfig() }
            yield &config.config!
        }
        set { config.config = newValue }
    }

    /// Where each environment variable is in `runtime.env`, built on first use.
    private var environmentIndex: [String: Int]?

    /// The file system, reading base layers the first time it is asked for.
    mutating func filesystem() throws(LayerError) -> ImageFilesystem {
        if !pendingBlobs.isEmpty {
            for pending in pendingBlobs { try filesystemValue.apply(layerBlob: pending.blob, index: pending.index) }
            pendingBlobs = []
        }
        return filesystemValue
    }

    /// Adds a layer kiln wrote, and its history entry.
    mutating func append(layer: LayerResult, entries: [LayerEntry], history: History) throws(LayerError) {
        _ = try filesystem()
        filesystemValue.apply(entries: entries)
        layers.append(layer.descriptor)
        config.rootfs.diffIDs.append(layer.diffID)
        appendHistory(history)
    }

    /// Records an instruction that changed only the config.
    mutating func appendEmpty(history: History) {
        var history = history
        history.emptyLayer = true
        appendHistory(history)
    }

    private mutating func appendHistory(_ history: History) {
        if config.history == nil { config.history = [] }
        config.history!.append(history)
    }

    /// The value of an environment variable of the image.
    func environment(_ name: String) -> String? {
        let env = config.config?.env ?? []
        if let environmentIndex {
            guard let index = environmentIndex[name] else { return nil }
            return String(env[index].dropFirst(name.count + 1))
        }
        for pair in env where pair.hasPrefix(name + "=") { return String(pair.dropFirst(name.count + 1)) }
        return nil
    }

    /// Sets a variable in place (BuildKit's order: a redefined variable keeps its position).
    mutating func setEnvironment(_ name: String, _ value: String) {
        if environmentIndex == nil {
            var index = [String: Int]()
            for (position, pair) in (runtime.env ?? []).enumerated() {
                let key =
                    pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
                    ?? pair
                if index[key] == nil { index[key] = position }
            }
            environmentIndex = index
        }
        if runtime.env == nil { runtime.env = [] }
        if let position = environmentIndex![name] {
            runtime.env![position] = "\(name)=\(value)"
        } else {
            environmentIndex![name] = runtime.env!.count
            runtime.env!.append("\(name)=\(value)")
        }
    }
}
