import Foundation
import KilnCore
import KilnLane

/// What a lane run tells a GitHub Actions workflow, when the runner's variables say it runs in
/// one (GitHub's "Workflow commands" and "Environment files"):
///
/// - `$GITHUB_OUTPUT`: `changed` (`true` when a pin changed), `refs` (the processors built, as a
///   JSON array) and `pins` (each changed pin, `{"ref": {"image.platforms.amd64": "repo@sha256:…"}}`).
/// - `$GITHUB_STEP_SUMMARY`: a table per processor (status, platforms, digests, seconds, why it
///   was built) and the run's time against the budget.
/// - `GITHUB_ACTIONS=true`: an `::error file=…,line=…::` annotation for each failure and stale
///   pin, on the Dockerfile or registry.yaml line (with `--json`, on stderr, so stdout stays JSON).
struct GitHubActions {
    var environment: [String: String]

    var isActive: Bool { environment["GITHUB_ACTIONS"] == "true" }

    /// Writes what the run tells the workflow. Files the runner did not give are left alone.
    func report(_ reports: [ProcessorReport], command: String, seconds: Double, budget: Double, json: Bool) throws {
        if let path = environment["GITHUB_OUTPUT"], !path.isEmpty {
            try Self.append(Self.outputs(reports), to: path)
        }
        if let path = environment["GITHUB_STEP_SUMMARY"], !path.isEmpty {
            try Self.append(
                LaneSummary.markdown(reports, command: command, seconds: seconds, budget: budget), to: path)
        }
        if isActive {
            let lines = Self.annotations(reports)
            guard !lines.isEmpty else { return }
            Output.command(lines.joined(separator: "\n") + "\n", toStandardError: json)
        }
    }

    /// One more step output, when the runner gave an output file.
    func output(_ name: String, _ value: String) throws {
        guard let path = environment["GITHUB_OUTPUT"], !path.isEmpty else { return }
        // The runner reads the file by lines, ended by LF, CR or CRLF: a value stays on its own.
        let line = value.replacingOccurrences(of: "\r\n", with: " ").replacingOccurrences(of: "\n", with: " ")
            .replacingOccurrences(of: "\r", with: " ")
        try Self.append("\(name)=\(line)\n", to: path)
    }

    /// `name=value` lines for `$GITHUB_OUTPUT` (every value is one line of text or JSON).
    static func outputs(_ reports: [ProcessorReport]) -> String {
        let changed = reports.contains { $0.pinned }
        let built = reports.filter { $0.status == .built || $0.status == .assembled }.map(\.ref)
        var pins = [String: [String: String?]]()  // a removed pin: null
        for report in reports where !report.pinChanges.isEmpty && report.pinned {
            pins[report.ref] = Dictionary(uniqueKeysWithValues: report.pinChanges.map { ($0.key, $0.new) })
        }
        return "changed=\(changed)\nrefs=\(Output.jsonText(built))\npins=\(Output.jsonText(pins))\n"
    }

    /// An `::error` line per failed processor and stale pin, at its file and line when known.
    static func annotations(_ reports: [ProcessorReport]) -> [String] {
        reports.compactMap { report in
            let title: String
            switch report.status {
            case .failed: title = "kiln: \(report.ref) failed"
            case .stale: title = "kiln: \(report.ref) has a stale pin"
            default: return nil
            }
            var properties = [String]()
            if let location = report.location {
                properties += ["file=\(property(location.file))", "line=\(location.line)"]
            }
            properties.append("title=\(property(title))")
            return "::error \(properties.joined(separator: ","))::\(data(report.message ?? title))"
        }
    }

    /// A workflow command's message: `%`, CR and LF escaped.
    static func data(_ text: String) -> String {
        text.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "\r", with: "%0D")
            .replacingOccurrences(of: "\n", with: "%0A")
    }

    /// A workflow command's property value: as `data`, and `:` and `,` too.
    static func property(_ text: String) -> String {
        data(text).replacingOccurrences(of: ":", with: "%3A").replacingOccurrences(of: ",", with: "%2C")
    }

    /// Appends to a file the runner gave (it reads it after the step).
    static func append(_ text: String, to path: String) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else {
            guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
                throw FileError("write", path: path)
            }
            return
        }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
    }
}
