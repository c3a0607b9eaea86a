/// Docker's variable substitution for the instructions that apply it (`ADD`, `COPY`, `ENV`,
/// `EXPOSE`, `FROM`, `LABEL`, `STOPSIGNAL`, `USER`, `VOLUME`, `WORKDIR`, `ARG` defaults):
/// `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:+alt}`, `${NAME+alt}`,
/// `${NAME:?message}`, `${NAME?message}`, `${NAME#prefix}`, `${NAME%suffix}`. Single quotes keep
/// text literal, double quotes allow substitution, the escape character protects the next one;
/// quotes and escapes are removed from the result unless `raw` (heredoc bodies keep them).
package struct WordExpander: Sendable {
    package var escape: Character
    package var raw: Bool
    /// Keeps escapes (not quotes) in the result: a substitution pattern's text.
    var keepsEscapes = false

    package init(escape: Character = "\\", raw: Bool = false) {
        self.escape = escape
        self.raw = raw
    }

    /// Why a word could not be expanded.
    package struct Failure: Error, Equatable, CustomStringConvertible {
        package var description: String
    }

    /// The longest text one word may expand to. Docker sets none, and a few hundred bytes of
    /// `ARG`s that each double the last expand past any memory; 1 MiB is far beyond any real
    /// value (an `ENV PATH`, a label) and cheap to hold.
    package static let maximumLength = 1 << 20

    /// Expands one word (spaces inside it are kept).
    /// - Throws: `Failure` for bad syntax, or for a result longer than `maximumLength`.
    package func expand(_ word: String, _ lookup: (String) -> String?) throws(Failure) -> String {
        var scanner = Scanner(text: Array(word))
        return try process(&scanner, stop: nil, lookup)
    }

    /// Expands a word and splits it into fields as BuildKit does for `EXPOSE`: white space
    /// outside quotes, and in what an unquoted substitution gave, separates fields; quotes and
    /// escapes keep it.
    package func fields(_ word: String, _ lookup: (String) -> String?) throws(Failure) -> [String] {
        var scanner = Scanner(text: Array(word))
        var fields = [String]()
        var current = ""
        var started = false
        func end() {
            if started || !current.isEmpty { fields.append(current) }
            current = ""
            started = false
        }
        while let character = scanner.next() {
            try Self.checkLength(current)
            switch character {
            case " ", "\t", "\n":
                end()
            case "'":
                current += try singleQuoted(&scanner)
                started = true
            case "\"":
                current += try doubleQuoted(&scanner, lookup)
                started = true
            case "$":
                for piece in try dollar(&scanner, lookup) {
                    if piece == " " || piece == "\t" || piece == "\n" { end() } else { current.append(piece) }
                }
            case escape:
                if let escaped = scanner.next() {
                    current.append(escaped)
                    started = true
                }
            default:
                current.append(character)
            }
        }
        end()
        return fields
    }

    struct Scanner {
        var text: [Character]
        var index = 0
        var atEnd: Bool { index >= text.count }
        func peek() -> Character? { atEnd ? nil : text[index] }
        mutating func next() -> Character? {
            guard !atEnd else { return nil }
            defer { index += 1 }
            return text[index]
        }
    }

    private func process(_ scanner: inout Scanner, stop: Character?, _ lookup: (String) -> String?) throws(Failure)
        -> String
    {
        var result = ""
        while let character = scanner.peek() {
            if let stop, character == stop { return result }
            try Self.checkLength(result)
            _ = scanner.next()
            switch character {
            case "'" where !raw:
                result += try singleQuoted(&scanner)
            case "\"" where !raw:
                result += try doubleQuoted(&scanner, lookup)
            case "$":
                result += try dollar(&scanner, lookup)
            case escape:
                // A lone escape at the end of the word escapes nothing and is dropped.
                guard let escaped = scanner.next() else {
                    if raw { result.append(character) }
                    break
                }
                if (raw || keepsEscapes) && escaped != "$" { result.append(character) }
                result.append(escaped)
            default:
                result.append(character)
            }
        }
        if let stop { throw Failure(description: "missing '\(stop)' in substitution") }
        try Self.checkLength(result)
        return result
    }

    static func checkLength(_ text: String) throws(Failure) {
        guard text.utf8.count <= maximumLength else {
            throw Failure(
                description: "it expands to more than \(maximumLength >> 20) MiB (variables that repeat each other?)")
        }
    }

    private func singleQuoted(_ scanner: inout Scanner) throws(Failure) -> String {
        var result = ""
        while let character = scanner.next() {
            if character == "'" { return result }
            result.append(character)
        }
        throw Failure(description: "unterminated single quote")
    }

    private func doubleQuoted(_ scanner: inout Scanner, _ lookup: (String) -> String?) throws(Failure) -> String {
        var result = ""
        while let character = scanner.next() {
            try Self.checkLength(result)
            switch character {
            case "\"": return result
            case "$": result += try dollar(&scanner, lookup)
            case escape:
                guard let escaped = scanner.next() else { throw Failure(description: "unterminated double quote") }
                if escaped != "\"" && escaped != "$" && escaped != escape { result.append(character) }
                result.append(escaped)
            default: result.append(character)
            }
        }
        throw Failure(description: "unterminated double quote")
    }

    /// A parameter's name: a variable name, a positional parameter (every digit: `$10` is the
    /// tenth) or a special one (`@ * # ? - $ !`). A Dockerfile has no positional or special
    /// parameters: they are never set.
    private func name(_ scanner: inout Scanner) -> String {
        if let first = scanner.peek(), first.isNumber, first.isASCII {
            var digits = ""
            while let digit = scanner.peek(), digit.isASCII, digit.isNumber {
                digits.append(digit)
                _ = scanner.next()
            }
            return digits
        }
        if let first = scanner.peek(), "@*#?-$!".contains(first) {
            _ = scanner.next()
            return String(first)
        }
        var name = ""
        while let character = scanner.peek(), character.isASCII,
            character.isLetter || character.isNumber || character == "_"
        {
            name.append(character)
            _ = scanner.next()
        }
        return name
    }

    /// The value of a parameter: never set for positional and special ones.
    private static func value(_ name: String, _ lookup: (String) -> String?) -> String? {
        guard let first = name.first, first.isLetter || first == "_" else { return nil }
        return lookup(name)
    }

    private func dollar(_ scanner: inout Scanner, _ lookup: (String) -> String?) throws(Failure) -> String {
        guard scanner.peek() == "{" else {
            let name = name(&scanner)
            return name.isEmpty ? "$" : Self.value(name, lookup) ?? ""
        }
        _ = scanner.next()
        let name = name(&scanner)
        guard !name.isEmpty else {
            throw Failure(description: "bad substitution: '${' must be followed by a variable name")
        }
        guard let modifier = scanner.next() else { throw Failure(description: "missing '}' after ${\(name)") }
        let value = Self.value(name, lookup)
        switch modifier {
        case "}":
            return value ?? ""
        case ":":
            guard let operation = scanner.next(), "-+?".contains(operation) else {
                throw Failure(description: "unsupported modifier in ${\(name):…}; use :-, :+ or :?")
            }
            let word = try argument(&scanner, lookup)
            let isSet = !(value ?? "").isEmpty
            return try apply(operation, name: name, value: value, isSet: isSet, word: word)
        case "-", "+", "?":
            let word = try argument(&scanner, lookup)
            return try apply(modifier, name: name, value: value, isSet: value != nil, word: word)
        case "#", "%":
            let longest = scanner.peek() == modifier
            if longest { _ = scanner.next() }
            let pattern = try Self.pattern(try patternArgument(&scanner, stop: "}", lookup))
            return Self.trim(value ?? "", pattern: pattern, fromStart: modifier == "#", longest: longest)
        case "/":
            let all = scanner.peek() == "/"
            if all { _ = scanner.next() }
            let needle = try patternArgument(&scanner, stop: "/", lookup)
            let replacement = try patternArgument(&scanner, stop: "}", lookup)
            guard let value else { return "" }
            return Self.replace(in: value, pattern: try Self.pattern(needle), with: replacement, all: all)
        default:
            throw Failure(description: "unsupported modifier '\(modifier)' in ${\(name)…}")
        }
    }

    /// The text of a pattern or replacement up to an unescaped `stop`, with variables expanded
    /// and escapes kept (BuildKit reads them as the pattern's own escapes).
    private func patternArgument(_ scanner: inout Scanner, stop: Character, _ lookup: (String) -> String?)
        throws(Failure) -> String
    {
        var expander = self
        expander.keepsEscapes = true
        let word = try expander.process(&scanner, stop: stop, lookup)
        _ = scanner.next()
        return word
    }

    /// One element of a substitution pattern.
    enum PatternElement: Equatable {
        case literal(Character)
        /// `*`: any run of characters.
        case any
        /// `?`: one character.
        case one
    }

    /// A substitution pattern as BuildKit reads one: `*` and `?` are wildcards, an escaped `*`,
    /// `?` or escape character is that character, an escaped `}` or `/` is that character, and
    /// every other character (brackets too) stands for itself.
    static func pattern(_ text: String) throws(Failure) -> [PatternElement] {
        var elements = [PatternElement]()
        var characters = Array(text)[...]
        while let character = characters.popFirst() {
            switch character {
            case "*": elements.append(.any)
            case "?": elements.append(.one)
            case "\\":
                guard let next = characters.popFirst() else {
                    throw Failure(description: "the pattern '\(text)' ends in an escape")
                }
                guard "*?\\}/".contains(next) else {
                    throw Failure(description: "invalid escape '\\\(next)' in the pattern '\(text)'")
                }
                elements.append(.literal(next))
            default: elements.append(.literal(character))
            }
        }
        return elements
    }

    static func matches(_ pattern: ArraySlice<PatternElement>, _ text: ArraySlice<Character>) -> Bool {
        guard let first = pattern.first else { return text.isEmpty }
        switch first {
        case .any:
            var rest = text
            while true {
                if matches(pattern.dropFirst(), rest) { return true }
                guard !rest.isEmpty else { return false }
                rest = rest.dropFirst()
            }
        case .one:
            return !text.isEmpty && matches(pattern.dropFirst(), text.dropFirst())
        case .literal(let character):
            return text.first == character && matches(pattern.dropFirst(), text.dropFirst())
        }
    }

    /// `${x/pat/rep}` (the first match, leftmost and longest) and `${x//pat/rep}` (every match,
    /// left to right, none overlapping).
    static func replace(in value: String, pattern: [PatternElement], with replacement: String, all: Bool) -> String {
        let characters = Array(value)
        var result = ""
        var start = 0
        var index = 0
        while index <= characters.count {
            var matchEnd: Int?
            for end in stride(from: characters.count, through: index, by: -1)
            where matches(pattern[...], characters[index..<end]) {
                matchEnd = end
                break
            }
            guard let end = matchEnd else {
                index += 1
                continue
            }
            result += String(characters[start..<index]) + replacement
            if !all { return result + String(characters[end...]) }
            if end == index {
                // An empty match: keep one character and go on after it.
                if index < characters.count { result.append(characters[index]) }
                start = index + 1
                index += 1
            } else {
                start = end
                index = end
            }
        }
        return start < characters.count ? result + String(characters[start...]) : result
    }

    private func argument(_ scanner: inout Scanner, _ lookup: (String) -> String?) throws(Failure) -> String {
        let word = try process(&scanner, stop: "}", lookup)
        _ = scanner.next()
        return word
    }

    private func apply(_ operation: Character, name: String, value: String?, isSet: Bool, word: String) throws(Failure)
        -> String
    {
        switch operation {
        case "-": return isSet ? value ?? "" : word
        case "+": return isSet ? word : ""
        default:
            guard isSet else { throw Failure(description: word.isEmpty ? "\(name) is not set" : "\(name): \(word)") }
            return value ?? ""
        }
    }

    /// `${x#pat}`/`${x##pat}`/`${x%pat}`/`${x%%pat}`.
    static func trim(_ value: String, pattern: [PatternElement], fromStart: Bool, longest: Bool) -> String {
        let characters = Array(value)
        let lengths = Array(0...characters.count)
        let order = longest ? lengths.reversed() : lengths
        for length in order {
            let part = fromStart ? characters[..<length] : characters[(characters.count - length)...]
            if matches(pattern[...], part) {
                return fromStart ? String(characters[length...]) : String(characters[..<(characters.count - length)])
            }
        }
        return value
    }
}

