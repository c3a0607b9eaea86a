import KilnCore

/// A `.dockerignore` file with moby's semantics (BuildKit's): one pattern per line relative to
/// the context root, `#` comment lines, `!` re-includes, the last matching pattern deciding, and
/// a pattern that matches a directory excluding everything under it. What a pattern matches is
/// `IgnorePattern`'s.
package struct DockerIgnore: Sendable, Equatable {
    package struct Pattern: Sendable, Equatable {
        /// The cleaned pattern (no leading `/` or `./`, no trailing `/`).
        package var text: String
        /// `!pattern`: re-include what matches.
        package var reincludes: Bool
        let matcher: IgnorePattern
    }

    /// Whose reading of a pattern: a `.dockerignore`'s (moby's, quirks included: `**/name` matches
    /// any path ending in `name`), or kiln's own globs (processor globs in kiln.yaml), where
    /// `**/name` matches only a component `name`.
    package enum Dialect: Sendable {
        case dockerignore, glob
    }

    package var patterns: [Pattern] {
        didSet { suffixes = Self.suffixes(of: patterns) }
    }
    /// The literal tails the patterns' paths end in, when each pattern has one (`registry.yaml`):
    /// a path ending in none of them matches no pattern by itself.
    private var suffixes: [String]?

    package init(patterns: [Pattern] = []) {
        self.patterns = patterns
        suffixes = Self.suffixes(of: patterns)
    }

    /// Parses the file's text, leaving out patterns moby refuses (`init(validating:)` refuses them).
    package init(parsing text: String, dialect: Dialect = .dockerignore) {
        var patterns = [Pattern]()
        Self.read(text, dialect: dialect) { pattern, _, _ in
            if let pattern { patterns.append(pattern) }
        }
        self.init(patterns: patterns)
    }

    /// Parses the file's text, refusing what moby's matcher refuses, at its line.
    package init(validating text: String, dialect: Dialect = .dockerignore) throws(DockerIgnoreError) {
        var patterns = [Pattern]()
        var failure: DockerIgnoreError?
        Self.read(text, dialect: dialect) { pattern, line, problem in
            if let pattern { patterns.append(pattern) }
            if failure == nil, let problem {
                failure = DockerIgnoreError(pattern: problem.0, line: line, reason: problem.1)
            }
        }
        if let failure { throw failure }
        self.init(patterns: patterns)
    }

    private static func read(
        _ text: String, dialect: Dialect, _ each: (Pattern?, Int, (String, String)?) -> Void
    ) {
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine)
            if number == 0, line.first == "\u{FEFF}" { line = line.dropFirst() }
            if line.first == "#" { continue }
            var pattern = line.trimmingWhitespace()
            guard !pattern.isEmpty else { continue }
            let reincludes = pattern.first == "!"
            if reincludes { pattern = pattern.dropFirst().trimmingWhitespace() }
            guard !pattern.isEmpty else {
                each(nil, number + 1, (String(line.trimmingWhitespace()), "is a '!' with no pattern to re-include"))
                continue
            }
            var cleaned = Self.clean(String(pattern))
            if cleaned.count > 1, cleaned.hasPrefix("/") { cleaned.removeFirst() }
            do {
                let matcher = try IgnorePattern(cleaned, dialect: dialect)
                each(Pattern(text: cleaned, reincludes: reincludes, matcher: matcher), number + 1, nil)
            } catch {
                each(nil, number + 1, (String(pattern), error.reason))
            }
        }
    }

    private static func suffixes(of patterns: [Pattern]) -> [String]? {
        var suffixes = [String]()
        for pattern in patterns {
            guard let suffix = pattern.matcher.requiredSuffix else { return nil }
            suffixes.append(suffix)
        }
        return suffixes
    }

    /// The ignore files a build looks for, the first that exists winning: the Dockerfile's own
    /// (`NAME.dockerignore` beside it), then the context's `.dockerignore`.
    package static func candidates(context: String, dockerfile: String) -> [String] {
        [dockerfile + ".dockerignore", FilePaths.join(context, ".dockerignore")]
    }

    /// Reads the ignore file that applies to a build: `<Dockerfile>.dockerignore` beside the
    /// Dockerfile when there is one (BuildKit's rule), else `.dockerignore` at the context root.
    /// - Returns: the rules, and the file they came from (nil when there is none).
    /// - Throws: `FileError` when the file cannot be read; `DockerIgnoreError` (with the file and
    ///   line) for a pattern moby refuses.
    package static func load(context: String, dockerfile: String) throws -> (DockerIgnore, String?) {
        for path in candidates(context: context, dockerfile: dockerfile) where FilePaths.exists(path) {
            let bytes = try ReadableFile.readAll(path: path, limit: 4 << 20)
            do {
                return (try DockerIgnore(validating: String(decoding: bytes, as: UTF8.self)), path)
            } catch {
                var located = error
                located.file = path
                throw located
            }
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
            if let suffixes, !suffixes.contains(where: { path.hasSuffix($0) }) { return false }
            return patterns.contains { $0.matcher.matches(path) }
        }
        var parents = [String]()
        var index = path.startIndex
        while let slash = path[index...].firstIndex(of: "/") {
            if slash > path.startIndex { parents.append(String(path[..<slash])) }
            index = path.index(after: slash)
        }
        var excluded = false
        for pattern in patterns where pattern.reincludes == excluded {
            let matched = pattern.matcher.matches(path) || parents.contains { pattern.matcher.matches($0) }
            if matched { excluded = !pattern.reincludes }
        }
        return excluded
    }

    /// Whether some `!` pattern could re-include a path below the excluded directory `path`,
    /// so a walk must still look inside it.
    package func mayReinclude(under path: String) -> Bool {
        patterns.contains { pattern in
            guard pattern.reincludes else { return false }
            if pattern.matcher.spansDirectories { return true }
            return pattern.text.hasPrefix(path + "/") || Glob.hasWildcard(pattern.text)
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

/// A `.dockerignore` pattern moby's matcher refuses.
package struct DockerIgnoreError: Error, Equatable, CustomStringConvertible {
    package var pattern: String
    package var line: Int
    package var reason: String
    /// The ignore file, once known.
    package var file: String?
    package var location: SourceLocation { SourceLocation(file: file ?? ".dockerignore", line: line) }
    package var description: String {
        "the .dockerignore pattern '\(pattern)' \(reason); BuildKit refuses it too: fix or remove it"
    }
}
