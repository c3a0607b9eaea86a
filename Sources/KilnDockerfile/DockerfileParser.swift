import Foundation
import KilnCore

extension Dockerfile {
    /// Parses a Dockerfile's text. `file` names it in messages.
    /// - Throws: `DockerfileError` at the line and column of the first problem.
    package init(parsing text: String, file: String = "Dockerfile") throws(DockerfileError) {
        // A NUL byte would cut a path short where it reaches the file system; a Dockerfile is text.
        if let nul = text.utf8.firstIndex(of: 0) {
            let before = text.utf8[..<nul]
            let line = before.filter { $0 == 0x0A }.count + 1
            let column =
                before.count
                - (before.lastIndex(of: 0x0A).map { before.distance(from: before.startIndex, to: $0) + 1 } ?? 0) + 1
            throw DockerfileError(
                "a NUL byte; a Dockerfile is text and no instruction may contain one",
                at: SourceLocation(file: file, line: line, column: column))
        }
        var splitter = LineSplitter(file: file, text: text)
        let lines = try splitter.split()
        let parser = DockerfileParser(file: file, escape: splitter.directives.escape)
        self.file = file
        self.directives = splitter.directives
        var globalArgs = [Instruction]()
        var stages = [Stage]()
        for line in lines {
            let instruction = try parser.instruction(line)
            switch instruction.command {
            case .from:
                let (base, name, platform) = try parser.fromParts(line)
                if let name, stages.contains(where: { $0.name == name }) {
                    throw parser.error("a stage named '\(name)' already exists", line, at: 0)
                }
                stages.append(
                    Stage(
                        index: stages.count, name: name, base: base, platform: platform, from: instruction,
                        instructions: []))
            case .arg where stages.isEmpty:
                globalArgs.append(instruction)
            default:
                guard !stages.isEmpty else {
                    throw parser.error("expected FROM: only ARG may come before the first FROM", line, at: 0)
                }
                stages[stages.count - 1].instructions.append(instruction)
            }
        }
        guard !stages.isEmpty else {
            throw DockerfileError(
                "the file has no FROM instruction",
                at: SourceLocation(file: file, line: max(lines.last?.firstLine ?? 1, 1)))
        }
        self.globalArgs = globalArgs
        self.stages = stages
    }
}

/// Turns one logical line into an `Instruction`, checking its flags and argument shape.
struct DockerfileParser {
    let file: String
    let escape: Character

    static let keywords = [
        "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER",
        "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
    ]
    static let flagsByKeyword: [String: Set<String>] = [
        "FROM": ["platform"],
        "COPY": ["from", "chown", "chmod", "link", "parents", "exclude"],
        "ADD": ["chown", "chmod", "link", "exclude", "checksum", "keep-git-dir"],
        "RUN": ["mount", "network", "security", "device"],
        "HEALTHCHECK": ["interval", "timeout", "start-period", "start-interval", "retries"],
    ]
    static let repeatableFlags: Set<String> = ["exclude", "mount", "device"]
    static let booleanFlags: Set<String> = ["link", "parents", "keep-git-dir"]

    func error(_ message: String, _ line: LogicalLine, at offset: Int) -> DockerfileError {
        let (lineNumber, column) = line.position(of: offset)
        return DockerfileError(message, at: SourceLocation(file: file, line: lineNumber, column: column))
    }

    /// A word of the line and the offset it starts at.
    struct Word {
        var text: String
        var offset: Int
    }

    /// Whitespace-separated words from `offset` on (no quote handling, as BuildKit splits them).
    static func words(_ text: [Character], from offset: Int) -> [Word] {
        var result = [Word]()
        var index = offset
        while index < text.count {
            while index < text.count, text[index].isWhitespace { index += 1 }
            guard index < text.count else { break }
            let start = index
            while index < text.count, !text[index].isWhitespace { index += 1 }
            result.append(Word(text: String(text[start..<index]), offset: start))
        }
        return result
    }

    /// Words split on whitespace outside quotes, with quotes and escapes kept for later expansion.
    func quotedWords(_ text: [Character], from offset: Int) -> [Word] {
        var result = [Word]()
        var index = offset
        var current = ""
        var start = -1
        var quote: Character?
        while index < text.count {
            let character = text[index]
            if quote == nil, character.isWhitespace {
                if start >= 0 { result.append(Word(text: current, offset: start)) }
                current = ""
                start = -1
                index += 1
                continue
            }
            if start < 0 { start = index }
            if character == escape, quote != "'", index + 1 < text.count {
                current.append(character)
                current.append(text[index + 1])
                index += 2
                continue
            }
            if quote == nil, character == "\"" || character == "'" {
                quote = character
            } else if quote == character {
                quote = nil
            }
            current.append(character)
            index += 1
        }
        if start >= 0 { result.append(Word(text: current, offset: start)) }
        return result
    }

