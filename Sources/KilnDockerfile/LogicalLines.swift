import Foundation
import KilnCore

/// A Dockerfile's text cut into instructions the way BuildKit's parser cuts it: parser
/// directives at the top, comments and blank lines dropped, continuation lines joined (comments
/// and blank lines inside a continuation skipped), and heredoc bodies attached to the
/// instruction that opens them.
struct LogicalLine {
    /// The joined text of the instruction, leading whitespace of its first line removed.
    var text: [Character]
    /// Where each stretch of `text` came from, to turn an offset back into a line and column.
    var pieces: [Piece]
    var heredocs: [Heredoc]

    struct Piece {
        var offset: Int
        var line: Int
        var column: Int
    }

    var firstLine: Int { pieces[0].line }

    /// The file position of `offset` in `text` (1-based line and column).
    func position(of offset: Int) -> (line: Int, column: Int) {
        var piece = pieces[0]
        for candidate in pieces where candidate.offset <= offset { piece = candidate }
        return (piece.line, piece.column + (offset - piece.offset))
    }
}

/// A here-document: `<<EOF` … `EOF`.
package struct Heredoc: Hashable, Sendable {
    /// The delimiter word, which `COPY <<NAME dir/` also uses as the file name.
    package var name: String
    /// The body, each line ending in a newline, leading tabs removed for `<<-`.
    package var content: String
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): the body is taken literally.
    package var expands: Bool
    /// `<<-`: leading tabs were stripped.
    package var stripsTabs: Bool

    package init(name: String, content: String, expands: Bool = true, stripsTabs: Bool = false) {
        self.name = name
        self.content = content
        self.expands = expands
        self.stripsTabs = stripsTabs
    }
}

/// Parser directives (`# syntax=…`, `# escape=…`, `# check=…`) from the top of a Dockerfile.
package struct Directives: Hashable, Sendable {
    package var values: [String: String] = [:]
    package var escape: Character = "\\"
    package init() {}
}

struct LineSplitter {
    static let knownDirectives: Set<String> = ["syntax", "escape", "check"]
    static let heredocInstructions: Set<String> = ["RUN", "COPY", "ADD"]

    let file: String
    private let lines: [[Character]]
    private var next = 0
    private(set) var directives = Directives()

