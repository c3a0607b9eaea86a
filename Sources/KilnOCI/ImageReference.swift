import KilnCore

/// A repository on a registry: `host[:port]/path`, e.g. `ghcr.io/acme/llm-litellm`.
package struct Repository: Hashable, Sendable, CustomStringConvertible {
    /// The registry as users name it (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    package let registry: String
    /// The repository path, lower case, e.g. `library/alpine`.
    package let path: String

    package var description: String { "\(registry)/\(path)" }

    /// A repository from parts already valid (a registry host and a lower-case path).
    package init(registry: String, path: String) {
        self.registry = registry
        self.path = path
    }

    /// The host:port requests go to: Docker Hub's API lives at `registry-1.docker.io`.
    package var endpointHost: String { registry == "docker.io" ? "registry-1.docker.io" : registry }
}

/// A reference to an image, parsed the way Docker does (distribution's `reference` grammar):
/// `[host[:port]/]path[:tag][@sha256:…]`.
///
/// A first component is a registry host when it contains `.` or `:` or is `localhost`, or is an
/// IPv6 literal in brackets; otherwise the registry is `docker.io`, and a one-component path on
/// Docker Hub gains `library/`. Path components are lower case. With no tag and no digest the tag
/// is `latest`.
package struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    package let repository: Repository
    /// The tag, when the reference names one (`latest` is filled in when neither tag nor digest is given).
    package let tag: String?
    package let digest: Digest?

    /// Parses a reference.
    /// - Throws: `ReferenceError` saying what is wrong.
    package init(parsing text: String) throws(ReferenceError) {
        var rest = Substring(text)
        guard !rest.isEmpty else { throw ReferenceError(text, reason: "it is empty") }
        var digest: Digest?
        if let at = rest.firstIndex(of: "@") {
            do {
                digest = try Digest(parsing: String(rest[rest.index(after: at)...]))
            } catch {
                throw ReferenceError(text, reason: error.description)
            }
            rest = rest[..<at]
        }
        var tag: String?
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            let candidate = String(rest[rest.index(after: colon)...])
            guard Tag.isValid(candidate) else {
                throw ReferenceError(
                    text,
                    reason: "'\(candidate)' is not a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-], at most 128 characters)")
            }
            tag = candidate
            rest = rest[..<colon]
        }
        let (registry, path) = try Self.split(name: String(rest), original: text)
        self.repository = Repository(registry: registry, path: path)
        self.digest = digest
        self.tag = tag ?? (digest == nil ? "latest" : nil)
    }

    /// A reference to `repository` by tag or digest.
    package init(repository: Repository, tag: String? = nil, digest: Digest? = nil) {
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    /// What goes in `/v2/NAME/manifests/<reference>`: the digest when there is one, else the tag.
    package var manifestReference: String { digest?.description ?? tag ?? "latest" }

    /// `registry/path[:tag][@digest]`, fully qualified.
    package var description: String {
        var text = repository.description
        if let tag { text += ":" + tag }
        if let digest { text += "@" + digest.description }
        return text
    }

    /// The same image pinned by digest, as `registry.yaml` records it: `registry/path@sha256:…`.
    package func pinned(to digest: Digest) -> ImageReference {
        ImageReference(repository: repository, digest: digest)
    }

    private static func isLowerAlnum(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x61...0x7a).contains(byte)
    }

    private static func split(name: String, original: String) throws(ReferenceError) -> (String, String) {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        var registry = "docker.io"
        var components = parts
        if parts.count > 1, let first = parts.first,
            first.contains(".") || first.contains(":") || first == "localhost" || first.hasPrefix("[")
        {
            try validate(host: first, original: original)
            registry = first == "index.docker.io" ? "docker.io" : first
            components = Array(parts.dropFirst())
        }
        guard !components.isEmpty, components.allSatisfy({ !$0.isEmpty }) else {
            throw ReferenceError(original, reason: "the repository path is empty or has an empty component")
        }
        for component in components {
            if component.utf8.contains(where: { (0x41...0x5a).contains($0) }) {
                throw ReferenceError(original, reason: "repository names must be lower case ('\(component)')")
            }
            guard isValidComponent(component) else {
                throw ReferenceError(
                    original,
                    reason: "'\(component)' is not a valid path component (lower-case letters and digits, "
                        + "separated by '.', '_', '__' or dashes)")
            }
        }
        if registry == "docker.io" && components.count == 1 { components.insert("library", at: 0) }
        let path = components.joined(separator: "/")
        guard registry.utf8.count + 1 + path.utf8.count <= 255 else {
            throw ReferenceError(original, reason: "the name is longer than 255 characters")
        }
        return (registry, path)
    }

    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
    private static func isValidComponent(_ component: String) -> Bool {
        let bytes = Array(component.utf8)
        var index = 0
        func alnumRun() -> Bool {
            let start = index
            while index < bytes.count, isLowerAlnum(bytes[index]) { index += 1 }
            return index > start
        }
        guard alnumRun() else { return false }
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "."):
                index += 1
            case UInt8(ascii: "_"):
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "_") { index += 1 }
            case UInt8(ascii: "-"):
                while index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            default:
                return false
            }
            guard alnumRun() else { return false }
        }
        return true
    }

    /// `name[:port]` with DNS-style labels or an IPv4 address, or `[ipv6][:port]`.
    private static func validate(host: String, original: String) throws(ReferenceError) {
        let invalid = ReferenceError(original, reason: "'\(host)' is not a valid registry host")
        var port: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw invalid }
            let literal = host[host.index(after: host.startIndex)..<close]
            guard !literal.isEmpty, literal.allSatisfy({ $0.isHexDigit || $0 == ":" }) else { throw invalid }
            let after = host[host.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw invalid }
                port = after.dropFirst()
            }
        } else {
            var name = Substring(host)
            if let colon = name.lastIndex(of: ":") {
                port = name[name.index(after: colon)...]
                name = name[..<colon]
            }
            let labels = name.split(separator: ".", omittingEmptySubsequences: false)
            let validLabels = labels.allSatisfy { label in
                !label.isEmpty && !label.hasPrefix("-") && !label.hasSuffix("-")
                    && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
            }
            guard validLabels else { throw invalid }
        }
        if let port {
            guard (1...5).contains(port.count), port.allSatisfy(\.isNumber), let number = Int(port), number <= 65535
            else {
                throw ReferenceError(original, reason: "'\(port)' is not a valid port")
            }
        }
    }
}

/// A text that is not an image reference, and why.
package struct ReferenceError: KilnError, Equatable {
    package var text: String
    package var reason: String

    package init(_ text: String, reason: String) {
        self.text = text
        self.reason = reason
    }

    package var description: String { "'\(text)' is not a valid image reference: \(reason)" }
    package var category: ErrorCategory { .input }
}
