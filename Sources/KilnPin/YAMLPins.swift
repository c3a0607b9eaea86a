import KilnCore
import Yams

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One value to pin: a key path (`["image", "platforms", "amd64"]`) and the text it must hold.
package struct PinEdit: Sendable, Hashable {
    package var path: [String]
    package var value: String
    /// The key is taken out of the file (a pin of a platform no longer built); `value` unused.
    package var removes = false

    package init(path: [String], value: String) {
        self.path = path
        self.value = value
    }

    /// Takes the pin at `path` out of the file.
    package static func removal(_ path: [String]) -> PinEdit {
        var edit = PinEdit(path: path, value: "")
        edit.removes = true
        return edit
    }

    package var dottedPath: String { path.joined(separator: ".") }
}

/// What pinning asks of a parsed file.
package protocol PinReading {
    /// The scalar at `path`, nil when a key on the way is missing or the value is null.
    func value(at path: [String]) -> String?
    /// Whether `path` names something other than null (a value or a mapping).
    func contains(_ path: [String]) -> Bool
    /// The keys of the mapping at `path` (`image.platforms`), in file order.
    func keys(at path: [String]) -> [String]
}

/// The pins a `registry.yaml` held when it was read (`image.platforms.*` and `image.oci`), kept
/// with the processor: a lane whose pins are already right then knows so without parsing the
/// file a second time.
package struct PinSnapshot: PinReading, Sendable, Equatable {
    var values: [[String]: String] = [:]
    var present: Set<[String]> = []
    var platformKeys: [String] = []

    package init(_ parsed: YAMLPins.Parsed) {
        let platforms = ["image", "platforms"]
        platformKeys = parsed.keys(at: platforms)
        let paths = [platforms, ["image", "oci"]] + parsed.keys(at: platforms).map { platforms + [$0] }
        for path in paths {
            if parsed.contains(path) { present.insert(path) }
            if let value = parsed.value(at: path) { values[path] = value }
        }
    }

    /// Only `image.platforms.KEY` and `image.oci` are kept; any other path reads as missing.
    package func value(at path: [String]) -> String? { values[path] }

    /// Only `image.platforms`, its keys and `image.oci` are kept.
    package func contains(_ path: [String]) -> Bool { present.contains(path) }

    /// Only the keys of `image.platforms` are kept.
    package func keys(at path: [String]) -> [String] {
        guard path == ["image", "platforms"] else { return [] }
        return platformKeys
    }
}

