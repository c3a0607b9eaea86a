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
    /// A layer not yet applied to `filesystem`: it is applied when an instruction first asks,
    /// so a stage whose last `COPY` brings a million files never holds their nodes.
    private enum PendingLayer {
        /// A base layer's blob file and its member index.
        case blob(String, index: String)
        /// The entries of a layer kiln wrote.
        case entries([LayerEntry])
    }
    private var pending: [PendingLayer] = []
    private var filesystemValue = ImageFilesystem()

    /// An empty image for `platform` (`FROM scratch`).
    init(scratchFor platform: Platform) {
        // BuildKit's empty image works in `/`.
        var runtime = ContainerConfig()
        runtime.workingDir = "/"
        config = ImageConfig(platform: platform, config: runtime, rootfs: RootFS(diffIDs: []), history: [])
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
        pending = base.layers.map { .blob(store.blobPath($0.digest), index: store.memberIndexPath($0.digest)) }
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

    /// The file system, applying the layers added since it was last asked for.
    mutating func filesystem() throws(LayerError) -> ImageFilesystem {
        while !pending.isEmpty {
            switch pending.removeFirst() {
            case .blob(let blob, let index): try filesystemValue.apply(layerBlob: blob, index: index)
            case .entries(let entries): filesystemValue.apply(entries: entries)
            }
        }
        return filesystemValue
    }

    /// Adds a layer kiln wrote, and its history entry.
    mutating func append(layer: LayerResult, entries: [LayerEntry], history: History) {
        pending.append(.entries(entries))
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
