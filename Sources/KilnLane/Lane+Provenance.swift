import Foundation
import KilnBuild
import KilnCore
import KilnOCI
import KilnProcessors
import KilnRegistry
import KilnStore

/// Provenance for each image the lane pushes: an in-toto statement with a SLSA provenance v1
/// predicate (the input key, the context files and bases by digest, the Dockerfile, kiln's
/// version, the git revision), pushed as an OCI artifact whose `subject` is the image. Registries
/// with the referrers API list it there; for the others (distribution 2.8, GHCR) the
/// `sha256-HEX` tag holds an index of the image's referrers. The image itself never changes.
extension Lane {
    /// kiln's build type: what `externalParameters` and `internalParameters` mean.
    static let buildType = "https://kiln.build/provenance/lane/v1"

    /// The statement for `image`, the build of `processor` for `platform` with `key`.
    func provenanceStatement(
        processor: Processor, platform: Platform, key: InputKey, image: Descriptor, repository: Repository
    ) async throws -> ProvenanceStatement {
        let root = settings.config.root
        let dockerfile = FilePaths.relative(processor.dockerfile, to: root)
        let dockerfileBytes = try ReadableFile.readAll(path: processor.dockerfile, limit: 4 << 20)
        var dependencies = [ProvenanceStatement.ResourceDescriptor]()
        if let source = settings.source, let revision = settings.revision {
            dependencies.append(.init(uri: "git+\(source)", digest: ["gitCommit": revision]))
        }
        dependencies.append(.init(name: dockerfile, digest: ["sha256": Digest.sha256(of: dockerfileBytes).hex]))
        let context = FilePaths.relative(processor.context, to: root)
        for (path, leaf) in key.parts.files.sorted(by: { $0.key < $1.key }) {
            // "file MODE HEX": a context file the COPY/ADD instructions read.
            let fields = leaf.split(separator: " ")
            guard fields.count == 3, fields[0] == "file" else { continue }
            let name = context == "." ? path : context + "/" + path
            dependencies.append(.init(name: name, digest: ["sha256": String(fields[2])]))
        }
        for base in key.parts.bases {
            // "REFERENCE sha256:HEX": a base or --from image by its platform manifest.
            let fields = base.split(separator: " ")
            guard fields.count == 2, let digest = try? Digest(parsing: String(fields[1])) else { continue }
            // Pulled from a mirror (or a replacement): said, so the record is true of the bytes.
            let written = try? ImageReference(parsing: String(fields[0]))
            var pulledFrom: String?
            if let written, let source = await resolutions.source(of: written.repository) {
                pulledFrom = "oci://\(source)@\(digest)"
            }
            dependencies.append(
                .init(uri: "oci://\(fields[0])", digest: ["sha256": digest.hex], downloadLocation: pulledFrom))
        }
        var external = [
            "processor": processor.ref.description, "platform": platform.description, "dockerfile": dockerfile,
            "context": context,
        ]
        if let source = settings.source { external["source"] = source }
        if let revision = settings.revision { external["revision"] = revision }
        var parameters = ["inputKey": key.digest.description, "keyFormat": key.parts.format]
        for (name, value) in key.parts.args { parameters["buildArg." + name] = value }
        let definition = ProvenanceStatement.BuildDefinition(
            buildType: Self.buildType, externalParameters: external, internalParameters: parameters,
            resolvedDependencies: dependencies)
        let run = ProvenanceStatement.RunDetails(
            builder: .init(id: settings.builderID ?? "kiln", version: ["kiln": KilnVersion.current]),
            metadata: settings.invocationID.map { ["invocationId": $0] })
        return ProvenanceStatement(
            subject: [.init(name: repository.description, digest: ["sha256": image.digest.hex])],
            predicate: .init(buildDefinition: definition, runDetails: run))
    }

    /// Attaches provenance to each hit whose image lacks it (`Lookup.lacksProvenance`); the
    /// bytes uploaded.
    func repairProvenance(
        _ job: ProcessorJob, lookups: [(Platform, Lookup)], keys: [(platform: Platform, key: InputKey)],
        repository: Repository
    ) async throws -> Int64 {
        var bytes: Int64 = 0
        for (platform, lookup) in lookups where lookup.lacksProvenance {
            guard let image = lookup.hit?.descriptor, let key = keys.first(where: { $0.platform == platform })?.key
            else { continue }
            let statement = try await provenanceStatement(
                processor: job.processor, platform: platform, key: key, image: image, repository: repository)
            bytes += try await attachProvenance(statement, to: image, in: repository)
        }
        return bytes
    }

