import KilnCore
import KilnDockerfile
import KilnLayers
import KilnOCI
import KilnStore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension BuildahExecutor {
    /// One working container carried across a stage's plain `RUN` steps on one platform
    /// (`buildah from scratch`): kiln unpacks the image's layers into its root itself, once, and
    /// each later step unpacks only the layers added since. buildah only runs the step; the
    /// step's layer is what changed in the root (`ContainerChanges`), so no image is loaded,
    /// committed or exported: with the vfs driver each of those copies the whole tree.
    struct WorkingContainer: Sendable {
        var name: String
        /// Its root directory on disk.
        var rootfs: String
        /// The layer blobs unpacked into the root, in order: the image the root holds.
        var layers: [Digest]
    }

    /// Whether a step can run in the working container: kiln writes the root's files with their
    /// owners itself, which only root can.
    static var canUseWorkingContainer: Bool { geteuid() == 0 }

    /// A plain `RUN` (`command`) on `start` in the session's working container, traced when
    /// `strace` is given: the image after it, or the step's failure.
    func runInWorkingContainer(
        _ command: [String], segment: Segment, start: ImageState, session: Session, tools: Tools,
        store: ContentStore, layerOptions: LayerOptions, log: @escaping @Sendable (String) -> Void
    ) async throws -> PlatformImage {
        // Whenever reuse by read set is on, the unpacking takes each file's summary as the bytes go by: a
        // later traced step of the stage needs them for its read set, even when this one is not traced.
        let hashing = reusesByReads
        var container = try await session.workingContainer(
            holding: start.layers, buildah: tools.buildah, store: store, hashing: hashing)
        let mark = try Self.io { () throws(FileError) in try ContainerChanges.Watermark.take(in: session.folder.path) }

        let runtime = start.config.config
        var arguments = session.storageArguments + ["run"] + isolation.buildahArguments
        if let instruction = segment.instructions.last, case .run(let run) = instruction.command,
            run.network == "none"
        {
            guard case .oci = isolation else {
                throw BuildError.input(
                    "RUN --network=none needs a network namespace of the step's own: buildah's chroot isolation shares the host's (use --isolation oci, with runc)",
                    location: instruction.location)
            }
            arguments += ["--network", "none"]
        }
        if let directory = runtime?.workingDir, !directory.isEmpty { arguments += ["--workingdir", directory] }
        if let user = runtime?.user, !user.isEmpty { arguments += ["--user", user] }
        // The image's environment, then the ARGs in scope that no ENV of the image overrides,
        // as a build gives a RUN.
        let environment = runtime?.env ?? []
        for line in environment { arguments += ["--env", line] }
        let environmentNames = Set(environment.map { String($0.prefix { $0 != "=" }) })
        for (name, value) in segment.args.sorted(by: { $0.key < $1.key }) where !environmentNames.contains(name) {
            arguments += ["--env", "\(name)=\(value)"]
        }
        arguments += [container.name, "--"] + command
        let ran = try await Self.runStep(arguments, tools: tools, log: log)
        guard ran.status == 0 else {
            // The root holds part of a failed step: the next step starts a new container.
            throw Self.runFailure(ran, segment: segment, code: "exit code \(ran.status)")
        }

        let (rootfs, epoch) = (container.rootfs, layerOptions.epoch)
        let layer = try await BlockingWork.run { () throws -> LayerResult in
            let entries = try ContainerChanges.entries(
                in: rootfs, lowerLayers: start.layers, store: store, since: mark)
            let ingest = try store.beginIngest()
            // The layer's file summaries, taken as its bytes go by: a later step's reuse check
            // (here, or on another runner through the published index) reads them.
            let summaries = hashing ? SummaryCollector() : nil
            let layer = try LayerWriter.write(entries, options: layerOptions, to: ingest, summaries: summaries)
            _ = try ingest.commit(expected: layer.digest)
            if let summaries { LowerFilesystem.keep(summaries.summaries, ofBlobAt: store.blobPath(layer.digest)) }
            try ContainerChanges.settle(entries, in: try RootDirectory(path: rootfs), epoch: epoch)
            return layer
        }
        container.layers.append(layer.digest)
        session.keep(container)
        return try Self.stepImage(
            start: start, layer: layer, instruction: segment.instructions.last, epoch: epoch, store: store)
    }

    /// `start` plus a step's `layer`: `start`'s config with the layer's diff ID and a history
    /// entry for the step as kiln writes one (a `RUN` changes no runtime config).
    static func stepImage(
        start: ImageState, layer: LayerResult, instruction: Instruction?, epoch: Int64, store: ContentStore
    ) throws -> PlatformImage {
        var config = start.config
        config.rootfs.diffIDs.append(layer.diffID)
        let entry = History(created: SourceDateEpoch.rfc3339(epoch), createdBy: instruction?.source, comment: "kiln")
        config.history = (config.history ?? []) + [entry]
        let descriptor = Descriptor(mediaType: layer.mediaType, digest: layer.digest, size: layer.size)
        let image = try PlatformImage(config: config, layers: start.layers + [descriptor])
        _ = try store.put(image.config.bytes, mediaType: image.config.descriptor.mediaType)
        return image
    }

    static func io<T>(_ body: () throws(FileError) -> T) throws(BuildError) -> T {
        do {
            return try body()
        } catch {
            throw BuildError.io(error)
        }
    }
}