    struct Flags {
        var values: [String: [String]] = [:]
        var offsets: [String: Int] = [:]
        func one(_ name: String) -> String? { values[name]?.last }
        func bool(_ name: String) -> Bool { values[name]?.last.map { $0 != "false" } ?? false }
    }

    /// Leading `--name[=value]` words, checked against what the instruction accepts. Returns
    /// the flags and the offset where the arguments start.
    func flags(_ line: LogicalLine, keyword: String, from offset: Int) throws(DockerfileError) -> (Flags, Int) {
        var flags = Flags()
        var cursor = offset
        let allowed = Self.flagsByKeyword[keyword] ?? []
        for word in Self.words(line.text, from: offset) {
            guard word.text.hasPrefix("--") else { break }
            cursor = word.offset + word.text.count
            if word.text == "--" { break }
            let body = word.text.dropFirst(2)
            let name = String(body.prefix { $0 != "=" })
            let value: String? = body.contains("=") ? String(body.drop { $0 != "=" }.dropFirst()) : nil
            guard allowed.contains(name) else {
                let accepted =
                    allowed.isEmpty
                    ? "\(keyword) takes no flags"
                    : "\(keyword) accepts " + allowed.sorted().map { "--\($0)" }.joined(separator: ", ")
                throw error("unknown flag --\(name) (\(accepted))", line, at: word.offset)
            }
            if Self.booleanFlags.contains(name) {
                guard value == nil || value == "true" || value == "false" else {
                    throw error("--\(name) takes true or false, not '\(value!)'", line, at: word.offset)
                }
            } else if value == nil || value!.isEmpty {
                throw error("--\(name) needs a value: --\(name)=VALUE", line, at: word.offset)
            }
            if flags.values[name] != nil, !Self.repeatableFlags.contains(name) {
                throw error("--\(name) is given twice", line, at: word.offset)
            }
            flags.values[name, default: []].append(value ?? "true")
            flags.offsets[name] = word.offset
        }
        while cursor < line.text.count, line.text[cursor].isWhitespace { cursor += 1 }
        return (flags, cursor)
    }

    func instruction(_ line: LogicalLine) throws(DockerfileError) -> Instruction {
        let text = line.text
        let keywordEnd = text.firstIndex(where: \.isWhitespace) ?? text.count
        let keyword = String(text[..<keywordEnd]).uppercased()
        guard Self.keywords.contains(keyword) else {
            let close = Self.keywords.first { EditDistance.between($0, keyword) <= 2 }
            let hint = close.map { " (did you mean \($0)?)" } ?? ""
            throw error("unknown instruction '\(String(text[..<keywordEnd]))'\(hint)", line, at: 0)
        }
        var argsStart = keywordEnd
        while argsStart < text.count, text[argsStart].isWhitespace { argsStart += 1 }
        let (flags, start) = try self.flags(line, keyword: keyword, from: argsStart)
        var rest = String(text[start...])
        while let last = rest.last, last.isWhitespace { rest.removeLast() }
        let location = line.position(of: 0)
        let source = String(text).trimmingCharacters(in: .whitespaces)
        guard !rest.isEmpty else {
            throw error("\(keyword) needs arguments", line, at: text.count)
        }
        let command = try self.command(keyword, rest: rest, flags: flags, line: line, start: start)
        return Instruction(
            location: SourceLocation(file: file, line: location.line, column: location.column), source: source,
            command: command)
    }

