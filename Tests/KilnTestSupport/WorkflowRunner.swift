/// Reads a step's log the way the GitHub Actions runner does, to find which workflow commands a
/// program's output would have given: lines end at LF, CR or CRLF; a line is a command when,
/// after leading blanks, it starts `::NAME` (followed by a space or `::`), or when it holds the
/// older `##[NAME` anywhere; `::stop-commands::TOKEN` turns commands off until a line `::TOKEN::`.
public struct WorkflowRunner {
    /// A command the runner would have carried out: its name and the line it came from.
    public struct Command: Equatable, CustomStringConvertible {
        public var name: String
        public var line: String
        public var description: String { "\(name): \(line)" }
    }

    public init() {}

    /// The commands `log` gives, in order.
    public func commands(in log: String) -> [Command] {
        var result = [Command]()
        var stopToken: String?
        for line in Self.lines(log) {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if let token = stopToken {
                if trimmed == "::\(token)::" { stopToken = nil }
                continue
            }
            if trimmed.hasPrefix("::") {
                let rest = trimmed.dropFirst(2)
                let name = String(rest.prefix { $0 != " " && $0 != ":" })
                let after = rest.dropFirst(name.count)
                guard !name.isEmpty, after.hasPrefix("::") || after.hasPrefix(" ") else { continue }
                if name == "stop-commands" {
                    let token = after.drop { $0 == ":" }
                    stopToken = token.isEmpty ? nil : String(token)
                }
                result.append(Command(name: name, line: String(line)))
            } else if let marker = line.range(of: "##[") {
                let name = String(line[marker.upperBound...].prefix { $0 != " " && $0 != "]" && $0 != ";" })
                if !name.isEmpty { result.append(Command(name: name, line: String(line))) }
            }
        }
        return result
    }

    /// `log` split as a .NET `ReadLine` splits it.
    static func lines(_ log: String) -> [Substring] {
        var lines = [Substring]()
        var start = log.startIndex
        var index = log.startIndex
        while index < log.endIndex {
            let character = log[index]
            if character == "\n" || character == "\r" || character == "\r\n" {
                lines.append(log[start..<index])
                start = log.index(after: index)
            }
            index = log.index(after: index)
        }
        if start < log.endIndex { lines.append(log[start...]) }
        return lines
    }
}
