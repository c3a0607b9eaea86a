import KilnCore

/// An image configuration (image-spec `config.md`): what runs, how, and the layers' diffIDs.
/// Also reads Docker's image JSON, whose `config` block is the same; unknown fields are ignored.
package struct ImageConfig: Hashable, Sendable, Codable {
    package var created: String?
    package var author: String?
    package var architecture: String
    package var os: String
    package var variant: String?
    package var osVersion: String?
    package var osFeatures: [String]?
    package var config: ContainerConfig?
    package var rootfs: RootFS
    package var history: [History]?

    enum CodingKeys: String, CodingKey {
        case created, author, architecture, os, variant, config, rootfs, history
        case osVersion = "os.version"
        case osFeatures = "os.features"
    }

    package init(
        platform: Platform, created: String? = nil, config: ContainerConfig? = nil,
        rootfs: RootFS = RootFS(diffIDs: []), history: [History]? = nil
    ) {
        self.created = created
        self.architecture = platform.architecture
        self.os = platform.os
        self.variant = platform.variant
        self.config = config
        self.rootfs = rootfs
        self.history = history
    }

    /// The platform this config describes.
    package var platform: Platform {
        var platform = Platform(os: os, architecture: architecture, variant: variant)
        platform.osVersion = osVersion
        platform.osFeatures = osFeatures
        return platform
    }
}

/// The runtime defaults of an image (`config.config`). Keys keep Docker's capitalised names.
package struct ContainerConfig: Hashable, Sendable, Codable {
    package var user: String?
    package var exposedPorts: [String: EmptyObject]?
    package var env: [String]?
    package var entrypoint: [String]?
    package var cmd: [String]?
    package var volumes: [String: EmptyObject]?
    package var workingDir: String?
    package var labels: [String: String]?
    package var stopSignal: String?
    package var argsEscaped: Bool?
    package var healthcheck: Healthcheck?
    package var shell: [String]?
    package var onBuild: [String]?

    enum CodingKeys: String, CodingKey {
        case user = "User"
        case exposedPorts = "ExposedPorts"
        case env = "Env"
        case entrypoint = "Entrypoint"
        case cmd = "Cmd"
        case volumes = "Volumes"
        case workingDir = "WorkingDir"
        case labels = "Labels"
        case stopSignal = "StopSignal"
        case argsEscaped = "ArgsEscaped"
        case healthcheck = "Healthcheck"
        case shell = "Shell"
        case onBuild = "OnBuild"
    }

    package init() {}
}

/// Docker's health check (not in the OCI spec, kept by Docker-format images). Durations are nanoseconds.
package struct Healthcheck: Hashable, Sendable, Codable {
    package var test: [String]?
    package var interval: Int64?
    package var timeout: Int64?
    package var startPeriod: Int64?
    package var startInterval: Int64?
    package var retries: Int?

    enum CodingKeys: String, CodingKey {
        case test = "Test"
        case interval = "Interval"
        case timeout = "Timeout"
        case startPeriod = "StartPeriod"
        case startInterval = "StartInterval"
        case retries = "Retries"
    }

    package init(test: [String]? = nil) { self.test = test }
}

/// `rootfs`: the ordered diffIDs (digests of the uncompressed layer tars).
package struct RootFS: Hashable, Sendable, Codable {
    package var type: String
    package var diffIDs: [Digest]

    enum CodingKeys: String, CodingKey {
        case type
        case diffIDs = "diff_ids"
    }

    package init(diffIDs: [Digest]) {
        self.type = "layers"
        self.diffIDs = diffIDs
    }
}

/// One step of an image's history.
package struct History: Hashable, Sendable, Codable {
    package var created: String?
    package var createdBy: String?
    package var author: String?
    package var comment: String?
    package var emptyLayer: Bool?

    enum CodingKeys: String, CodingKey {
        case created, author, comment
        case createdBy = "created_by"
        case emptyLayer = "empty_layer"
    }

    package init(created: String? = nil, createdBy: String? = nil, comment: String? = nil, emptyLayer: Bool? = nil) {
        self.created = created
        self.createdBy = createdBy
        self.comment = comment
        self.emptyLayer = emptyLayer
    }
}

/// `{}`: the value type of `ExposedPorts` and `Volumes` maps.
package struct EmptyObject: Hashable, Sendable, Codable {
    package init() {}
    package init(from decoder: any Decoder) throws { _ = try decoder.container(keyedBy: NoKeys.self) }
    package func encode(to encoder: any Encoder) throws { _ = encoder.container(keyedBy: NoKeys.self) }
    private enum NoKeys: CodingKey {}
}