    private func command(_ keyword: String, rest: String, flags: Flags, line: LogicalLine, start: Int)
        throws(DockerfileError)
        -> Command
    {
        if ["RUN", "CMD", "ENTRYPOINT", "VOLUME", "SHELL", "HEALTHCHECK"].contains(keyword), rest.hasPrefix("["),
            Self.isArrayOfOtherThanStrings(rest)
        {
            // BuildKit reads text that is a JSON array as the exec form, and refuses one that
            // holds anything but strings (it is no shell command either).
            throw error("\(keyword)'s JSON array may hold only strings", line, at: start)
        }
        switch keyword {
        case "FROM": return .from
        case "ARG":
            return .arg(
                try quotedWords(line.text, from: start).map { (word) throws(DockerfileError) in
                    let parts = word.text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    let name = String(parts[0])
                    guard Self.isVariableName(name) else {
                        throw error(
                            "'\(name)' is not a valid ARG name (letters, digits and '_')", line, at: word.offset)
                    }
                    return ArgDefinition(name, parts.count == 2 ? String(parts[1]) : nil)
                })
        case "ENV", "LABEL":
            let pairs = try keyValues(keyword, line: line, start: start, rest: rest)
            return keyword == "ENV" ? .env(pairs) : .label(pairs)
        case "COPY", "ADD":
            return try copy(keyword, rest: rest, flags: flags, line: line, start: start)
        case "RUN":
            var run = RunCommand(command: commandForm(rest))
            run.heredocs = line.heredocs
            run.mounts = flags.values["mount"] ?? []
            run.network = flags.one("network")
            run.security = flags.one("security")
            return .run(run)
        case "WORKDIR": return .workdir(rest)
        case "USER": return .user(rest)
        case "STOPSIGNAL": return .stopSignal(rest)
        case "MAINTAINER": return .maintainer(rest)
        case "EXPOSE": return .expose(Self.words(line.text, from: start).map(\.text))
        case "VOLUME":
            if case .exec(let list) = commandForm(rest) { return .volume(list) }
            return .volume(Self.words(line.text, from: start).map(\.text))
        case "ENTRYPOINT": return .entrypoint(commandForm(rest))
        case "CMD": return .cmd(commandForm(rest))
        case "SHELL":
            guard case .exec(let list) = commandForm(rest), !list.isEmpty else {
                throw error("SHELL takes a JSON array, e.g. SHELL [\"/bin/bash\", \"-c\"]", line, at: start)
            }
            return .shell(list)
        case "HEALTHCHECK":
            return .healthcheck(try healthcheck(rest: rest, flags: flags, line: line, start: start))
        case "ONBUILD":
            let trigger = Self.words(line.text, from: start)[0]
            let triggerKeyword = trigger.text.uppercased()
            guard Self.keywords.contains(triggerKeyword) else {
                throw error("unknown instruction '\(trigger.text)' after ONBUILD", line, at: trigger.offset)
            }
            guard !["ONBUILD", "FROM", "MAINTAINER"].contains(triggerKeyword) else {
                throw error("\(triggerKeyword) is not allowed as an ONBUILD trigger", line, at: trigger.offset)
            }
            return .onBuild(rest)
        default:
            throw error("unknown instruction '\(keyword)'", line, at: 0)
        }
    }

    /// Whether `text` is a JSON array that holds something other than strings.
    static func isArrayOfOtherThanStrings(_ text: String) -> Bool {
        guard let array = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [Any] else { return false }
        return array.contains { !($0 is String) }
    }

    /// Exec form when the text is a JSON array of strings, shell form otherwise (as BuildKit decides).
    func commandForm(_ rest: String) -> CommandForm {
        guard rest.hasPrefix("["), rest.hasSuffix("]"),
            let list = try? JSONDecoder().decode([String].self, from: Data(rest.utf8))
        else { return .shell(rest) }
        return .exec(list)
    }

    private func keyValues(_ keyword: String, line: LogicalLine, start: Int, rest: String) throws(DockerfileError)
        -> [KeyValue]
    {
        let words = quotedWords(line.text, from: start)
        if let first = words.first, !first.text.contains("=") {
            // The legacy form `ENV KEY value with spaces`: one pair, the value is the rest of the line.
            let value = rest.drop { !$0.isWhitespace }.drop { $0.isWhitespace }
            guard !value.isEmpty else {
                throw error(
                    "\(keyword) takes KEY=VALUE pairs (or KEY VALUE); '\(first.text)' has no value", line,
                    at: first.offset)
            }
            return [KeyValue(first.text, String(value))]
        }
        return try words.map { (word) throws(DockerfileError) in
            guard let equals = word.text.firstIndex(of: "=") else {
                throw error("\(keyword) takes KEY=VALUE pairs; '\(word.text)' has no '='", line, at: word.offset)
            }
            guard equals != word.text.startIndex else {
                throw error("\(keyword) has an empty name before '='", line, at: word.offset)
            }
            return KeyValue(String(word.text[..<equals]), String(word.text[word.text.index(after: equals)...]))
        }
    }

    private func copy(_ keyword: String, rest: String, flags: Flags, line: LogicalLine, start: Int)
        throws(DockerfileError) -> Command
    {
        var paths: [String]
        if case .exec(let list) = commandForm(rest) {
            paths = list
        } else {
            paths = Self.words(line.text, from: start).map(\.text)
        }
        let heredocNames = Set(line.heredocs.map(\.name))
        let heredocs = line.heredocs
        // Heredoc openers stand in the source list as `<<NAME`; keep them out of the file paths.
        paths = paths.filter { word in
            guard word.hasPrefix("<<") else { return true }
            var name = word.dropFirst(2)
            if name.hasPrefix("-") { name = name.dropFirst() }
            let bare = name.trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            return !heredocNames.contains(bare)
        }
        guard let destination = paths.popLast(), !paths.isEmpty || !heredocs.isEmpty else {
            throw error(
                "\(keyword) needs at least one source and a destination, e.g. \(keyword) src/ /app/", line, at: start)
        }
        var copy = CopyCommand(sources: paths, destination: destination)
        copy.heredocs = heredocs
        copy.from = flags.one("from")
        copy.chown = flags.one("chown")
        copy.chmod = flags.one("chmod")
        copy.link = flags.bool("link")
        copy.parents = flags.bool("parents")
        copy.excludes = flags.values["exclude"] ?? []
        copy.checksum = flags.one("checksum")
        copy.keepGitDir = flags.bool("keep-git-dir")
        if let chmod = copy.chmod, !chmod.contains("$"),
            UInt32(chmod, radix: 8) == nil || UInt32(chmod, radix: 8)! > 0o7777
        {
            throw error(
                "--chmod takes an octal mode such as 0755, not '\(chmod)'", line, at: flags.offsets["chmod"] ?? start)
        }
        return keyword == "COPY" ? .copy(copy) : .add(copy)
    }