    /// Pushes `statement` as an artifact whose subject is `image` in `repository`, and lists it
    /// under the referrers tag when the registry has no referrers API. The bytes uploaded.
    func attachProvenance(_ statement: ProvenanceStatement, to image: Descriptor, in repository: Repository)
        async throws -> Int64
    {
        let encoded = try CanonicalJSON.encode(statement)
        var signed: Int64 = 0
        if let key = settings.signingKey {
            signed = try await attachSignedStatement(encoded, to: image, in: repository, key: key)
        }
        let blob = try store.put(encoded, mediaType: ProvenanceStatement.mediaType)
        let empty = try store.put(Array("{}".utf8), mediaType: .ociEmpty)
        let manifest = ProvenanceStatement.artifact(
            statement: blob, empty: empty, subject: image, annotations: statement.annotations)
        var artifact = try store.put(try CanonicalJSON.encode(manifest), mediaType: .ociManifest)
        let pusher = ImagePusher(client: client)
        let pushed = try await pusher.push(
            artifact, from: store, to: ImageReference(repository: repository, digest: artifact.digest))
        let bytes = pushed.bytesUploaded + artifact.size + signed
        if try await client.referrers(of: image.digest, in: repository) != nil { return bytes }
        // No referrers API: the image's referrers tag lists the artifact (with its annotations,
        // as the API would).
        artifact.artifactType = ProvenanceStatement.mediaType
        artifact.annotations = manifest.annotations
        return bytes
            + (try await Self.addReferrer(artifact, to: image.digest, in: repository, client: client, store: store))
    }

    /// The tag under which the signed statements of `image` are kept (cosign's `.att`).
    static func attestationTag(_ image: Digest) -> String { "sha256-\(image.hex).att" }

    /// Pushes `statement` signed by `key` as a DSSE envelope, a layer of the image's `.att` tag
    /// (added to the envelopes already there, as `cosign attest` does). The bytes uploaded.
    func attachSignedStatement(_ statement: [UInt8], to image: Descriptor, in repository: Repository, key: SigningKey)
        async throws -> Int64
    {
        let envelope = try DSSEEnvelope.signed(statement, type: ProvenanceStatement.mediaType.rawValue, by: key)
        var layer = try store.put(try CanonicalJSON.encode(envelope), mediaType: DSSEEnvelope.mediaType)
        layer.annotations = ["predicateType": ProvenanceStatement.slsaProvenance]
        let tag = ImageReference(repository: repository, tag: Self.attestationTag(image.digest))
        var bytes: Int64 = 0
        try await TagRewrites.shared.rewrite(tag) {
            var layers = try await signedLayers(of: image.digest, in: repository)
            guard !layers.contains(where: { $0.digest == layer.digest }) else { return }
            layers.append(layer)
            let config = try store.put(
                try CanonicalJSON.encode(AttestationConfig(diffIDs: layers.map(\.digest.description))),
                mediaType: .ociConfig)
            let manifest = try store.put(
                try CanonicalJSON.encode(ImageManifest(config: config, layers: layers)), mediaType: .ociManifest)
            bytes += try await ImagePusher(client: client).push(manifest, from: store, to: tag).bytesUploaded
        } holds: {
            try await signedLayers(of: image.digest, in: repository).contains { $0.digest == layer.digest }
        }
        return bytes
    }

    /// The envelopes the image's `.att` tag lists (none when there is no such tag).
    func signedLayers(of image: Digest, in repository: Repository) async throws -> [Descriptor] {
        let tag = ImageReference(repository: repository, tag: Self.attestationTag(image))
        guard let fetched = try await client.fetchManifestIfPresent(tag) else { return [] }
        let manifest = try? CanonicalJSON.decode(ImageManifest.self, from: fetched.bytes, what: "attestations")
        return (manifest?.layers ?? []).filter { $0.mediaType == DSSEEnvelope.mediaType }
    }

    /// The statements on `image` signed by `key` (each envelope's signature checked over its
    /// payload and type), and how many envelopes there were.
    func signedProvenance(of image: Digest, in repository: Repository, key: VerifyingKey) async throws -> (
        statements: [ProvenanceStatement], envelopes: Int
    ) {
        let layers = try await signedLayers(of: image, in: repository)
        var statements = [ProvenanceStatement]()
        for layer in layers {
            let bytes = try await client.fetchBlob(layer.digest, from: repository, limit: 16 << 20)
            guard let envelope = try? CanonicalJSON.decode(DSSEEnvelope.self, from: bytes, what: "envelope"),
                envelope.payloadType == ProvenanceStatement.mediaType.rawValue,
                let payload = envelope.verified(by: key),
                let statement = try? CanonicalJSON.decode(ProvenanceStatement.self, from: payload, what: "provenance")
            else { continue }
            statements.append(statement)
        }
        return (statements, layers.count)
    }

