import KilnCore

/// A `.dockerignore` file with Docker's semantics: one pattern per line relative to the context
/// root, `#` comment lines, `!` re-includes, the last matching pattern deciding, `*` and `?`
/// within one path component, `**` across any number of them, and a pattern that matches a
/// directory excluding everything under it.
package struct DockerIgnore: Sendable, Equatable {
    package struct Pattern: Sendable, Equatable {
        /// The cleaned pattern (no leading `/` or `./`, no trailing `/`).
        package var text: String
        /// `!pattern`: re-include what matches.
        package var reincludes: Bool
        fileprivate var segments: [Segment]
    }

    fileprivate enum Segment: Sendable, Equatable {
        /// `**`: zero or more whole components.
        case anyDepth
        /// One component's wildcard pattern.
        case component([Character])
    }

    package var patterns: [Pattern] {
        didSet { lastNames = Self.lastNames(of: patterns) }
    }
    /// The names every pattern must end in, when each ends in a literal one (`**/registry.yaml`):
    /// a path whose own name is none of them matches no pattern by itself, without matching.
    private var lastNames: Set<String>?

    package init(patterns: [Pattern] = []) {
        self.patterns = patterns
        lastNames = Self.lastNames(of: patterns)
    }

    /// Parses the file's text.
    package init(parsing text: String) {
        var patterns = [Pattern]()
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine)
            if number == 0, line.first == "\u{FEFF}" { line = line.dropFirst() }
            if line.first == "#" { continue }
            var pattern = line.trimmingWhitespace()
            guard !pattern.isEmpty else { continue }
            let reincludes = pattern.first == "!"
            if reincludes { pattern = pattern.dropFirst().trimmingWhitespace() }
            var cleaned = Self.clean(String(pattern))
            if cleaned.count > 1, cleaned.hasPrefix("/") { cleaned.removeFirst() }
            patterns.append(Pattern(text: cleaned, reincludes: reincludes, segments: Self.segments(of: cleaned)))
        }
        self.patterns = patterns
        lastNames = Self.lastNames(of: patterns)
    }

    private static func lastNames(of patterns: [Pattern]) -> Set<String>? {
        var names = Set<String>()
        for pattern in patterns {
            guard case .component(let characters)? = pattern.segments.last,
                !characters.contains(where: { "*?[\\".contains($0) })
            else { return nil }
            names.insert(String(characters))
        }
        return names
    }

    /// The ignore files a build looks for, the first that exists winning: the Dockerfile's own
    /// (`NAME.dockerignore` beside it), then the context's `.dockerignore`.
    package static func candidates(context: String, dockerfile: String) -> [String] {
        [dockerfile + ".dockerignore", FilePaths.join(context, ".dockerignore")]
    }

    /// Reads the ignore file that applies to a build: `<Dockerfile>.dockerignore` beside the
    /// Dockerfile when there is one (BuildKit's rule), else `.dockerignore` at the context root.
    /// - Returns: the rules, and the file they came from (nil when there is none).
    package static func load(context: String, dockerfile: String) throws(FileError) -> (DockerIgnore, String?) {
        for path in candidates(context: context, dockerfile: dockerfile) where FilePaths.exists(path) {
            let bytes = try ReadableFile.readAll(path: path, limit: 4 << 20)
            return (DockerIgnore(parsing: String(decoding: bytes, as: UTF8.self)), path)
        }
        return (DockerIgnore(), nil)
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left out of the context:
    /// the last pattern that matches it or one of its parent directories decides.
    /// - Parameter parentIncluded: the walk already found `path`'s directory included. With no `!`
    ///   pattern nothing that matched a parent was undone, so only `path` itself can match: one
    ///   match per pattern instead of one per parent prefix, which at thousands of processors was
    ///   most of the context walk.
    package func excludes(_ path: String, parentIncluded: Bool = false) -> Bool {
        if parentIncluded, !patterns.contains(where: \.reincludes) {
            if let lastNames, !path.hasSuffix("/"), !lastNames.contains(FilePaths.lastComponent(of: path)) {
                return false
            }
            let components = path.split(separator: "/").map { Array($0) }
            return patterns.contains { Self.match($0.segments[...], components[...]) }
        }
        let components = path.split(separator: "/").map { Array($0) }
        var excluded = false
        for pattern in patterns where pattern.reincludes == excluded {
            var matched = Self.match(pattern.segments[...], components[...])
            if !matched {
                for count in stride(from: 1, to: components.count, by: 1)
                where Self.match(pattern.segments[...], components[..<count]) {
                    matched = true
                    break
                }
            }
            if matched { excluded = !pattern.reincludes }
        }
        return excluded
    }

    /// Whether some `!` pattern could re-include a path below the excluded directory `path`,
    /// so a walk must still look inside it.
    package func mayReinclude(under path: String) -> Bool {
        patterns.contains { pattern in
            guard pattern.reincludes else { return false }
            if pattern.segments.contains(.anyDepth) { return true }
            return pattern.text.hasPrefix(path + "/") || Glob.hasWildcard(pattern.text)
        }
    }

    private static func match(_ segments: ArraySlice<Segment>, _ components: ArraySlice<[Character]>) -> Bool {
        guard let first = segments.first else { return components.isEmpty }
        switch first {
        case .anyDepth:
            let rest = segments.dropFirst()
            if rest.isEmpty { return true }
            for skip in 0...components.count where match(rest, components.dropFirst(skip)) { return true }
            return false
        case .component(let pattern):
            guard let component = components.first, Glob.matches(pattern, component, separator: "/") else {
                return false
            }
            return match(segments.dropFirst(), components.dropFirst())
        }
    }

    /// A pattern's components; `**` inside a component (`a**b`) behaves like `*` there.
    fileprivate static func segments(of pattern: String) -> [Segment] {
        pattern.split(separator: "/", omittingEmptySubsequences: true).map { part in
            if part == "**" { return .anyDepth }
            var characters = [Character]()
            for character in part where !(character == "*" && characters.last == "*") { characters.append(character) }
            return .component(characters)
        }
    }

    /// Go's `filepath.Clean` on a `/`-separated path.
    static func clean(_ path: String) -> String {
        let rooted = path.hasPrefix("/")
        var parts = [Substring]()
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..":
                if let last = parts.last, last != ".." { parts.removeLast() } else if !rooted { parts.append(part) }
            default: parts.append(part)
            }
        }
        let joined = parts.joined(separator: "/")
        if rooted { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var result = self
        while let first = result.first, first.isWhitespace { result = result.dropFirst() }
        while let last = result.last, last.isWhitespace { result = result.dropLast() }
        return result
    }
}
