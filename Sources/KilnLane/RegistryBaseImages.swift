import KilnBuild
import KilnCore
import KilnOCI
import KilnRegistry
import KilnStore

/// Base images from registries, resolved by digest and downloaded once into the content store
/// (a layer already there is not fetched again).
package struct RegistryBaseImages: BaseImageSource {
    private let client: RegistryClient
    private let store: ContentStore
    private let downloadsLayers: Bool
    private let memo: Resolutions
    private let sources: BaseSources
    /// Where layers are left in their registry until a build needs them (nil: downloaded now).
    package var layers: RegistryLayers?
    /// Says something the user should know once per run (a mirror that lied about a digest).
    package var warn: (@Sendable (String) -> Void)?

    /// Resolutions shared by several sources for one run, so a base that many processors use is
    /// asked for once per platform (a tag could otherwise move halfway through a run).
    package actor Resolutions {
        private let entries = SingleFlight<String, BaseImage>(keeping: .results)
        /// Where each base was pulled from (a mirror, or a replacement), by the repository the
        /// Dockerfile wrote.
        private var sources: [String: String] = [:]
        private var warned = Set<String>()

        package init() {}

        func record(source: Repository, for written: Repository) {
            sources[written.description] = source.description
        }

        /// The repository `written` was pulled from, when another (a mirror, a replacement).
        package func source(of written: Repository) -> String? {
            sources[written.description].flatMap { $0 == written.description ? nil : $0 }
        }

        /// Whether `message` is said for the first time this run.
        func firstTime(_ message: String) -> Bool { warned.insert(message).inserted }

        func image(_ key: String, _ make: @escaping @Sendable () async throws -> BaseImage) async throws -> BaseImage {
            try await entries.value(for: key, make).value
        }
    }

    /// - Parameters:
    ///   - downloadsLayers: false to resolve only (config and digests), as computing a cache key needs.
    ///   - resolutions: shared with other sources of the same run.
    ///   - sources: mirrors and replacements (`kiln.yaml` `mirrors:` and `bases:`).
    package init(
        client: RegistryClient, store: ContentStore, downloadsLayers: Bool = true,
        resolutions: Resolutions = Resolutions(),
        sources: BaseSources = BaseSources()
    ) {
        self.client = client
        self.store = store
        self.downloadsLayers = downloadsLayers
        self.memo = resolutions
        self.sources = sources
    }

    /// A registry's "no such manifest or repository" for a base image, as the bad input it is
    /// (exit 2, naming the image and the registry); any other error as it was.
    static func missing(_ error: any Error, text: String, candidate: ImageReference) -> any Error {
        guard case .http(let failure) = error as? RegistryError,
            failure.status == 404 || ["MANIFEST_UNKNOWN", "NAME_UNKNOWN"].contains(failure.code ?? "")
        else { return error }
        return BuildError.input(
            "the base image '\(text)' does not exist: \(candidate.repository.registry) has no \(candidate) (\(failure.code ?? "HTTP 404")); check the image name and tag",
            location: nil)
    }

    package func image(_ written: ImageReference, platform: Platform) async throws -> BaseImage {
        let text = written.description
        let (client, candidates, memo, warn) = (self.client, sources.candidates(for: written), self.memo, self.warn)
        let image = try await memo.image("\(text) \(platform)") {
            // Each mirror in turn, the origin last; the first that serves the image wins.
            var failures = [String]()
            for (number, candidate) in candidates.enumerated() {
                do {
                    let image = try await client.resolve(candidate, platforms: [platform])
                    let platformImage = image.images[0]
                    // Recorded under the reference as written, with the digest pulled: a mirror
                    // serving the same image gives the same key as the origin.
                    let pinned = PinnedBase(
                        reference: ImageReference(repository: written.repository, digest: image.root.digest),
                        manifestDigest: platformImage.manifest.digest, source: candidate.repository)
                    await memo.record(source: candidate.repository, for: written.repository)
                    return BaseImage(
                        pinned: pinned, config: platformImage.config, layers: platformImage.imageManifest.layers)
                } catch {
                    guard number < candidates.count - 1 else {
                        if failures.isEmpty { throw Self.missing(error, text: text, candidate: candidate) }
                        let origin = (error as? any KilnError) ?? BuildError(.executor("\(error)"))
                        throw BuildError(.basePull(reference: text, origin: origin, mirrors: failures))
                    }
                    failures.append("\(candidate): \(error)")
                    // A mirror serving bytes that are not what it named is worth a word: it is
                    // skipped, but it will be again on every runner until someone fixes it.
                    if (error as? any KilnError)?.category == .integrity {
                        let message =
                            "mirror \(candidate.repository.registry) served \(candidate) with bytes that do not match their digest (\(error)); skipped, pulled from the next source"
                        if await memo.firstTime(message) { warn?(message) }
                    }
                }
            }
            // (Unreached: the origin is always the last candidate, and its failure is thrown.)
            throw BuildError(
                .basePull(reference: text, origin: BuildError(.executor("no source to pull from")), mirrors: failures))
        }
        guard downloadsLayers else { return image }
        if let layers {
            await layers.note(image.layers, in: image.pinned?.source ?? written.repository, indexes: false)
        }
        for layer in image.layers where !store.contains(layer.digest) {
            guard layer.mediaType.isGzipLayer || layer.mediaType == .ociLayer || layer.mediaType == .dockerLayerGzip
            else {
                throw BuildError.input(
                    "\(text) has a layer of type \(layer.mediaType.rawValue), which kiln cannot build on", location: nil
                )
            }
            // Left where it is when the build fetches what it needs of it itself.
            if layers != nil { continue }
            let ingest = try await client.downloadBlob(layer, from: image.pinned?.source ?? written.repository) {
                try store.beginIngest()
            }
            _ = try ingest.commit(expected: layer.digest)
        }
        return image
    }
}
