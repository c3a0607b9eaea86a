import KilnCore
import KilnOCI

/// Where base images are really pulled from: registry mirrors (tried in order, the origin last)
/// and replacements of whole references (`kiln.yaml` `mirrors:` and `bases:`). CI runners meet
/// Docker Hub's pull limits; a mirror on GHCR serving the same images gives the same digests, so
/// the same keys and the same images as the origin — both come from the digest actually pulled,
/// recorded under the reference the Dockerfile wrote.
package struct BaseSources: Sendable {
    /// A mirror: a registry host, and a path prefix its copies live under (`ghcr.io/acme/hub`
    /// serves `docker.io/library/python` as `ghcr.io/acme/hub/library/python`).
    package struct Mirror: Sendable, Hashable, CustomStringConvertible {
        package var registry: String
        package var prefix: String

        /// Parses `host[:port][/prefix]`.
        package init(parsing text: String) throws(ReferenceError) {
            let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
            let probe = try ImageReference(parsing: trimmed.contains("/") ? trimmed : trimmed + "/x")
            guard probe.tag == "latest", probe.digest == nil, !trimmed.hasSuffix(":latest") else {
                throw ReferenceError(text, reason: "a mirror is host[:port][/path], without a tag or digest")
            }
            guard trimmed.split(separator: "/").first.map(String.init) == probe.repository.registry else {
                throw ReferenceError(
                    text, reason: "a mirror must start with its registry host (e.g. mirror.gcr.io or ghcr.io/acme/hub)")
            }
            registry = probe.repository.registry
            prefix = trimmed.contains("/") ? probe.repository.path : ""
        }

        package var description: String { prefix.isEmpty ? registry : "\(registry)/\(prefix)" }

        func repository(for origin: Repository) -> Repository {
            Repository(registry: registry, path: prefix.isEmpty ? origin.path : prefix + "/" + origin.path)
        }
    }

    /// Mirrors by the registry they mirror (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    package var mirrors: [String: [Mirror]] = [:]
    /// Replacements by the fully qualified reference they replace.
    package var replacements: [String: ImageReference] = [:]

    package init() {}

    /// The registry name a mirror key means: Docker Hub's several names are one.
    package static func registryKey(_ name: String) -> String {
        ["index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"].contains(name) ? "docker.io" : name
    }

    package mutating func addMirrors(_ texts: [String], for registry: String) throws(ReferenceError) {
        var list = [Mirror]()
        for text in texts { list.append(try Mirror(parsing: text)) }
        mirrors[Self.registryKey(registry), default: []] += list
    }

    package mutating func replace(_ original: String, with replacement: String) throws(ReferenceError) {
        replacements[try ImageReference(parsing: original).description] = try ImageReference(parsing: replacement)
    }

    /// What `written` is pulled as (after a replacement), and the places to try, in order: each
    /// mirror of its registry, then the registry itself.
    func candidates(for written: ImageReference) -> [ImageReference] {
        let wanted = replacements[written.description] ?? written
        let mirrored = (mirrors[Self.registryKey(wanted.repository.registry)] ?? []).map { mirror in
            ImageReference(
                repository: mirror.repository(for: wanted.repository), tag: wanted.tag, digest: wanted.digest)
        }
        return mirrored + [wanted]
    }
}
