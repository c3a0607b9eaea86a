import KilnCore

/// The platform an image runs on (image-spec `image-index.md`, "platform"), e.g. `linux/arm64/v8`.
package struct Platform: Hashable, Sendable, Codable, CustomStringConvertible {
    package var os: String
    package var architecture: String
    package var variant: String?
    package var osVersion: String?
    package var osFeatures: [String]?

    enum CodingKeys: String, CodingKey {
        case os, architecture, variant
        case osVersion = "os.version"
        case osFeatures = "os.features"
    }

    package init(os: String, architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
    }

    package static let linuxAMD64 = Platform(os: "linux", architecture: "amd64")
    package static let linuxARM64 = Platform(os: "linux", architecture: "arm64", variant: "v8")

    /// Parses `os/arch[/variant]` as `--platform` flags write it. `linux/arm64` means `linux/arm64/v8`,
    /// the variant BuildKit and the OCI spec assume for 64-bit ARM.
    /// - Throws: `PlatformError.invalid` for anything else.
    package init(parsing text: String) throws(PlatformError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), parts.allSatisfy({ Self.isValidPart($0) }) else {
            throw .invalid(text)
        }
        self.init(
            os: parts[0].lowercased(), architecture: parts[1].lowercased(), variant: parts.count == 3 ? parts[2] : nil)
        if architecture == "aarch64" { architecture = "arm64" }
        if architecture == "x86_64" || architecture == "x86-64" { architecture = "amd64" }
        if architecture == "arm64" && variant == nil { variant = "v8" }
    }

    /// The architectures a Linux image is built for (Go's `GOARCH` names, as the OCI image
    /// spec uses them), with the variants each takes.
    package static let buildableArchitectures: [String: Set<String>] = [
        "amd64": ["v1", "v2", "v3", "v4"], "arm64": ["v8", "v9"], "arm": ["v5", "v6", "v7", "v8"], "386": [],
        "ppc64le": [], "s390x": [], "riscv64": [], "mips64le": [], "loong64": [],
    ]

    /// Parses a platform to build for: `os/arch[/variant]` (or `arch` alone, meaning Linux) that
    /// names a Linux architecture kiln knows, so a typo (`linux/arm46`) or another OS is refused
    /// before any work instead of producing an empty image index.
    /// - Throws: `PlatformError` saying what is wrong and what would be right.
    package init(buildable text: String) throws(PlatformError) {
        // A bare word is an architecture (`arm64`), never an OS (`linux` alone says too little).
        if !text.contains("/"), ["linux", "windows", "darwin", "freebsd"].contains(text.lowercased()) {
            throw .invalid(text)
        }
        try self.init(parsing: text.contains("/") ? text : "linux/" + text)
        guard os == "linux" else { throw .unsupportedOS(text, os: os) }
        guard let variants = Self.buildableArchitectures[architecture] else {
            throw .unknownArchitecture(text, architecture: architecture)
        }
        if let variant, !variants.contains(variant) {
            throw .unknownVariant(text, variant: variant, known: variants.sorted())
        }
    }

    /// A list of platforms to build for (`init(buildable:)` each), in order, each once.
    package static func buildable(_ texts: [String]) throws(PlatformError) -> [Platform] {
        var result = [Platform]()
        for text in texts {
            let platform = try Platform(buildable: text)
            if !result.contains(platform) { result.append(platform) }
        }
        return result
    }

    private static func isValidPart(_ part: String) -> Bool {
        !part.isEmpty
            && part.utf8.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte)
                    || byte == 0x5f || byte == 0x2d || byte == 0x2e
            }
    }

    /// Whether an index entry for `other` serves this platform: same os and architecture, and the
    /// same variant where both name one (an arm64 entry without a variant serves `arm64/v8`).
    package func matches(_ other: Platform) -> Bool {
        guard os == other.os, architecture == other.architecture else { return false }
        guard let variant, let otherVariant = other.variant else { return true }
        return variant == otherVariant
    }

    /// `os/arch[/variant]`.
    package var description: String {
        if let variant { "\(os)/\(architecture)/\(variant)" } else { "\(os)/\(architecture)" }
    }
}

/// Why a text is not a platform.
package enum PlatformError: KilnError, Equatable {
    case invalid(String)
    /// Not Linux: kiln builds Linux images.
    case unsupportedOS(String, os: String)
    case unknownArchitecture(String, architecture: String)
    case unknownVariant(String, variant: String, known: [String])

    package var description: String {
        switch self {
        case .invalid(let text): "'\(text)' is not a platform; write os/arch or os/arch/variant, e.g. linux/amd64"
        case .unsupportedOS(let text, let os):
            "'\(text)': kiln builds Linux images, not \(os) ones; write linux/ARCH, e.g. linux/amd64"
        case .unknownArchitecture(let text, let architecture):
            "'\(text)': '\(architecture)' is not an architecture kiln knows (\(Platform.buildableArchitectures.keys.sorted().joined(separator: ", ")))\(Self.suggestion(architecture))"
        case .unknownVariant(let text, let variant, let known):
            known.isEmpty
                ? "'\(text)': this architecture takes no variant, not '\(variant)'"
                : "'\(text)': '\(variant)' is not a variant of this architecture (\(known.joined(separator: ", ")))"
        }
    }

    /// `; did you mean arm64?` for a near miss.
    static func suggestion(_ architecture: String) -> String {
        let close = Platform.buildableArchitectures.keys.sorted().filter { known in
            known.count == architecture.count && zip(known, architecture).filter { $0 != $1 }.count <= 1
                || Set(known) == Set(architecture)
        }
        return close.first.map { "; did you mean \($0)?" } ?? ""
    }

    package var category: ErrorCategory { .input }
}
