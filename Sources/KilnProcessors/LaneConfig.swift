import KilnCore
import KilnOCI
import KilnPin
import Yams

/// Which `image:` keys the lane writes.
package enum PinMode: String, Sendable, CaseIterable {
    /// The keys the file already has; `image.platforms.*` when it has none.
    case auto
    /// `image.platforms.<arch>`: one manifest digest per platform.
    case platforms
    /// `image.oci`: the index digest.
    case oci
    /// Both.
    case both
}

/// What the lane does with a pin of a platform it no longer builds (`unbuilt-pins:`): the pin
/// names an image of old inputs, which a deployment of that platform would still run.
package enum UnbuiltPins: String, Sendable, CaseIterable {
    /// `--pin` takes it out of the file; `--check` and `verify` call it stale until then.
    case remove
    /// `--pin` leaves it, and the processor is reported stale, naming it.
    case report
}

/// The lane's settings: `kiln.yaml` at the repository root, each overridable by a flag.
///
/// ```yaml
/// processors: [tools/**/registry.yaml, code/apps/core/processors/**/registry.yaml]
/// registry: ghcr.io
/// owner: acme
/// repository: "{registry}/{owner}/{ns}-{name}"
/// platforms: [linux/amd64, linux/arm64]
/// pin: auto
/// jobs: 4
/// context-relative-to: root     # or processor: build.context from the processor's folder
/// source: https://github.com/acme/processors   # org.opencontainers.image.source
/// labels: {org.opencontainers.image.vendor: Acme}
/// annotations: {org.opencontainers.image.description: Acme's processors}
/// ```
package struct LaneConfig: Sendable {
    package static let defaultGlobs = ["tools/**/registry.yaml", "code/apps/core/processors/**/registry.yaml"]
    package static let defaultTemplate = "{registry}/{owner}/{ns}-{name}"

    /// The repository root: the folder holding `kiln.yaml`, else the git top level.
    package var root: String
    /// The `kiln.yaml` read, if any.
    package var file: String?
    package var globs = LaneConfig.defaultGlobs
    /// Whether `kiln.yaml` set the globs (then each must match something), and on which line.
    package var globsFromFile = false
    package var globsLine: Int?
    /// What `build.context` is relative to (`context-relative-to`).
    package var contextBase = ContextBase.root
    package var registry = "ghcr.io"
    package var owner: String?
    /// `{repo}` in the template: the repository's name (default: the root folder's name).
    package var repo: String?
    package var repositoryTemplate = LaneConfig.defaultTemplate
    package var platforms: [Platform] = [.linuxAMD64, .linuxARM64]
    package var pin = PinMode.auto
    package var jobs: Int?
    /// `reuse-by-reads`: reuse RUN steps by what they read (nil: the default, on).
    package var reuseByReads: Bool?
    /// `isolation:`: how RUN steps are kept apart from the machine, `oci` or `chroot` (nil: oci
    /// where runc is installed, else chroot with a warning).
    package var isolation: String?
    /// A repository for the key tags instead of each target repository.
    package var cacheRepository: String?
    /// Build args for every processor (a processor's own `build.args` win).
    package var buildArgs: [String: String] = [:]
    /// `mirrors:`: per registry, the mirrors to pull base images from, in order (the registry
    /// itself is tried last), with the line each is on.
    package var mirrors: [(registry: String, mirrors: [String], line: Int)] = []
    /// `bases:`: base image references replaced by others, with their lines.
    package var baseReplacements: [(original: String, replacement: String, line: Int)] = []
    /// `labels:`: set on every image, over its Dockerfile's.
    package var labels: [String: String] = [:]
    /// `annotations:`: on every image's manifests and index.
    package var annotations: [String: String] = [:]
    /// `source:`: the repository's URL for `org.opencontainers.image.source` (GHCR links a
    /// package to its repository through it); default: the checkout's origin remote, else
    /// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY`.
    package var source: String?
    /// `provenance:`: push a provenance statement next to each image (nil: the default, on).
    package var provenance: Bool?
    /// `sign-key:`: a PEM private key (relative to the repository root) that signs each
    /// provenance statement; `--sign-key` overrides it.
    package var signKey: String?
    /// `unbuilt-pins:`: what becomes of a pin of a platform the lane no longer builds.
    package var unbuiltPins = UnbuiltPins.remove

    package init(root: String) { self.root = root }

    /// The root a command works on: `explicit`, else the nearest folder above `start` holding
    /// `kiln.yaml`, else the nearest holding `.git`, else `start`.
    package static func findRoot(explicit: String?, from start: String) -> String {
        if let explicit {
            let path = FilePaths.clean(FilePaths.absolute(explicit))
            return FilePaths.realPath(path) ?? path
        }
        let start =
            FilePaths.realPath(FilePaths.clean(FilePaths.absolute(start))) ?? FilePaths.clean(FilePaths.absolute(start))
        for marker in ["kiln.yaml", ".git"] {
            var directory = start
            while true {
                if FilePaths.exists(FilePaths.join(directory, marker)) { return directory }
                let parent = FilePaths.directory(of: directory)
                if parent == directory || directory == "/" { break }
                directory = parent
            }
        }
        return start
    }

    /// Reads `ROOT/kiln.yaml` when present; the defaults otherwise.
    package static func load(root: String) throws(YAMLFileError) -> LaneConfig {
        var config = LaneConfig(root: root)
        let path = FilePaths.join(root, "kiln.yaml")
        guard FilePaths.exists(path) else { return config }
        let document = try YAMLDocument(path: path)
        config.file = path
        let known: Set<String> = [
            "processors", "registry", "owner", "repo", "repository", "platforms", "pin", "jobs", "cache-repo", "args",
            "context-relative-to", "mirrors", "bases", "reuse-by-reads", "isolation", "labels", "annotations", "source",
            "provenance", "sign-key", "unbuilt-pins",
        ]
        for entry in document.root ?? Node.Mapping([]) {
            guard let key = entry.key.string, known.contains(key) else {
                throw YAMLFileError(
                    "unknown key '\(entry.key.string ?? "?")'; kiln.yaml takes \(known.sorted().joined(separator: ", "))",
                    location: document.location(entry.key))
            }
        }
        if let globs = try document.strings("processors") {
            guard !globs.isEmpty else {
                throw YAMLFileError(
                    "'processors' lists no glob; give at least one, e.g. tools/**/registry.yaml",
                    location: document.location(document.node("processors")))
            }
            config.globs = globs
            config.globsFromFile = true
            config.globsLine = document.node("processors")?.mark?.line
        }
        if let text = try document.string("context-relative-to") {
            guard let base = ContextBase(rawValue: text) else {
                throw YAMLFileError(
                    "'context-relative-to' takes root (build.context from the repository root) or processor (from the processor's folder), not '\(text)'",
                    location: document.location(document.node("context-relative-to")))
            }
            config.contextBase = base
        }
        if let registry = try document.string("registry") { config.registry = registry }
        config.owner = try document.string("owner")
        config.repo = try document.string("repo")
        if let template = try document.string("repository") { config.repositoryTemplate = template }
        if let texts = try document.strings("platforms") {
            let platforms: [Platform]
            do {
                platforms = try Platform.buildable(texts)
            } catch {
                throw YAMLFileError("'platforms' has \(error)", location: document.location(document.node("platforms")))
            }
            guard !platforms.isEmpty else {
                throw YAMLFileError(
                    "'platforms' lists none; give at least one, e.g. [linux/amd64, linux/arm64]",
                    location: document.location(document.node("platforms")))
            }
            config.platforms = platforms
        }
        if let text = try document.string("pin") {
            guard let mode = PinMode(rawValue: text) else {
                throw YAMLFileError(
                    "'pin' takes \(PinMode.allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'",
                    location: document.location(document.node("pin")))
            }
            config.pin = mode
        }
        if let text = try document.string("unbuilt-pins") {
            guard let mode = UnbuiltPins(rawValue: text) else {
                throw YAMLFileError(
                    "'unbuilt-pins' takes remove (--pin takes out a pin of a platform no longer built) or report (the processor is reported stale), not '\(text)'",
                    location: document.location(document.node("unbuilt-pins")))
            }
            config.unbuiltPins = mode
        }
        if let jobs = try document.int("jobs") {
            guard jobs > 0 else {
                throw YAMLFileError("'jobs' must be at least 1", location: document.location(document.node("jobs")))
            }
            config.jobs = jobs
        }
        config.cacheRepository = try document.string("cache-repo")
        config.reuseByReads = try document.bool("reuse-by-reads")
        if let isolation = try document.string("isolation") {
            guard ["oci", "chroot"].contains(isolation) else {
                throw YAMLFileError(
                    "'isolation' takes oci (each RUN step in its own namespaces, with runc) or chroot (buildah's chroot; a step can reach the host), not '\(isolation)'",
                    location: document.location(document.node("isolation")))
            }
            config.isolation = isolation
        }
        if let node = document.node("mirrors") {
            guard case .mapping(let mapping) = node else {
                throw YAMLFileError(
                    "'mirrors' must map a registry to its mirrors, e.g. docker.io: [mirror.gcr.io]",
                    location: document.location(node))
            }
            for entry in mapping {
                guard let registry = entry.key.string, !registry.isEmpty else {
                    throw YAMLFileError("'mirrors' keys are registry hosts", location: document.location(entry.key))
                }
                var list = [String]()
                switch entry.value {
                case .scalar(let scalar): list = [scalar.string]
                case .sequence(let sequence):
                    for item in sequence {
                        guard case .scalar(let scalar) = item else {
                            throw YAMLFileError(
                                "'mirrors.\(registry)' must list mirror hosts", location: document.location(item))
                        }
                        list.append(scalar.string)
                    }
                default:
                    throw YAMLFileError(
                        "'mirrors.\(registry)' must list mirror hosts", location: document.location(entry.value))
                }
                config.mirrors.append((registry, list, entry.key.mark?.line ?? 1))
            }
        }
        if let node = document.node("bases") {
            guard case .mapping(let mapping) = node else {
                throw YAMLFileError(
                    "'bases' must map a base image to its replacement, e.g. python:3.11-slim: ghcr.io/acme/python@sha256:…",
                    location: document.location(node))
            }
            for entry in mapping {
                guard let original = entry.key.string, case .scalar(let value) = entry.value else {
                    throw YAMLFileError(
                        "'bases' must map a base image to one replacement", location: document.location(entry.value))
                }
                config.baseReplacements.append((original, value.string, entry.key.mark?.line ?? 1))
            }
        }
        config.buildArgs = try document.stringMap("args") ?? [:]
        config.labels = try document.stringMap("labels") ?? [:]
        config.annotations = try document.stringMap("annotations") ?? [:]
        config.source = try document.string("source")
        config.provenance = try document.bool("provenance")
        config.signKey = try document.string("sign-key")
        return config
    }

    /// The repository a processor's image goes to, from the template (lower-cased, as registries
    /// require).
    /// - Throws: `YAMLFileError` when the template needs a value that is not set.
    package func repository(for ref: ProcessorRef) throws(YAMLFileError) -> String {
        let values: [String: String?] = [
            "registry": registry, "owner": owner, "repo": repo ?? FilePaths.lastComponent(of: root),
            "ns": ref.namespace, "name": ref.name, "ver": ref.version,
        ]
        var result = ""
        var rest = Substring(repositoryTemplate)
        while let open = rest.firstIndex(of: "{") {
            result += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else { break }
            let name = String(rest[rest.index(after: open)..<close])
            guard let known = values[name] else {
                throw YAMLFileError(
                    "the repository template '\(repositoryTemplate)' has {\(name)}; it may use {registry}, {owner}, {repo}, {ns}, {name}, {ver}",
                    location: file.map { SourceLocation(file: $0, line: 1) })
            }
            guard let value = known, !value.isEmpty else {
                throw YAMLFileError(
                    "the repository template '\(repositoryTemplate)' needs {\(name)}: set '\(name)' in kiln.yaml or pass --\(name)",
                    location: file.map { SourceLocation(file: $0, line: 1) })
            }
            result += value
            rest = rest[rest.index(after: close)...]
        }
        result += rest
        return result.lowercased()
    }
}
