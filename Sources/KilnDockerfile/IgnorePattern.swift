/// One `.dockerignore` pattern as moby's matcher (BuildKit's) reads it. moby turns a pattern into
/// a regular expression, and kiln matches the same language directly:
///
/// - `*` is any run of characters but `/`, `?` one character but `/`;
/// - `**` is any run of characters, `/` included, and `**/` also none at all (`a/**/b` matches
///   `a/b`); joined to a name (`**file`, `a**/*.txt`) it still spans components;
/// - a pattern that is literal but for a trailing `**` (`abc/**`) matches what starts with the
///   part before it (`abc/x`, not `abc`); one that is literal but for a leading `**` (`**/name`,
///   `**file`) matches any path ending in the rest (`name`, `file`);
/// - `[…]` is a character class (`^` negates it, `\` escapes in it), which may match `/`;
/// - `\` makes the next character literal; every other character stands for itself.
///
/// A malformed class (`[`, `a[`, `[]a]`, `[-]`, `[x-]`, `[-x]`, `[a-b-c]`, a range going down), or
/// a lone trailing `\`, is refused: moby's matcher refuses such a pattern, and the build with it.
struct IgnorePattern: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// No wildcard: the path is the pattern.
        case exact(String)
        /// A literal part then `**`: the path starts with the part.
        case prefix(String)
        /// `**` then a literal part: the path ends with the part.
        case suffix(String)
        case elements([Element])
    }

    enum Element: Sendable, Equatable {
        case literal(Character)
        /// `*`: any run of characters but `/`.
        case componentRun
        /// `?`: one character but `/`.
        case componentCharacter
        /// `**` at the end: anything.
        case anything
        /// `**` (and `**/`) elsewhere: nothing, or anything ending in `/`.
        case anyDirectories
        /// A bracket expression: its ranges, negated or not.
        case characterClass(ranges: [ClosedRange<Character>], negated: Bool)
    }

    let kind: Kind

    /// Why a pattern is refused.
    struct Malformed: Error, Equatable {
        var reason: String
    }

    init(_ pattern: String, dialect: DockerIgnore.Dialect = .dockerignore) throws(Malformed) {
        var elements = [Element]()
        var characters = Array(pattern)[...]
        var literalOnly = true
        var leadingAnything = false
        var trailingAnything = false
        var index = 0
        // After a leading `**`: nothing but characters moby leaves as they are.
        var plainAfterFirst = true
        while let character = characters.popFirst() {
            if index > 0, "*?\\[.+()|{}$".contains(character) { plainAfterFirst = false }
            defer { index += 1 }
            switch character {
            case "*":
                if characters.first == "*" {
                    characters.removeFirst()
                    if characters.first == "/" { characters.removeFirst() }
                    if characters.isEmpty {
                        if literalOnly { trailingAnything = true }
                        elements.append(.anything)
                    } else {
                        elements.append(.anyDirectories)
                        literalOnly = false
                    }
                    if index == 0 { leadingAnything = true }
                } else {
                    elements.append(.componentRun)
                    literalOnly = false
                }
            case "?":
                elements.append(.componentCharacter)
                literalOnly = false
            case "\\":
                guard let escaped = characters.popFirst() else {
                    throw Malformed(reason: "ends in an escape that escapes nothing")
                }
                elements.append(.literal(escaped))
                literalOnly = false
            case "[":
                elements.append(try Self.characterClass(&characters))
                literalOnly = false
            default:
                elements.append(.literal(character))
                // moby escapes these for its regular expression, which makes it one: the pattern
                // is then no plain prefix, suffix or exact text (`**/.foo` does not match `bar.foo`).
                if ".+()|{}$".contains(character) { literalOnly = false }
            }
        }
        let text = String(elements.compactMap { if case .literal(let c) = $0 { c } else { nil } })
        if dialect == .dockerignore, leadingAnything, plainAfterFirst {
            kind = .suffix(text)
        } else if trailingAnything {
            kind = .prefix(text)
        } else if literalOnly {
            kind = .exact(text)
        } else {
            kind = .elements(elements)
        }
    }

    /// A bracket expression after its `[`, as Go's `filepath.Match` (the syntax check moby runs)
    /// and regular expressions both accept it.
    private static func characterClass(_ characters: inout ArraySlice<Character>) throws(Malformed) -> Element {
        var negated = false
        if characters.first == "^" {
            negated = true
            characters.removeFirst()
        }
        var ranges = [ClosedRange<Character>]()
        func single() throws(Malformed) -> Character {
            guard let character = characters.popFirst(), character != "-", character != "]" else {
                throw Malformed(reason: "has a malformed character class")
            }
            if character == "\\" {
                guard let escaped = characters.popFirst() else {
                    throw Malformed(reason: "has a malformed character class")
                }
                return escaped
            }
            return character
        }
        while true {
            guard let next = characters.first else { throw Malformed(reason: "has a character class that never ends") }
            if next == "]", !ranges.isEmpty {
                characters.removeFirst()
                return .characterClass(ranges: ranges, negated: negated)
            }
            let low = try single()
            var high = low
            if characters.first == "-" {
                characters.removeFirst()
                high = try single()
                guard low <= high else { throw Malformed(reason: "has a range going down (\(low)-\(high))") }
            }
            ranges.append(low...high)
        }
    }

    func matches(_ path: String) -> Bool {
        switch kind {
        case .exact(let text): return path == text
        case .prefix(let text): return path.hasPrefix(text)
        case .suffix(let text): return path.hasSuffix(text)
        case .elements(let elements): return Self.matches(elements[...], Array(path)[...])
        }
    }

    /// A literal tail every path this pattern matches ends with (nil: none).
    var requiredSuffix: String? {
        switch kind {
        case .exact(let text), .suffix(let text): return text.isEmpty ? nil : text
        case .prefix: return nil
        case .elements(let elements):
            var tail = [Character]()
            for element in elements.reversed() {
                guard case .literal(let character) = element else { break }
                tail.append(character)
            }
            return tail.isEmpty ? nil : String(tail.reversed())
        }
    }

    /// Whether the pattern spans directories (`**`): a path below an excluded one may match it.
    var spansDirectories: Bool {
        switch kind {
        case .exact: false
        case .prefix, .suffix: true
        case .elements(let elements): elements.contains { $0 == .anything || $0 == .anyDirectories }
        }
    }

    private static func matches(_ pattern: ArraySlice<Element>, _ text: ArraySlice<Character>) -> Bool {
        guard let first = pattern.first else { return text.isEmpty }
        let rest = pattern.dropFirst()
        switch first {
        case .literal(let character):
            return text.first == character && matches(rest, text.dropFirst())
        case .componentCharacter:
            guard let character = text.first, character != "/" else { return false }
            return matches(rest, text.dropFirst())
        case .characterClass(let ranges, let negated):
            guard let character = text.first, ranges.contains(where: { $0.contains(character) }) != negated else {
                return false
            }
            return matches(rest, text.dropFirst())
        case .componentRun:
            var remaining = text
            while true {
                if matches(rest, remaining) { return true }
                guard let character = remaining.first, character != "/" else { return false }
                remaining = remaining.dropFirst()
            }
        case .anything:
            return true
        case .anyDirectories:
            if matches(rest, text) { return true }
            // Anything ending in `/`, then the rest.
            var index = text.startIndex
            while index < text.endIndex {
                if text[index] == "/", matches(rest, text[(index + 1)...]) { return true }
                index += 1
            }
            return false
        }
    }
}