/// Reads and rewrites values of a YAML mapping in place, the way a person would with an editor:
/// only the characters of the value change, and a missing key is added at its sorted place (or
/// after its siblings) with the indentation the file already uses. Comments, quoting, key order,
/// blank lines and line endings are left as they were, so pinning an unchanged value changes no
/// byte at all.
///
/// The file is parsed with libyaml (through Yams) to find where each node starts; the edit itself
/// is made on the original text.
package enum YAMLPins {
    /// The scalar at `path`, nil when a key on the way is missing or the value is null.
    package static func value(at path: [String], in text: String, file: String) throws(YAMLFileError) -> String? {
        try Parsed(text, file: file).value(at: path)
    }

    /// The line of the deepest key of `path` the file has (1 when it has none): where a stale or
    /// missing pin is shown.
    package static func line(of path: [String], in text: String, file: String) throws(YAMLFileError) -> Int {
        try Parsed(text, file: file).line(of: path)
    }

    /// Whether `path` names something other than null (a value or a mapping).
    package static func contains(_ path: [String], in text: String, file: String) throws(YAMLFileError) -> Bool {
        try Parsed(text, file: file).contains(path)
    }

    /// A file parsed once for several reads (a lane reads each pin of each processor).
    package struct Parsed: PinReading {
        let root: Node?

        package init(_ text: String, file: String) throws(YAMLFileError) {
            root = try YAMLPins.parse(text, file: file)
        }

        /// A file parsed already (`YAMLPins.parse`).
        package init(root: Node?) { self.root = root }

        /// The node at `path`, nil when a key on the way is missing.
        func node(at path: [String]) -> Node? {
            var node = root
            for key in path {
                guard case .mapping(let mapping)? = node, let entry = YAMLPins.entry(key, in: mapping) else {
                    return nil
                }
                node = entry.value
            }
            return node
        }

        /// The scalar at `path`, nil when a key on the way is missing or the value is null.
        package func value(at path: [String]) -> String? {
            guard case .scalar(let scalar)? = node(at: path), !YAMLPins.isNull(scalar) else { return nil }
            return scalar.string
        }

        /// The keys of the mapping at `path`, in file order; none when it is not a mapping.
        package func keys(at path: [String]) -> [String] {
            guard case .mapping(let mapping)? = node(at: path) else { return [] }
            return mapping.compactMap { $0.key.string }
        }

        /// The line of the deepest key of `path` the file has (1 when it has none).
        package func line(of path: [String]) -> Int {
            var node = root
            var line = 1
            for key in path {
                guard case .mapping(let mapping)? = node, let entry = YAMLPins.entry(key, in: mapping) else { break }
                line = entry.key.mark?.line ?? line
                node = entry.value
            }
            return line
        }

        /// Whether `path` names something other than null (a value or a mapping).
        package func contains(_ path: [String]) -> Bool {
            let node = node(at: path)
            if case .scalar(let scalar)? = node, YAMLPins.isNull(scalar) { return false }
            return node != nil
        }
    }

    /// `text` with every edit made; the same text when every value is already as asked.
    package static func apply(_ edits: [PinEdit], to text: String, file: String) throws(YAMLFileError) -> String {
        var text = text
        for edit in edits {
            var document = Document(text)
            guard let change = try change(for: edit, in: document, root: parse(text, file: file), file: file) else {
                continue
            }
            document.scalars.replaceSubrange(change.range, with: change.replacement.unicodeScalars)
            text = document.string
        }
        return text
    }

    /// Makes the edits in the file at `path`, atomically (temporary file, `fsync`, rename) and
    /// keeping its permissions and owner; false, and the file untouched, when it already holds them. A
    /// symlinked file is written through: the link stays, its target gets the new text.
    package static func write(_ edits: [PinEdit], toFileAt path: String, displayPath: String) throws -> Bool {
        let target = FilePaths.realPath(path) ?? path
        let text = String(decoding: try ReadableFile.readAll(path: target, limit: 4 << 20), as: UTF8.self)
        let updated = try apply(edits, to: text, file: displayPath)
        guard updated != text else { return false }
        var info = stat()
        let known = stat(target, &info) == 0
        let permissions = known ? info.st_mode & 0o7777 : 0o644
        try AtomicFileWriter.write(Array(updated.utf8), to: target, permissions: permissions)
        // Run as root (sudo -E on a CI runner, for buildah), the new file would be root's: it
        // stays its owner's, so the checkout's user can commit and clean it.
        if known, geteuid() == 0, info.st_uid != 0 || info.st_gid != 0 { _ = chown(target, info.st_uid, info.st_gid) }
        return true
    }

    // MARK: - Parsing

    package static func parse(_ text: String, file: String) throws(YAMLFileError) -> Node? {
        do {
            // The basic resolver: kiln reads every scalar as text (nulls by their spelling), and
            // the default one's regular expressions were most of parsing a registry.yaml.
            // UTF-8 named: Yams's default looks the encoding up in the environment on every parse,
            // which at thousands of registry.yaml files was a twentieth of an unchanged lane.
            return try Yams.compose(yaml: text, .basic, .default, .utf8)
        } catch let error as YamlError {
            // The first line says what is wrong; libyaml's context that follows repeats the file.
            let what = "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
            throw YAMLFileError(
                "not valid YAML: \(what)", location: SourceLocation(file: file, line: Self.line(of: error) ?? 1))
        } catch {
            throw YAMLFileError("not valid YAML: \(error)", location: SourceLocation(file: file, line: 1))
        }
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): mark.line
        default: nil
        }
    }

    static func entry(_ key: String, in mapping: Node.Mapping) -> (key: Node, value: Node)? {
        mapping.first { $0.key.string == key }
    }

    package static func isNull(_ scalar: Node.Scalar) -> Bool {
        scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    // MARK: - Editing

    struct Change {
        var range: Range<Int>
        var replacement: String
    }

    /// The text the file is edited as: Unicode scalars (libyaml's column unit) and line starts.
    struct Document {
        var scalars: [Unicode.Scalar]
        let lineStarts: [Int]
        let newline: String

        init(_ text: String) {
            scalars = Array(text.unicodeScalars)
            var starts = [0]
            for (offset, scalar) in scalars.enumerated() where scalar == "\n" { starts.append(offset + 1) }
            lineStarts = starts
            newline = text.contains("\r\n") ? "\r\n" : "\n"
        }

        var string: String {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars)
            return String(view)
        }

        func offset(_ mark: Mark) -> Int {
            min(lineStarts[min(mark.line, lineStarts.count) - 1] + mark.column - 1, scalars.count)
        }

        func line(of offset: Int) -> Int { (lineStarts.lastIndex { $0 <= offset } ?? 0) + 1 }

        /// The text of a 1-based line without its line break.
        func text(ofLine line: Int) -> [Unicode.Scalar] {
            let start = lineStarts[line - 1]
            var end = line < lineStarts.count ? lineStarts[line] - 1 : scalars.count
            if end > start, scalars[end - 1] == "\r" { end -= 1 }
            return Array(scalars[start..<max(start, end)])
        }

        func endOfLine(_ line: Int) -> Int {
            var end = line < lineStarts.count ? lineStarts[line] - 1 : scalars.count
            if end > lineStarts[line - 1], scalars[end - 1] == "\r" { end -= 1 }
            return end
        }

        /// The indentation unit the file uses for nested block mappings (2 when it has none).
        var indentUnit: Int {
            var best: Int?
            var previous: (indent: Int, opensBlock: Bool)?
            for line in 1...lineStarts.count {
                let text = self.text(ofLine: line)
                let indent = text.prefix { $0 == " " }.count
                guard indent < text.count, text[indent] != "#" else { continue }
                if let previous, previous.opensBlock, indent > previous.indent {
                    best = min(best ?? .max, indent - previous.indent)
                }
                let trimmed = String(String.UnicodeScalarView(text)).split(separator: "#", maxSplits: 1)[0]
                    .trimmingTrailingSpaces()
                previous = (indent, trimmed.hasSuffix(":"))
            }
            return best ?? 2
        }
    }

    static func change(for edit: PinEdit, in document: Document, root: Node?, file: String) throws(YAMLFileError)
        -> Change?
    {
        if edit.removes { return try removal(of: edit.path, in: document, root: root, file: file) }
        guard let root else {
            // An empty file: the whole path goes at the end.
            let block = renderBlock(edit.path[...], value: edit.value, indent: 0, unit: 2, newline: document.newline)
            let needsBreak = !document.scalars.isEmpty && document.scalars.last != "\n"
            return Change(
                range: document.scalars.count..<document.scalars.count,
                replacement: (needsBreak ? document.newline : "") + block)
        }
        guard case .mapping(var mapping) = root else {
            throw YAMLFileError(
                "the file is not a YAML mapping, so '\(edit.dottedPath)' cannot be set",
                location: SourceLocation(file: file, line: 1))
        }
        for (depth, key) in edit.path.enumerated() {
            let rest = edit.path[depth...]
            let isLast = depth == edit.path.count - 1
            guard let entry = entry(key, in: mapping) else {
                return try insertion(of: rest, value: edit.value, into: mapping, document: document, file: file)
            }
            switch entry.value {
            case .scalar(let scalar) where isLast:
                if scalar.string == edit.value && !isNull(scalar) { return nil }
                if isNull(scalar) && scalar.string.isEmpty {
                    let colon = try afterColon(of: entry.key, document: document, file: file)
                    return Change(
                        range: colon..<colon,
                        replacement: " " + render(edit.value, style: .plain, inFlow: mapping.style == .flow))
                }
                let span = try self.span(of: scalar, document: document, file: file, path: edit.dottedPath)
                return Change(
                    range: span, replacement: render(edit.value, style: scalar.style, inFlow: mapping.style == .flow))
            case .mapping(let child) where !isLast:
                mapping = child
            case .scalar(let scalar) where isNull(scalar):
                // `platforms:` with nothing (or null) under it: the rest of the path goes there.
                let nested = rest.dropFirst()
                if scalar.string.isEmpty && mapping.style != .flow {
                    let keyLine = entry.key.mark.map { $0.line } ?? 1
                    let indent = (entry.key.mark?.column ?? 1) - 1 + document.indentUnit
                    let end = document.endOfLine(keyLine)
                    let block = renderBlock(
                        nested, value: edit.value, indent: indent, unit: document.indentUnit, newline: document.newline)
                    return Change(
                        range: end..<end, replacement: document.newline + String(block.dropLast(document.newline.count))
                    )
                }
                let flow = renderFlow(nested, value: edit.value)
                if scalar.string.isEmpty {
                    let colon = try afterColon(of: entry.key, document: document, file: file)
                    return Change(range: colon..<colon, replacement: " " + flow)
                }
                return Change(
                    range: try span(of: scalar, document: document, file: file, path: edit.dottedPath),
                    replacement: flow)
            default:
                let line = entry.value.mark?.line ?? 1
                let what = isLast ? "a single value" : "a mapping"
                throw YAMLFileError(
                    "'\(edit.path[...depth].joined(separator: "."))' must be \(what) to pin '\(edit.dottedPath)'",
                    location: SourceLocation(file: file, line: line))
            }
        }
        return nil
    }

    /// The lines of the block mapping entry at `path` taken out (the key's line to the end of
    /// the value's, a comment on them included); nil when there is no such key. An entry of a
    /// flow mapping (`{amd64: …, arm64: …}`) is not taken apart: the error says to remove it.
    static func removal(of path: [String], in document: Document, root: Node?, file: String) throws(YAMLFileError)
        -> Change?
    {
        guard case .mapping(var mapping) = root, let last = path.last else { return nil }
        for key in path.dropLast() {
            guard let entry = entry(key, in: mapping), case .mapping(let child) = entry.value else { return nil }
            mapping = child
        }
        guard let entry = entry(last, in: mapping), let keyMark = entry.key.mark else { return nil }
        let dotted = path.joined(separator: ".")
        // A block entry starts its line; anything before the key means a flow mapping.
        let before = document.text(ofLine: keyMark.line).prefix(keyMark.column - 1)
        guard mapping.style != .flow, before.allSatisfy({ $0 == " " }), case .scalar(let scalar) = entry.value else {
            throw YAMLFileError(
                "'\(dotted)' pins a platform kiln no longer builds; remove it by hand (kiln takes out only a one-line entry of a block mapping)",
                location: SourceLocation(file: file, line: keyMark.line))
        }
        let valueEnd =
            scalar.string.isEmpty && scalar.mark == nil
            ? keyMark.line
            : document.line(of: try span(of: scalar, document: document, file: file, path: dotted).upperBound)
        let start = document.lineStarts[keyMark.line - 1]
        let end = valueEnd < document.lineStarts.count ? document.lineStarts[valueEnd] : document.scalars.count
        return Change(range: start..<end, replacement: "")
    }

    /// A new key (and the keys below it) in `mapping`.
    static func insertion(
        of path: ArraySlice<String>, value: String, into mapping: Node.Mapping, document: Document, file: String
    )
        throws(YAMLFileError) -> Change
    {
        let start = mapping.mark.map { document.offset($0) } ?? 0
        if mapping.style == .flow {
            let close = try closingBrace(from: start, document: document, file: file)
            let empty = mapping.isEmpty
            return Change(
                range: close..<close,
                replacement: (empty ? "" : ", ") + path.first! + ": " + renderFlowValue(path.dropFirst(), value: value))
        }
        let keys = mapping.map { $0.key }
        let column = (keys.first?.mark?.column ?? 1) - 1
        let unit = document.indentUnit
        let block = renderBlock(path, value: value, indent: column, unit: unit, newline: document.newline)
        let names = keys.compactMap(\.string)
        if names == names.sorted(), let next = keys.first(where: { ($0.string ?? "") > path.first! }),
            let mark = next.mark
        {
            // Keys in order (as a YAML dumper writes them): the new key goes at its sorted place.
            let lineStart = document.lineStarts[mark.line - 1]
            return Change(range: lineStart..<lineStart, replacement: block)
        }
        // After the last entry, including whatever belongs to it (deeper lines, sequence items).
        var last = keys.last?.mark?.line ?? document.line(of: start)
        var line = last + 1
        while line <= document.lineStarts.count {
            let text = document.text(ofLine: line)
            let indent = text.prefix { $0 == " " }.count
            if indent == text.count || text[indent] == "#" {
                line += 1
                continue
            }
            let isItem = text[indent] == "-" && (indent + 1 == text.count || text[indent + 1] == " ")
            guard indent > column || (indent == column && isItem) else { break }
            last = line
            line += 1
        }
        let end = document.endOfLine(last)
        return Change(range: end..<end, replacement: document.newline + String(block.dropLast(document.newline.count)))
    }

    static func renderBlock(_ path: ArraySlice<String>, value: String, indent: Int, unit: Int, newline: String)
        -> String
    {
        let padding = String(repeating: " ", count: indent)
        guard path.count > 1 else {
            return padding + path.first! + ": " + render(value, style: .plain, inFlow: false) + newline
        }
        return padding + path.first! + ":" + newline
            + renderBlock(path.dropFirst(), value: value, indent: indent + unit, unit: unit, newline: newline)
    }

    static func renderFlow(_ path: ArraySlice<String>, value: String) -> String {
        "{" + path.first! + ": " + renderFlowValue(path.dropFirst(), value: value) + "}"
    }

    static func renderFlowValue(_ path: ArraySlice<String>, value: String) -> String {
        path.isEmpty ? render(value, style: .plain, inFlow: true) : renderFlow(path, value: value)
    }

    /// `value` in the quoting style the old value used, or plain (double-quoted when plain would
    /// read back differently).
    static func render(_ value: String, style: Node.Scalar.Style, inFlow: Bool) -> String {
        switch style {
        case .singleQuoted: return "'" + value.replacingAll("'", with: "''") + "'"
        case .doubleQuoted: return doubleQuoted(value)
        default: return isPlainSafe(value, inFlow: inFlow) ? value : doubleQuoted(value)
        }
    }

    static func doubleQuoted(_ value: String) -> String {
        "\"" + value.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"") + "\""
    }

    static func isPlainSafe(_ value: String, inFlow: Bool) -> Bool {
        guard let first = value.unicodeScalars.first, let last = value.unicodeScalars.last else { return false }
        if "-?:,[]{}#&*!|>'\"%@`".unicodeScalars.contains(first) || first == " " || last == " " { return false }
        if value.contains(": ") || value.contains(" #") || value.hasSuffix(":") || value.contains("\n") { return false }
        if inFlow && value.unicodeScalars.contains(where: { ",[]{}".unicodeScalars.contains($0) }) { return false }
        // Words YAML would read as something other than a string.
        let lowered = value.lowercased()
        if ["true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"].contains(lowered) || Double(value) != nil
        {
            return false
        }
        return true
    }

    /// Where a scalar's text starts and ends in the file.
    static func span(of scalar: Node.Scalar, document: Document, file: String, path: String) throws(YAMLFileError)
        -> Range<Int>
    {
        guard let mark = scalar.mark else {
            throw YAMLFileError("cannot locate '\(path)' in the file", location: SourceLocation(file: file, line: 1))
        }
        let start = document.offset(mark)
        let text = document.scalars
        switch scalar.style {
        case .plain:
            let value = Array(scalar.string.unicodeScalars)
            let end = start + value.count
            guard end <= text.count, Array(text[start..<end]) == value else {
                throw YAMLFileError(
                    "'\(path)' spans several lines; write it on one line to pin it",
                    location: SourceLocation(file: file, line: mark.line))
            }
            return start..<end
        case .singleQuoted:
            var index = start + 1
            while index < text.count {
                if text[index] == "'" {
                    if index + 1 < text.count, text[index + 1] == "'" {
                        index += 2
                        continue
                    }
                    return start..<(index + 1)
                }
                index += 1
            }
        case .doubleQuoted:
            var index = start + 1
            while index < text.count {
                if text[index] == "\\" {
                    index += 2
                    continue
                }
                if text[index] == "\"" { return start..<(index + 1) }
                index += 1
            }
        default:
            throw YAMLFileError(
                "'\(path)' is a block scalar (| or >); write it as a plain value to pin it",
                location: SourceLocation(file: file, line: mark.line))
        }
        throw YAMLFileError(
            "'\(path)' has an unterminated quote", location: SourceLocation(file: file, line: mark.line))
    }

    /// The offset just after the `:` that follows a key.
    static func afterColon(of key: Node, document: Document, file: String) throws(YAMLFileError) -> Int {
        guard case .scalar(let scalar) = key else {
            throw YAMLFileError(
                "a key is not a plain value", location: SourceLocation(file: file, line: key.mark?.line ?? 1))
        }
        var index = try span(of: scalar, document: document, file: file, path: scalar.string).upperBound
        while index < document.scalars.count, document.scalars[index] != ":" { index += 1 }
        return min(index + 1, document.scalars.count)
    }

    /// The `}` that closes the flow mapping opening at `start`.
    static func closingBrace(from start: Int, document: Document, file: String) throws(YAMLFileError) -> Int {
        var depth = 0
        var index = start
        let text = document.scalars
        while index < text.count {
            switch text[index] {
            case "{", "[": depth += 1
            case "}", "]":
                depth -= 1
                if depth == 0 { return index }
            case "'":
                index += 1
                while index < text.count, !(text[index] == "'" && (index + 1 == text.count || text[index + 1] != "'")) {
                    index += text[index] == "'" ? 2 : 1
                }
            case "\"":
                index += 1
                while index < text.count, text[index] != "\"" { index += text[index] == "\\" ? 2 : 1 }
            default: break
            }
            index += 1
        }
        throw YAMLFileError(
            "a flow mapping is not closed", location: SourceLocation(file: file, line: document.line(of: start)))
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

extension Substring {
    func trimmingTrailingSpaces() -> Substring {
        var result = self
        while let last = result.last, last == " " || last == "\t" || last == "\r" { result.removeLast() }
        return result
    }
}
