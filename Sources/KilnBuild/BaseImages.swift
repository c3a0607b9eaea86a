import KilnCore
import KilnDockerfile
import KilnOCI
import KilnStore

/// A base image as a build used it: the reference as the Dockerfile wrote it, pinned by the
/// index digest actually pulled, and the platform manifest's digest — what a cache key covers.
package struct PinnedBase: Sendable, Hashable, CustomStringConvertible {
    /// As written (`python:3.11-slim` → `docker.io/library/python@sha256:…`), not where it was
    /// pulled from: a mirror serving the same image gives the same key.
    package var reference: ImageReference
    /// The platform manifest's digest.
    package var manifestDigest: Digest
    /// The repository the image was really pulled from (a mirror, a replacement), for mounts.
    package var source: Repository?

    package init(reference: ImageReference, manifestDigest: Digest, source: Repository?) {
        self.reference = reference
        self.manifestDigest = manifestDigest
        self.source = source
    }

    /// `REFERENCE MANIFEST-DIGEST`, as a key line lists a base.
    package var description: String { "\(reference) \(manifestDigest)" }
}

/// A base image for one platform, with its layers in the local store.
package struct BaseImage: Sendable {
    /// What the build records of it; nil for images kiln holds itself (`RUN` checkpoints).
    package var pinned: PinnedBase?
    package var config: ImageConfig
    package var layers: [Descriptor]
    /// The manifest itself, for images kiln holds in its store (checkpoints).
    package var manifestDescriptor: Descriptor?

    package init(pinned: PinnedBase?, config: ImageConfig, layers: [Descriptor], manifestDescriptor: Descriptor? = nil)
    {
        self.pinned = pinned
        self.config = config
        self.layers = layers
        self.manifestDescriptor = manifestDescriptor
    }

    /// The platform manifest's digest: what a step key chains from.
    package var manifestDigest: Digest { pinned?.manifestDigest ?? manifestDescriptor!.digest }
}

/// Where `FROM` and `COPY --from=image` images come from, their layers put in the store (a
/// registry, in the lane: `RegistryBaseImages`).
package protocol BaseImageSource: Sendable {
    /// The image `reference` offers for `platform`.
    func image(_ reference: ImageReference, platform: Platform) async throws -> BaseImage
}

/// Where `RUN` checkpoints recorded by other runs come from (a registry, in the lane), looked for
/// after the local store.
package protocol CheckpointSource: Sendable {
    /// The checkpoint recorded under `key`, fetched into `store` (with its config and layers);
    /// nil when there is none.
    func fetch(_ key: Digest, into store: ContentStore) async throws -> BaseImage?
    /// The step keys traced executions of the step `identity` were recorded under
    /// (`RunReuse`), newest first; empty when there is none.
    func executions(_ identity: Digest) async throws -> [Digest]
}

extension CheckpointSource {
    package func executions(_ identity: Digest) async throws -> [Digest] { [] }
}

/// Layers a registry holds that the store may not: a build downloads a layer's blob only where
/// it needs its bytes (a container unpacks it, an instruction reads a file of it, a layout is
/// written), and only its indexes where it needs to know what it holds (a `COPY` onto it, a
/// `RUN`'s reuse check).
package protocol RemoteLayers: Sendable {
    /// Makes sure the blobs of `layers` are in `store`.
    func materialize(_ layers: [Descriptor], into store: ContentStore) async throws
    /// Makes sure `store` can list what each of `layers` holds and summarise its files: the
    /// blob, or the member and content indexes published beside a checkpoint.
    func indexes(_ layers: [Descriptor], into store: ContentStore) async throws
}

extension Instruction {
    /// Whether applying the instruction reads file contents of an image (not only what it
    /// lists): `COPY --from`, and `--chown` by name (which reads `/etc/passwd`, `/etc/group`).
    var readsImageFiles: Bool {
        switch command {
        case .copy(let copy), .add(let copy):
            if copy.from != nil { return true }
            if let chown = copy.chown, chown.contains(where: { !$0.isNumber && $0 != ":" }) { return true }
            return false
        case .onBuild: return true
        default: return false
        }
    }
}
