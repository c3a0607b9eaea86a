import KilnBuild
import KilnCore
import KilnDockerfile
import KilnOCI
import KilnRegistry
import KilnStore

/// The one path from a finished build to images in a registry, for the lane and `kiln build -t`:
/// the build's new `RUN` checkpoints are published (only now that everything succeeded), its
/// configs and manifests are put in the store, and images are pushed with the base's layers
/// mounted from the repository they were pulled from when it is on the same registry.
package struct BuildPublisher: Sendable {
    package let client: RegistryClient
    package let store: ContentStore
    /// Layers the build left in their registry: a push mounts them, or fetches them when it must
    /// upload them.
    package let layers: RegistryLayers?

    package init(client: RegistryClient, store: ContentStore, layers: RegistryLayers? = nil) {
        self.client = client
        self.store = store
        self.layers = layers
    }

    /// Publishes the checkpoints and stages the bundle; the bytes the checkpoints uploaded.
    package func prepare(_ result: BuildResult, checkpoints: RegistryCheckpoints?) async throws -> Int64 {
        var uploaded: Int64 = 0
        if let checkpoints, !result.newCheckpoints.isEmpty {
            uploaded = try await checkpoints.publish(result.newCheckpoints, from: store)
        }
        try store.stage(result.bundle)
        return uploaded
    }

    /// Pushes one image of the bundle (the index, or a platform manifest) to `target`.
    /// - Parameter puttingRoot: false: its blobs (and children), not the image's own manifest.
    package func push(_ image: Descriptor, of result: BuildResult, to target: ImageReference, puttingRoot: Bool = true)
        async throws -> PushReport
    {
        let mount = result.bases.compactMap(\.source).first { $0.registry == target.repository.registry }
        let source: any BlobSource = layers.map { LayeredSource(store: store, layers: $0) } ?? store
        return try await ImagePusher(client: client).push(
            image, from: source, to: target, mountFrom: mount, puttingRoot: puttingRoot)
    }
}

/// One Dockerfile build, described whole: what `kiln build CONTEXT` asks for.
package struct BuildRequest: Sendable {
    /// Where the result goes.
    package enum Output: Sendable {
        case layout(LayoutReference)
        case registry(ImageReference)
    }

    package var dockerfile: String
    package var context: String
    package var options: BuildOptions
    package var output: Output

    package init(dockerfile: String, context: String, options: BuildOptions, output: Output) {
        self.dockerfile = dockerfile
        self.context = context
        self.options = options
        self.output = output
    }
}

/// What one Dockerfile build made, and where it went.
package struct BuildOutcome: Sendable {
    package var result: BuildResult
    /// `REGISTRY/REPOSITORY:TAG` or `oci:DIR:TAG`.
    package var destination: String
}

/// Builds a `BuildRequest`: reads the Dockerfile and context, builds on bases from registries
/// (checkpoints shared through the target repository when pushing), then writes the layout or
/// publishes and pushes.
package enum ImageBuild {
    package static func run(_ request: BuildRequest, client: RegistryClient, store: ContentStore) async throws
        -> BuildOutcome
    {
        let text = String(decoding: try ReadableFile.readAll(path: request.dockerfile, limit: 4 << 20), as: UTF8.self)
        let dockerfile = try Dockerfile(parsing: text, file: request.dockerfile)
        let context = try BuildContext(root: request.context, dockerfile: request.dockerfile)
        var options = request.options
        var checkpoints: RegistryCheckpoints?
        // Base and checkpoint layers stay in their registry until the build needs their bytes.
        let layers = RegistryLayers(client: client)
        options.remoteLayers = layers
        if case .registry(let target) = request.output {
            checkpoints = RegistryCheckpoints(client: client, repository: target.repository, layers: layers)
            options.checkpoints = checkpoints
            await layers.note([], in: target.repository, indexes: true)
        }
        var bases = RegistryBaseImages(client: client, store: store)
        bases.layers = layers
        let builder = Builder(dockerfile: dockerfile, context: context, store: store, bases: bases, options: options)
        _ = try builder.preflight()
        let result = try await builder.build()
        switch request.output {
        case .registry(let target):
            let publisher = BuildPublisher(client: client, store: store, layers: layers)
            _ = try await publisher.prepare(result, checkpoints: checkpoints)
            let report = try await publisher.push(result.bundle.root, of: result, to: target)
            return BuildOutcome(result: result, destination: report.reference.description)
        case .layout(let layout):
            try await layers.materialize(result.bundle.images.flatMap(\.manifest.value.layers), into: store)
            try OCILayout(root: layout.directory).write(result.bundle, tag: layout.tag, layersFrom: store)
            return BuildOutcome(result: result, destination: layout.description)
        }
    }
}
