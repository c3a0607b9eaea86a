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
            try Self.append(Self.summary(reports, command: command, seconds: seconds, budget: budget), to: path)
        }
        if isActive {
            let lines = Self.annotations(reports)
            guard !lines.isEmpty else { return }
            let text = lines.joined(separator: "\n") + "\n"
            if json {
                FileHandle.standardError.write(Data(text.utf8))
            } else {
                FileHandle.standardOutput.write(Data(text.utf8))
            }
        }
    }

    /// One more step output, when the runner gave an output file.
    func output(_ name: String, _ value: String) throws {
        guard let path = environment["GITHUB_OUTPUT"], !path.isEmpty else { return }
        try Self.append("\(name)=\(value.replacingOccurrences(of: "\n", with: " "))\n", to: path)
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

    /// GitHub refuses a step summary over 1 MiB: the table stops short of it.
    static let summaryLimit = 900 << 10

    /// The step summary, from the outcomes: a verdict (✅ only when every processor succeeded
    /// and the run fit its budget), the failures and stale pins first with their reasons and
    /// places, then a row per processor that did something (hits are counted, not listed).
    static func summary(_ reports: [ProcessorReport], command: String, seconds: Double, budget: Double) -> String {
        var counts = [String: Int]()
        for report in reports { counts[report.status.rawValue, default: 0] += 1 }
        let tally = counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        let problems = reports.filter { $0.status == .failed || $0.status == .stale }
        let fits = seconds <= budget
        var text = "### kiln \(command): \(tally)\n\n"
        let time =
            "**\(Self.duration(seconds))** of its \(Self.duration(budget)) budget"
            + (fits ? "" : ", over by \(Self.duration(seconds - budget))")
        if problems.isEmpty {
            text += "\(fits ? "✅" : "❌") Every processor succeeded; the lane took \(time).\n\n"
        } else {
            let failed = problems.filter { $0.status == .failed }.count
            let stale = problems.count - failed
            let parts = [failed > 0 ? "\(failed) failed" : nil, stale > 0 ? "\(stale) stale" : nil].compactMap { $0 }
            text += "❌ \(parts.joined(separator: ", ")); the lane took \(time).\n\n"
            text += "| processor | status | where | why |\n| --- | --- | --- | --- |\n"
            for report in problems {
                let place = report.location.map { "`\($0.file):\($0.line)`" } ?? "`\(report.file)`"
                let why = report.message.map { $0.split(separator: "\n").first.map(String.init) ?? $0 } ?? ""
                text += "| `\(report.ref)` | \(report.status.rawValue) | \(place) | \(Self.cell(why)) |\n"
            }
            text += "\n"
        }
        let listed = reports.filter { $0.status != .hit && $0.status != .ok && $0.status != .disabled }
        let quiet = reports.count - listed.count
        if !listed.isEmpty {
            text +=
                "| processor | status | platforms | digests | seconds | why |\n| --- | --- | --- | --- | ---: | --- |\n"
        }
        for (position, report) in listed.enumerated() {
            let row = Self.row(report)
            if text.utf8.count + row.utf8.count > summaryLimit {
                text += "\n… and \(listed.count - position) more (every processor is in the `--json` output).\n"
                break
            }
            text += row
        }
        if quiet > 0 { text += "\n\(quiet) more processor\(quiet == 1 ? "" : "s") unchanged (hit, ok or disabled).\n" }
        return text + "\n"
    }

    /// One processor's row of the summary table.
    static func row(_ report: ProcessorReport) -> String {
        let platforms = report.platforms.map(\.platform).joined(separator: ", ")
        let digests = report.platforms.compactMap { platform in
            platform.digest.map { "\(platform.platform) `\(Self.short($0))`" }
        }.joined(separator: "<br>")
        var why = report.platforms.compactMap { platform in
            platform.reason.map { "\(platform.platform): \($0)" }
        }
        if report.status == .failed || report.status == .stale || report.status == .skipped,
            let message = report.message
        {
            why.append(message.split(separator: "\n").first.map(String.init) ?? message)
        }
        return "| `\(report.ref)` | \(report.status.rawValue) | \(platforms) | \(digests) | "
            + String(format: "%.1f", report.seconds) + " | \(Self.cell(why.joined(separator: "<br>"))) |\n"
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

    static func short(_ digest: String) -> String {
        digest.hasPrefix("sha256:") ? String(digest.prefix(7 + 12)) + "…" : digest
    }

    static func cell(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }

    /// `42.1 s`, `10 min`, `1 min 30 s`.
    static func duration(_ seconds: Double) -> String {
        if seconds < 60 { return String(format: "%.1f s", seconds) }
        let whole = Int(seconds.rounded())
        return whole % 60 == 0 ? "\(whole / 60) min" : "\(whole / 60) min \(whole % 60) s"
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