    init(file: String, text: String) {
        self.file = file
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> [Character] in
            var characters = Array(line)
            if characters.last == "\r" { characters.removeLast() }
            return characters
        }
        if let first = lines.first, first.first == "\u{FEFF}" { lines[0].removeFirst() }
        self.lines = lines
    }

    /// Reads the parser directives, then every instruction.
    mutating func split() throws(DockerfileError) -> [LogicalLine] {
        try readDirectives()
        var result = [LogicalLine]()
        while let line = try nextLogicalLine() { result.append(line) }
        return result
    }

    private mutating func readDirectives() throws(DockerfileError) {
        var seen = Set<String>()
        while next < lines.count, let (key, value) = Self.directive(in: lines[next]) {
            guard Self.knownDirectives.contains(key) else { break }
            let location = SourceLocation(file: file, line: next + 1, column: 1)
            guard seen.insert(key).inserted else {
                throw DockerfileError("only one '\(key)' parser directive may be given", at: location)
            }
            if key == "escape" {
                guard value == "\\" || value == "`" else {
                    throw DockerfileError("the escape directive takes '\\' or '`', not '\(value)'", at: location)
                }
                directives.escape = Character(value)
            }
            directives.values[key] = value
            next += 1
        }
    }

    /// `# key = value` with any non-breaking whitespace around the parts; the key lower-cased.
    private static func directive(in line: [Character]) -> (String, String)? {
        var index = 0
        func skipBlanks() { while index < line.count, line[index] == " " || line[index] == "\t" { index += 1 } }
        guard line.first == "#" else { return nil }
        index = 1
        skipBlanks()
        let keyStart = index
        while index < line.count, line[index].isLetter || line[index].isNumber || line[index] == "_" { index += 1 }
        guard index > keyStart, line[keyStart].isLetter else { return nil }
        let key = String(line[keyStart..<index]).lowercased()
        skipBlanks()
        guard index < line.count, line[index] == "=" else { return nil }
        index += 1
        skipBlanks()
        var value = line[index...]
        while let last = value.last, last == " " || last == "\t" { value.removeLast() }
        guard !value.isEmpty else { return nil }
        return (key, String(value))
    }

    private static func leadingBlanks(_ line: [Character]) -> Int {
        var count = 0
        while count < line.count, line[count].isWhitespace { count += 1 }
        return count
    }

    private static func isComment(_ line: [Character]) -> Bool {
        let start = leadingBlanks(line)
        return start < line.count && line[start] == "#"
    }

    private static func isBlank(_ line: [Character]) -> Bool { leadingBlanks(line) == line.count }

    /// Removes a trailing escape character (and blanks after it); true when one was there.
    /// Whether the line continues on the next (it ends, white space aside, in an odd number of
    /// escape characters: `\\` is an escaped escape, as in BuildKit), and the line without the
    /// continuing one.
    private func trimContinuation(_ line: inout [Character]) -> Bool {
        var end = line.count
        while end > 0, line[end - 1] == " " || line[end - 1] == "\t" { end -= 1 }
        var escapes = 0
        while escapes < end, line[end - 1 - escapes] == directives.escape { escapes += 1 }
        guard escapes % 2 == 1 else { return false }
        line.removeSubrange((end - 1)...)
        return true
    }

    private mutating func nextLogicalLine() throws(DockerfileError) -> LogicalLine? {
        while next < lines.count {
            let raw = lines[next]
            next += 1
            if Self.isComment(raw) || Self.isBlank(raw) { continue }
            let indent = Self.leadingBlanks(raw)
            var first = Array(raw[indent...])
            var logical = LogicalLine(
                text: [], pieces: [.init(offset: 0, line: next, column: indent + 1)], heredocs: [])
            var continues = trimContinuation(&first)
            logical.text = first
            while continues, next < lines.count {
                var part = lines[next]
                next += 1
                if Self.isComment(part) || Self.isBlank(part) { continue }
                continues = trimContinuation(&part)
                logical.pieces.append(.init(offset: logical.text.count, line: next, column: 1))
                logical.text += part
            }
            if logical.text.allSatisfy(\.isWhitespace) { continue }
            try readHeredocs(into: &logical)
            return logical
        }
        return nil
    }

    /// For `RUN`, `COPY` and `ADD`, reads the bodies of the heredocs the line opens, in order.
    private mutating func readHeredocs(into logical: inout LogicalLine) throws(DockerfileError) {
        let words = logical.text.split(whereSeparator: \.isWhitespace)
        guard let keyword = words.first, Self.heredocInstructions.contains(String(keyword).uppercased()) else { return }
        for opener in Self.heredocOpeners(in: logical.text, escape: directives.escape) {
            var body = ""
            var closed = false
            while next < lines.count {
                var line = lines[next]
                next += 1
                if opener.stripsTabs { line = Array(line.drop { $0 == "\t" }) }
                if String(line) == opener.name {
                    closed = true
                    break
                }
                body += String(line) + "\n"
            }
            guard closed else {
                let indented = lines.contains { String($0).trimmingCharacters(in: .whitespaces) == opener.name }
                let hint = indented ? "; the closing line may not be indented (only <<- strips leading tabs)" : ""
                throw DockerfileError(
                    "heredoc '\(opener.name)' opened here is never closed (expected a line reading '\(opener.name)'\(hint))",
                    at: SourceLocation(file: file, line: logical.firstLine, column: nil))
            }
            logical.heredocs.append(
                Heredoc(name: opener.name, content: body, expands: opener.expands, stripsTabs: opener.stripsTabs))
        }
    }

    /// The `<<NAME`, `<<-NAME`, `<<"NAME"` and `<<'NAME'` words of a line, outside quotes.
    static func heredocOpeners(in text: [Character], escape: Character) -> [Heredoc] {
        var result = [Heredoc]()
        var index = 0
        var quote: Character?
        while index < text.count {
            let character = text[index]
            if let open = quote {
                if character == escape && open == "\"" {
                    index += 2
                    continue
                }
                if character == open { quote = nil }
                index += 1
                continue
            }
            if character == escape {
                index += 2
                continue
            }
            if character == "\"" || character == "'" {
                quote = character
                index += 1
                continue
            }
            let atWordStart = index == 0 || text[index - 1].isWhitespace
            guard atWordStart, character == "<", index + 1 < text.count, text[index + 1] == "<" else {
                index += 1
                continue
            }
            var cursor = index + 2
            let stripsTabs = cursor < text.count && text[cursor] == "-"
            if stripsTabs { cursor += 1 }
            var end = cursor
            while end < text.count, !text[end].isWhitespace { end += 1 }
            var name = String(text[cursor..<end])
            var expands = true
            if name.count >= 2, let first = name.first, first == "\"" || first == "'", name.last == first {
                name = String(name.dropFirst().dropLast())
                expands = false
            }
            if !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." }) {
                result.append(Heredoc(name: name, content: "", expands: expands, stripsTabs: stripsTabs))
            }
            index = end
        }
        return result
    }
}