    /// Adds `artifact` to the referrers tag of `image` (a read, an added entry, a write: two
    /// processors whose images are the same attach their statements at once, so the rewrite
    /// goes through `TagRewrites`). The bytes uploaded.
    package static func addReferrer(
        _ artifact: Descriptor, to image: Digest, in repository: Repository, client: RegistryClient,
        store: ContentStore
    ) async throws -> Int64 {
        let tag = ImageReference(repository: repository, tag: RegistryClient.referrersTag(image))
        var bytes: Int64 = 0
        try await TagRewrites.shared.rewrite(tag) {
            var entries = try await referrersTagEntries(of: image, in: repository, client: client)
            guard !entries.contains(where: { $0.digest == artifact.digest }) else { return }
            entries.append(artifact)
            let index = try Encoded(ImageIndex(manifests: entries), mediaType: .ociIndex)
            _ = try store.put(index.bytes, mediaType: .ociIndex)
            try await ImagePusher(client: client).putManifest(
                index.bytes, mediaType: .ociIndex, to: repository, reference: tag.tag ?? "", from: store)
            bytes += Int64(index.bytes.count)
        } holds: {
            try await referrersTagEntries(of: image, in: repository, client: client).contains {
                $0.digest == artifact.digest
            }
        }
        return bytes
    }

    /// The provenance statements attached to `image` in `repository` (referrers API, else the
    /// referrers tag), each checked against the artifact's own digests.
    func provenance(of image: Digest, in repository: Repository) async throws -> [ProvenanceStatement] {
        var entries = try await client.referrers(of: image, in: repository)
        if entries == nil { entries = try await referrersTagEntries(of: image, in: repository) }
        var statements = [ProvenanceStatement]()
        for entry in entries ?? []
        where entry.artifactType == ProvenanceStatement.mediaType || entry.artifactType == nil {
            let fetched = try await client.fetchManifest(ImageReference(repository: repository, digest: entry.digest))
            guard let manifest = try? CanonicalJSON.decode(ImageManifest.self, from: fetched.bytes, what: "artifact"),
                manifest.artifactType == ProvenanceStatement.mediaType, manifest.subject?.digest == image,
                let layer = manifest.layers.first
            else { continue }
            let bytes = try await client.fetchBlob(layer.digest, from: repository, limit: 16 << 20)
            if let statement = try? CanonicalJSON.decode(ProvenanceStatement.self, from: bytes, what: "provenance") {
                statements.append(statement)
            }
        }
        return statements
    }

    /// The provenance statements attached to `image`, as its referrers listing names them (one
    /// listing: the referrers API, else the referrers tag).
    func provenanceEntries(of image: Digest, in repository: Repository) async throws -> [Descriptor] {
        var entries = try await client.referrers(of: image, in: repository)
        if entries == nil { entries = try await referrersTagEntries(of: image, in: repository) }
        return (entries ?? []).filter { $0.artifactType == ProvenanceStatement.mediaType }
    }

    /// What the referrers tag of `image` lists (none when there is no such tag).
    func referrersTagEntries(of image: Digest, in repository: Repository) async throws -> [Descriptor] {
        try await Self.referrersTagEntries(of: image, in: repository, client: client)
    }

    static func referrersTagEntries(of image: Digest, in repository: Repository, client: RegistryClient)
        async throws -> [Descriptor]
    {
        let tag = ImageReference(repository: repository, tag: RegistryClient.referrersTag(image))
        // No such tag: nothing refers to the image.
        guard let current = try await client.fetchManifestIfPresent(tag) else { return [] }
        return (try? CanonicalJSON.decode(ImageIndex.self, from: current.bytes, what: "referrers tag"))?.manifests ?? []
    }