extension BuildahExecutor.Session {
    /// The session's working container holding `layers`: the one kept from the step before,
    /// with the layers added since unpacked into it, or a new one. Taken out of the session
    /// until `keep` puts it back, so a step that fails leaves none behind for the next.
    func workingContainer(holding layers: [Descriptor], buildah: String, store: ContentStore, hashing: Bool)
        async throws -> BuildahExecutor.WorkingContainer
    {
        var container = container.withLock { kept in
            defer { kept = nil }
            return kept
        }
        let digests = layers.map(\.digest)
        if let kept = container, !digests.starts(with: kept.layers) {
            _ = try? await BuildahExecutor.run(buildah, storageArguments + ["rm", kept.name])
            container = nil
        }
        if container == nil {
            let made = try await BuildahExecutor.run(buildah, storageArguments + ["from", "--quiet", "scratch"])
            guard made.status == 0, let name = made.output.split(separator: "\n").last.map(String.init) else {
                throw BuildError(
                    .executor("buildah could not make a working container: \(BuildahExecutor.tail(made.output))"))
            }
            let mounted = try await BuildahExecutor.run(buildah, storageArguments + ["mount", name])
            guard mounted.status == 0, let rootfs = mounted.output.split(separator: "\n").last.map(String.init),
                rootfs.hasPrefix("/")
            else {
                throw BuildError(
                    .executor("buildah could not mount the working container: \(BuildahExecutor.tail(mounted.output))"))
            }
            container = BuildahExecutor.WorkingContainer(name: name, rootfs: rootfs, layers: [])
        }
        guard var container else { preconditionFailure("a working container was just made") }
        let missing = Array(layers.dropFirst(container.layers.count))
        if !missing.isEmpty {
            let rootfs = container.rootfs
            try await BlockingWork.run {
                let root = try RootDirectory(path: rootfs)
                for layer in missing {
                    let blob = store.blobPath(layer.digest)
                    let members = try MemberIndex.members(ofBlobAt: blob, index: store.memberIndexPath(layer.digest))
                    // The content digests a read set needs, taken while the bytes go by once.
                    let hashes = hashing && !LowerFilesystem.hasSummaries(ofBlobAt: blob)
                    let digests = try LayerApplier.apply(blob: blob, members: members, to: root, hashing: hashes)
                    if hashes { LowerFilesystem.keep(digests, ofBlobAt: blob) }
                }
            }
            container.layers += missing.map(\.digest)
        }
        return container
    }

    /// Puts the working container back for the session's next step.
    func keep(_ working: BuildahExecutor.WorkingContainer) { container.withLock { $0 = working } }
}
