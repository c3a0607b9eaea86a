import KilnCore

/// An in-toto attestation statement (in-toto attestation framework v1, `spec/v1/statement.md`)
/// carrying a SLSA build provenance v1 predicate (`slsa.dev/spec/v1.0/provenance`): what an image
/// was built from, pushed next to it as an OCI artifact whose `subject` is the image. It is not
/// signed: the digests are the trust anchor, and the statement never changes the image.
package struct ProvenanceStatement: Codable, Sendable, Equatable {
    package static let statementType = "https://in-toto.io/Statement/v1"
    package static let slsaProvenance = "https://slsa.dev/provenance/v1"
    /// The media type of a statement blob and of the artifact that carries it.
    package static let mediaType = MediaType("application/vnd.in-toto+json")

    package var type: String
    package var subject: [ResourceDescriptor]
    package var predicateType: String
    package var predicate: Provenance

    enum CodingKeys: String, CodingKey {
        case type = "_type"
        case subject, predicateType, predicate
    }

    package init(subject: [ResourceDescriptor], predicate: Provenance) {
        type = Self.statementType
        self.subject = subject
        predicateType = Self.slsaProvenance
        self.predicate = predicate
    }

    /// A resource by name or URI and its digests (`ResourceDescriptor`, in-toto v1).
    package struct ResourceDescriptor: Codable, Sendable, Equatable {
        package var name: String?
        package var uri: String?
        package var digest: [String: String]
        /// Where the bytes really came from, when not from `uri` (a registry mirror).
        package var downloadLocation: String?

        package init(
            name: String? = nil, uri: String? = nil, digest: [String: String], downloadLocation: String? = nil
        ) {
            self.name = name
            self.uri = uri
            self.digest = digest
            self.downloadLocation = downloadLocation
        }
    }

    /// SLSA provenance v1: how the image was built, and by what.
    package struct Provenance: Codable, Sendable, Equatable {
        package var buildDefinition: BuildDefinition
        package var runDetails: RunDetails

        package init(buildDefinition: BuildDefinition, runDetails: RunDetails) {
            self.buildDefinition = buildDefinition
            self.runDetails = runDetails
        }
    }

    package struct BuildDefinition: Codable, Sendable, Equatable {
        package var buildType: String
        package var externalParameters: [String: String]
        package var internalParameters: [String: String]
        package var resolvedDependencies: [ResourceDescriptor]

        package init(
            buildType: String, externalParameters: [String: String], internalParameters: [String: String],
            resolvedDependencies: [ResourceDescriptor]
        ) {
            self.buildType = buildType
            self.externalParameters = externalParameters
            self.internalParameters = internalParameters
            self.resolvedDependencies = resolvedDependencies
        }
    }

    package struct RunDetails: Codable, Sendable, Equatable {
        package var builder: Builder
        package var metadata: [String: String]?

        package init(builder: Builder, metadata: [String: String]? = nil) {
            self.builder = builder
            self.metadata = metadata
        }
    }

    package struct Builder: Codable, Sendable, Equatable {
        package var id: String
        package var version: [String: String]?

        package init(id: String, version: [String: String]? = nil) {
            self.id = id
            self.version = version
        }
    }

    /// The annotations of the artifact (and of its entry in the image's referrers listing, which
    /// carries them) naming the input key and the platform the statement records: one listing
    /// says which build an image is, without reading its config or the statement.
    package static let inputKeyAnnotation = "dev.kiln.input-key"
    package static let platformAnnotation = "dev.kiln.platform"

    /// This statement's `inputKeyAnnotation` and `platformAnnotation`, from its parameters.
    package var annotations: [String: String] {
        var result = [String: String]()
        result[Self.inputKeyAnnotation] = predicate.buildDefinition.internalParameters["inputKey"]
        result[Self.platformAnnotation] = predicate.buildDefinition.externalParameters["platform"]
        return result
    }

    /// The artifact manifest carrying `statement` (a blob of this media type) for `subject`: the
    /// empty config, one layer, `artifactType` the statement's media type (image-spec v1.1,
    /// "Guidelines for artifact usage").
    package static func artifact(
        statement: Descriptor, empty: Descriptor, subject: Descriptor, annotations: [String: String]? = nil
    ) -> ImageManifest {
        var subject = subject
        subject.platform = nil
        subject.annotations = nil
        var manifest = ImageManifest(config: empty, layers: [statement])
        manifest.artifactType = mediaType
        manifest.subject = subject
        if let annotations, !annotations.isEmpty { manifest.annotations = annotations }
        return manifest
    }
}