/// Shell-style wildcard matching of one string: `*`, `?`, `[a-z]`, `[^…]`/`[!…]`, and the escape
/// `\`. With a separator, `*` and `?` do not match it (Go's `filepath.Match`).
package enum Glob {
    package static func matches(_ pattern: [Character], _ text: [Character], separator: Character? = "/") -> Bool {
        var p = 0
        var t = 0
        var starP = -1
        var starT = -1
        while t < text.count {
            if p < pattern.count {
                switch pattern[p] {
                case "*":
                    starP = p
                    starT = t
                    p += 1
                    continue
                case "?" where text[t] != separator:
                    p += 1
                    t += 1
                    continue
                case "[":
                    if let (matched, next) = matchClass(pattern, p, text[t]), matched, text[t] != separator {
                        p = next
                        t += 1
                        continue
                    }
                case "\\" where p + 1 < pattern.count:
                    if pattern[p + 1] == text[t] {
                        p += 2
                        t += 1
                        continue
                    }
                default:
                    if pattern[p] == text[t] && pattern[p] != "?" {
                        p += 1
                        t += 1
                        continue
                    }
                }
            }
            // Backtrack: let the last `*` swallow one more character, unless that is a separator.
            guard starP >= 0, text[starT] != separator else { return false }
            starT += 1
            t = starT
            p = starP + 1
        }
        while p < pattern.count, pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }

    /// Whether `character` is in the class opening at `start`, and where the class ends.
    static func matchClass(_ pattern: [Character], _ start: Int, _ character: Character) -> (Bool, Int)? {
        var index = start + 1
        var negated = false
        if index < pattern.count, pattern[index] == "^" || pattern[index] == "!" {
            negated = true
            index += 1
        }
        var matched = false
        var first = true
        while index < pattern.count {
            if pattern[index] == "]" && !first { return (matched != negated, index + 1) }
            first = false
            var low = pattern[index]
            if low == "\\", index + 1 < pattern.count {
                index += 1
                low = pattern[index]
            }
            var high = low
            if index + 2 < pattern.count, pattern[index + 1] == "-", pattern[index + 2] != "]" {
                high = pattern[index + 2]
                index += 2
            }
            if low <= character && character <= high { matched = true }
            index += 1
        }
        return nil
    }

    /// Whether a path pattern has any wildcard.
    package static func hasWildcard(_ pattern: String) -> Bool {
        pattern.contains { $0 == "*" || $0 == "?" || $0 == "[" }
    }
}