    /// `kiln verify --provenance`: what is wrong with `image`'s provenance, for the build of
    /// `processor` for `platform` with `key` (nil when a statement names the image and records
    /// exactly what the current inputs give).
    func provenanceProblem(
        of image: Digest, in repository: Repository, processor: Processor, platform: Platform, key: InputKey,
        name: String
    ) async throws -> String? {
        let statements: [ProvenanceStatement]
        if let key = settings.verifyingKey {
            let signed = try await signedProvenance(of: image, in: repository, key: key)
            guard signed.envelopes > 0 else { return "\(name) has no signed provenance" }
            guard !signed.statements.isEmpty else {
                return
                    "no provenance on \(name) is signed by the given key (\(signed.envelopes) signed by another key or altered)"
            }
            statements = signed.statements
        } else {
            statements = try await provenance(of: image, in: repository)
        }
        guard !statements.isEmpty else { return "\(name) has no provenance attached" }
        let matching = statements.filter { $0.subject.contains { $0.digest["sha256"] == image.hex } }
        guard !matching.isEmpty else { return "the provenance attached to \(name) names another image" }
        let keyed = matching.filter {
            $0.predicate.buildDefinition.internalParameters["inputKey"] == key.digest.description
        }
        guard let first = keyed.first else {
            let keys = matching.compactMap { $0.predicate.buildDefinition.internalParameters["inputKey"] }
            return
                "the provenance of \(name) records input key \(keys.first.map { String($0.prefix(19)) } ?? "?")…, not the current inputs' \(key.digest.short)"
        }
        // Every field the current inputs decide must be as recorded: a statement naming the image
        // and the key but another builder, other dependencies or parameters is not this build's.
        let expected = try await provenanceStatement(
            processor: processor, platform: platform, key: key,
            image: Descriptor(
                mediaType: .ociManifest, digest: image, size: 0), repository: repository)
        let source = settings.source
        var differences = ProvenanceCheck.differences(first, from: expected, source: source)
        for statement in keyed.dropFirst() where !differences.isEmpty {
            let others = ProvenanceCheck.differences(statement, from: expected, source: source)
            if others.count < differences.count { differences = others }
        }
        guard !differences.isEmpty else { return nil }
        return "the provenance of \(name) is not what the current inputs give: "
            + differences.joined(separator: "; ")
    }
}

/// What a recorded statement says differently from the one the current inputs give, field by
/// field: what kiln can recompute (statement and predicate types, build type, parameters,
/// dependencies by name and digest, the builder). The git commit, kiln's version, the
/// invocation and where a base was pulled from belong to the run that built the image, not to
/// its inputs, and are not compared.
package enum ProvenanceCheck {
    package static func differences(
        _ recorded: ProvenanceStatement, from expected: ProvenanceStatement, source: String?
    )
        -> [String]
    {
        var result = [String]()
        if recorded.type != expected.type { result.append("statement type \(recorded.type)") }
        if recorded.predicateType != expected.predicateType {
            result.append("predicate type \(recorded.predicateType)")
        }
        let (have, want) = (recorded.predicate.buildDefinition, expected.predicate.buildDefinition)
        if have.buildType != want.buildType { result.append("build type \(have.buildType)") }
        let external = ["processor", "platform", "dockerfile", "context"] + (source == nil ? [] : ["source"])
        result += parameters(have.externalParameters, want.externalParameters, only: external, what: "parameter")
        result += parameters(
            have.internalParameters, want.internalParameters, only: nil, what: "internal parameter")
        result += dependencies(have.resolvedDependencies, want.resolvedDependencies)
        let builder = recorded.predicate.runDetails.builder.id
        // A workflow run of this repository (of some repository, when this checkout names none).
        let run = builder.range(of: "/actions/runs/")
        let ownRun =
            run.map { builder[$0.upperBound...].allSatisfy(\.isNumber) && !builder[$0.upperBound...].isEmpty } == true
            && (source.map { builder.hasPrefix($0 + "/actions/runs/") } ?? true)
        if builder != "kiln", builder != expected.predicate.runDetails.builder.id, !ownRun {
            result.append("builder \(builder) (expected kiln or this repository's workflow runs)")
        }
        return result
    }

    /// Parameters that differ (`only`: these names; nil: every name on either side).
    static func parameters(_ have: [String: String], _ want: [String: String], only: [String]?, what: String)
        -> [String]
    {
        let names = only ?? Array(Set(have.keys).union(want.keys)).sorted()
        return names.compactMap { name in
            have[name] == want[name]
                ? nil
                : "\(what) \(name): \(have[name].map { "'\($0)'" } ?? "absent") recorded, \(want[name].map { "'\($0)'" } ?? "absent") now"
        }
    }

    /// Dependencies by name or URI and digest; the commit (`git+…`) is the run's.
    static func dependencies(
        _ have: [ProvenanceStatement.ResourceDescriptor], _ want: [ProvenanceStatement.ResourceDescriptor]
    ) -> [String] {
        func table(_ list: [ProvenanceStatement.ResourceDescriptor]) -> [String: [String: String]] {
            var result = [String: [String: String]]()
            for entry in list {
                guard let id = entry.name ?? entry.uri, !id.hasPrefix("git+") else { continue }
                result[id] = entry.digest
            }
            return result
        }
        let (recorded, current) = (table(have), table(want))
        var result = [String]()
        for (id, digest) in current.sorted(by: { $0.key < $1.key }) {
            guard let was = recorded[id] else {
                result.append("dependency \(id) missing")
                continue
            }
            if was != digest {
                result.append("dependency \(id): \(Self.short(was)) recorded, \(Self.short(digest)) now")
            }
        }
        for id in recorded.keys.sorted() where current[id] == nil { result.append("dependency \(id) not an input") }
        return result
    }

    static func short(_ digest: [String: String]) -> String {
        digest.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value.prefix(12))…" }.joined(separator: ",")
    }
}

