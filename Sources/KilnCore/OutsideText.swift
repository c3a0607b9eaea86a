/// Text kiln did not write itself — a step's output, a registry's error, a file or processor
/// name from the repository — made safe for where kiln prints it: a CI log whose lines a runner
/// reads as commands, or Markdown a forge renders.
package enum OutsideText {
    /// Zero-width space: splits a command marker without changing what a reader sees.
    static let split = "\u{200B}"

    /// `text` as lines of a GitHub Actions log that start no workflow command. The runner reads a
    /// line (ended by LF, CR or CRLF) as a command when, after leading blanks, it starts `::`,
    /// or (the older syntax) when it holds `##[` anywhere; each such marker is split. Nothing else
    /// changes.
    package static func workflowSafe(_ text: String) -> String {
        guard text.contains("::") || text.contains("##[") else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count + 8)
        var lineStart = true
        var rest = Substring(text)
        while let character = rest.first {
            if lineStart, character == " " || character == "\t" {
                result.append(character)
                rest = rest.dropFirst()
                continue
            }
            if lineStart, rest.hasPrefix("::") {
                result += ":" + split + ":"
                rest = rest.dropFirst(2)
                lineStart = false
                continue
            }
            if rest.hasPrefix("##[") {
                result += "#" + split + "#["
                rest = rest.dropFirst(3)
                lineStart = false
                continue
            }
            result.append(character)
            // "\r\n" is one Character in Swift; every form ends a line.
            lineStart = character == "\n" || character == "\r" || character == "\r\n"
            rest = rest.dropFirst()
        }
        return result
    }

    /// A line of JSON made workflow-safe without changing its value: `##[` can only be inside a
    /// string, where `\u0023` is the same `#`. (A JSON line starts `{` or `[`, never `::`, and
    /// escapes its line breaks.)
    package static func jsonWorkflowSafe(_ json: String) -> String {
        json.contains("##[") ? json.replacingOccurrences(of: "##[", with: "#\\u0023[") : json
    }

    /// `text` as Markdown that renders as exactly that text: every ASCII punctuation character a
    /// Markdown or HTML construct could start with is backslash-escaped, line breaks become
    /// spaces (a table row stays one row), and `@` is split from the name after it so no
    /// `@user` or `@org/team` is mentioned.
    package static func markdown(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count + 8)
        for character in text {
            switch character {
            case "\n", "\r", "\r\n": result.append(" ")
            case "@": result += "@" + split
            case "\\", "`", "*", "_", "{", "}", "[", "]", "(", ")", "#", "+", "-", ".", "!", "|", "<", ">", "~", "&",
                "\"", "'", "=", ":", "$":
                result += "\\" + String(character)
            default: result.append(character)
            }
        }
        return result
    }

    /// `text` as a Markdown code span that shows exactly that text: fenced by more backticks than
    /// any run inside it, line breaks as spaces, and (in a table cell, where GitHub splits on
    /// every unescaped `|`, code spans too) pipes escaped.
    package static func markdownCode(_ text: String, inTable: Bool = true) -> String {
        var body = text.replacingOccurrences(of: "\r\n", with: " ").replacingOccurrences(of: "\n", with: " ")
            .replacingOccurrences(of: "\r", with: " ")
        if inTable { body = body.replacingOccurrences(of: "|", with: "\\|") }
        var longest = 0
        var run = 0
        for character in body {
            run = character == "`" ? run + 1 : 0
            longest = max(longest, run)
        }
        let fence = String(repeating: "`", count: longest + 1)
        // A span's first and last space are dropped when both are there (CommonMark), and a
        // backtick there would join the fence: a space on each side keeps the text as it is.
        let pad =
            body.hasPrefix("`") || body.hasSuffix("`") || (body.hasPrefix(" ") && body.hasSuffix(" ")) || body.isEmpty
            ? " " : ""
        return fence + pad + body + pad + fence
    }
}