    private func healthcheck(rest: String, flags: Flags, line: LogicalLine, start: Int) throws(DockerfileError)
        -> HealthcheckCommand
    {
        let words = Self.words(line.text, from: start)
        let kind = words[0].text.uppercased()
        if kind == "NONE" {
            guard words.count == 1, flags.values.isEmpty else {
                throw error("HEALTHCHECK NONE takes no other arguments or flags", line, at: words[0].offset)
            }
            return HealthcheckCommand(test: ["NONE"])
        }
        guard kind == "CMD", words.count > 1 else {
            throw error("HEALTHCHECK expects CMD followed by a command, or NONE", line, at: words[0].offset)
        }
        let commandText = String(rest.dropFirst(3).drop { $0.isWhitespace })
        var check: HealthcheckCommand
        switch commandForm(commandText) {
        case .exec(let list): check = HealthcheckCommand(test: ["CMD"] + list)
        case .shell(let text): check = HealthcheckCommand(test: ["CMD-SHELL", text])
        }
        func duration(_ name: String) throws(DockerfileError) -> Int64 {
            guard let text = flags.one(name) else { return 0 }
            let at = flags.offsets[name] ?? start
            guard let value = GoDuration.nanoseconds(text) else {
                throw error("--\(name) takes a duration such as 30s, 1m30s or 500ms, not '\(text)'", line, at: at)
            }
            guard value == 0 || value >= 1_000_000 else {
                throw error("--\(name) cannot be less than 1ms", line, at: at)
            }
            return value
        }
        check.interval = try duration("interval")
        check.timeout = try duration("timeout")
        check.startPeriod = try duration("start-period")
        check.startInterval = try duration("start-interval")
        if let retries = flags.one("retries") {
            guard let count = Int(retries), count >= 0 else {
                throw error(
                    "--retries takes a whole number of at least 0, not '\(retries)'", line,
                    at: flags.offsets["retries"] ?? start)
            }
            check.retries = count
        }
        return check
    }

    /// `image [AS name]` of a FROM line, with `--platform`.
    func fromParts(_ line: LogicalLine) throws(DockerfileError) -> (base: String, name: String?, platform: String?) {
        let keywordEnd = line.text.firstIndex(where: \.isWhitespace) ?? line.text.count
        let (flags, start) = try self.flags(line, keyword: "FROM", from: keywordEnd)
        let words = Self.words(line.text, from: start)
        switch words.count {
        case 1:
            return (words[0].text, nil, flags.one("platform"))
        case 3 where words[1].text.uppercased() == "AS":
            let name = words[2].text.lowercased()
            guard let first = name.first, first.isLetter,
                name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." })
            else {
                throw error(
                    "'\(words[2].text)' is not a valid stage name (a letter, then letters, digits, '-', '_' or '.')",
                    line, at: words[2].offset)
            }
            return (words[0].text, name, flags.one("platform"))
        default:
            let at = words.count > 1 ? words[1].offset : start
            throw error(
                "FROM takes an image and an optional 'AS name', e.g. FROM python:3.11-slim AS build", line, at: at)
        }
    }

    static func isVariableName(_ name: String) -> Bool {
        guard let first = name.first, first.isLetter || first == "_" else { return false }
        return name.allSatisfy { ($0.isLetter || $0.isNumber || $0 == "_") && $0.isASCII }
    }
}

/// Go's `time.ParseDuration`, which Docker uses for HEALTHCHECK flags: `1h2m3.5s`, `500ms`, `0`.
enum GoDuration {
    static let units: [(String, Double)] = [
        ("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9),
    ]

    static func nanoseconds(_ text: String) -> Int64? {
        if text == "0" { return 0 }
        var rest = Substring(text)
        var total = 0.0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix { !$0.isNumber && $0 != "." }
            guard let unit = units.first(where: { $0.0 == unitText }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            total += value * unit.1
        }
        guard total < 9.2e18 else { return nil }
        return Int64(total.rounded())
    }
}