/// The commit a checkout is at: `$GITHUB_SHA`, else `.git/HEAD` followed through its ref.
package enum GitRevision {
    package static func current(root: String, environment: [String: String]) -> String? {
        if let sha = environment["GITHUB_SHA"], !sha.isEmpty { return sha }
        guard let git = gitDirectory(from: root), let head = read(git + "/HEAD") else { return nil }
        guard head.hasPrefix("ref: ") else { return isCommit(head) ? head : nil }
        let ref = String(head.dropFirst("ref: ".count))
        if let value = read(git + "/" + ref), isCommit(value) { return value }
        for line in (read(git + "/packed-refs") ?? "").split(separator: "\n") where line.hasSuffix(" " + ref) {
            let value = String(line.prefix { $0 != " " })
            if isCommit(value) { return value }
        }
        return nil
    }

    /// The git directory of the checkout holding `folder` (the nearest `.git` at or above it;
    /// a `.git` file, as a worktree or submodule has, followed to its directory).
    static func gitDirectory(from folder: String) -> String? {
        var current = FilePaths.clean(FilePaths.absolute(folder))
        while true {
            let git = FilePaths.join(current, ".git")
            if FilePaths.isDirectory(git) { return git }
            if let text = read(git), text.hasPrefix("gitdir: ") {
                let path = String(text.dropFirst("gitdir: ".count))
                return path.hasPrefix("/") ? path : FilePaths.join(current, path)
            }
            if current == "/" { return nil }
            current = FilePaths.directory(of: current)
        }
    }

    static func read(_ path: String) -> String? {
        (try? ReadableFile.readAll(path: path, limit: 1 << 20)).map {
            String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    static func isCommit(_ text: String) -> Bool {
        (text.count == 40 || text.count == 64) && text.allSatisfy(\.isHexDigit)
    }
}

/// What an image's provenance listing says of the build it is: each statement's entry carries
/// the input key and platform it records (`ProvenanceStatement.annotations`; statements from
/// before kiln recorded them carry neither).
package struct ProvenanceListing {
    /// The listing's provenance entries.
    package var entries: [Descriptor]

    package init(_ entries: [Descriptor]) { self.entries = entries }

    package enum Verdict: Equatable {
        /// A statement records this key and platform.
        case vouched
        /// Statements record other builds and none this key for this platform: why not.
        case contradicted(String)
        /// No statement records a key (none, or all from before keys were recorded).
        case silent
    }

    /// Whether the image is the build of `key` for `platform`, as its statements record.
    package func verdict(key: Digest, platform: Platform) -> Verdict {
        let recorded = entries.compactMap { entry -> (key: String, platform: String)? in
            guard let annotations = entry.annotations,
                let key = annotations[ProvenanceStatement.inputKeyAnnotation],
                let platform = annotations[ProvenanceStatement.platformAnnotation]
            else { return nil }
            return (key, platform)
        }
        if recorded.contains(where: { $0.key == key.description && $0.platform == platform.description }) {
            return .vouched
        }
        if let other = recorded.first(where: { $0.key == key.description }) {
            return .contradicted("names the image kiln built for \(other.platform)")
        }
        if !recorded.contains(where: { $0.platform == platform.description }), let other = recorded.first {
            return .contradicted("names an image kiln built for \(other.platform)")
        }
        if let other = recorded.first {
            return .contradicted(
                "names an image kiln built from other inputs (input key \(other.key.prefix(19))…)")
        }
        return .silent
    }
}

/// The config of an `.att` image (as cosign writes one): no platform, the envelopes as its layers.
struct AttestationConfig: Codable {
    struct RootFS: Codable {
        var type = "layers"
        var diffIDs: [String]

        enum CodingKeys: String, CodingKey {
            case type
            case diffIDs = "diff_ids"
        }
    }
    var architecture = ""
    var os = ""
    var rootfs: RootFS
    var config = [String: String]()

    init(diffIDs: [String]) { rootfs = RootFS(diffIDs: diffIDs) }
}
