import ArgumentParser
import Foundation
import KilnCore
import KilnLane
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The lane's live progress on stderr: on a terminal, one line per processor under way redrawn
/// in place, and each finished processor's line printed once above them (so a lane of thousands
/// redraws only what is under way); elsewhere (CI logs), one plain line per step.
final class LaneProgress: Sendable {
    private struct State {
        /// Processors under way, in the order they started.
        var order: [String] = []
        var lines: [String: String] = [:]
        /// Lines of the live region on screen now.
        var drawn = 0
        /// In GitHub Actions: each processor's buildah output not shown yet, and when its first
        /// line came.
        var folded: [String: (lines: [String], since: Double)] = [:]
    }
    private let state = Mutex(State())
    private let live: Bool
    /// `--json`: every step as a JSON event object on stderr (stdout keeps the reports).
    private let json: Bool
    /// In GitHub Actions, buildah's output is folded: each processor's lines go out together in
    /// a `::group::` (every 200 lines or 20 s, and when it finishes), never interleaved.
    private let folds: Bool

    /// `--quiet`: nothing at all.
    private let quiet: Bool

    init(json: Bool = false, quiet: Bool = false, mode: OutputOptions.Progress = .auto) {
        self.json = json
        // With --json too: the reports still go to stdout, the events (progress) do not.
        self.quiet = quiet
        switch mode {
        case .auto:
            live =
                !json && isatty(STDERR_FILENO) == 1 && Environment.current["TERM"] != "dumb"
                && Environment.current["CI"] == nil
        case .tty: live = !json
        case .plain: live = false
        }
        folds = !json && !live && GitHubActions(environment: Environment.current).isActive
    }

    /// The terminal's width in columns: stderr's window size, else `$COLUMNS`, else 80.
    static var terminalWidth: Int {
        var size = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        if let columns = Environment.current["COLUMNS"].flatMap(Int.init), columns > 0 { return columns }
        return 80
    }

    /// The terminal's height in rows: stderr's window size, else `$LINES`, else 24.
    static var terminalHeight: Int {
        var size = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0 { return Int(size.ws_row) }
        if let lines = Environment.current["LINES"].flatMap(Int.init), lines > 0 { return lines }
        return 24
    }

    /// A live line cut to fit `width` columns (one short of it, so no terminal wraps it and the
    /// redraw's cursor moves stay right). Below 40 columns only the name and the state's first
    /// word are kept.
    static func fitted(_ name: String, _ state: String, width: Int) -> String {
        let room = max(width - 1, 1)
        var text = "\(name)  \(state)"
        if width < 40 { text = "\(name) \(state.prefix { $0 != " " && $0 != ":" && $0 != "," })" }
        guard text.count > room else { return text }
        return room > 1 ? String(text.prefix(room - 1)) + "…" : String(text.prefix(room))
    }

    /// The run's first line: where, and how many processors at once.
    func begin(root: String, jobs: Int) {
        if quiet { return }
        if json {
            struct Event: Encodable {
                var event = "lane"
                var root: String
                var jobs: Int
            }
            Output.errorJSON(Output.jsonText(Event(root: root, jobs: jobs)))
        } else {
            Output.errorLine("kiln: lane in \(root), \(jobs) processor\(jobs == 1 ? "" : "s") at once")
        }
    }

    func observe(_ event: LaneEvent) {
        if quiet { return }
        let ref = event.ref.description
        if json {
            Self.emit(event)
            return
        }
        let text: String
        switch event.kind {
        case .started: text = "started"
        case .hashing: text = "hashing inputs"
        case .building(let platform): text = "building \(platform)"
        case .pushing(let bytes): text = "pushed \(Self.bytes(bytes))"
        case .output(let line):
            // buildah's output, as plain prefixed lines; the live display keeps to states.
            if folds {
                fold(line, of: ref)
            } else if !live {
                Output.errorLine("\(ref) | \(line)")
            }
            return
        case .warning(let message):
            Output.errorLine("warning: \(ref): \(message)")
            return
        case .finished(let report):
            text = Self.summary(report)
            if folds { state.withLock { Self.flush(ref, &$0) } }
        }
        let finished = if case .finished = event.kind { true } else { false }
        state.withLock { state in
            guard live else {
                Output.errorLine("\(ref): \(text)")
                return
            }
            let (width, height) = (Self.terminalWidth, Self.terminalHeight)
            // Back to the top of the live region, and clear it.
            var output = state.drawn > 0 ? "\u{1B}[\(state.drawn)A\u{1B}[J" : ""
            if finished {
                state.order.removeAll { $0 == ref }
                state.lines[ref] = nil
                output += "\u{1B}[2K\(Self.fitted(ref, text, width: width))\n"
            } else {
                if state.lines[ref] == nil { state.order.append(ref) }
                state.lines[ref] = text
            }
            // No taller than the terminal, or the cursor could not climb back to its top.
            let room = max(height - 2, 1)
            let shown = state.order.count > room ? state.order.prefix(room - 1) : state.order[...]
            for name in shown {
                output += "\u{1B}[2K\(Self.fitted(name, state.lines[name]!, width: width))\n"
            }
            if shown.count < state.order.count {
                output +=
                    "\u{1B}[2K\(Self.fitted("…", "and \(state.order.count - shown.count) more under way", width: width))\n"
            }
            state.drawn = shown.count + (shown.count < state.order.count ? 1 : 0)
            Output.standardError(output)
        }
    }

    private func fold(_ line: String, of ref: String) {
        let now = Elapsed.now()
        state.withLock { state in
            var pending = state.folded[ref] ?? ([], now)
            pending.lines.append(line)
            state.folded[ref] = pending
            if pending.lines.count >= 200 || now - pending.since >= 20 { Self.flush(ref, &state) }
        }
    }

    /// Writes a processor's folded output as one group (under the state's lock, so groups never
    /// interleave).
    private static func flush(_ ref: String, _ state: inout State) {
        guard let pending = state.folded.removeValue(forKey: ref), !pending.lines.isEmpty else { return }
        // What a step prints is not the workflow's to obey: commands stay off inside the group.
        let token = "kiln-" + String(UInt64.random(in: .min ... .max), radix: 16)
        let body = pending.lines.joined(separator: "\n")
        let title = GitHubActions.data("\(ref): RUN output")
        Output.command("::group::\(title)\n::stop-commands::\(token)\n\(body)\n::\(token)::\n::endgroup::\n")
    }

    /// One JSON event line: `{"event": "started"|"hashing"|"building"|"pushed"|"output"|"finished", "ref": …, …}`.
    static func emit(_ event: LaneEvent) {
        struct Event: Encodable {
            var event: String
            var ref: String
            var platform: String?
            var line: String?
            var bytes: Int64?
            var status: String?
        }
        var value = Event(event: "", ref: event.ref.description)
        switch event.kind {
        case .started: value.event = "started"
        case .hashing: value.event = "hashing"
        case .building(let platform):
            value.event = "building"
            value.platform = platform.description
        case .pushing(let bytes):
            value.event = "pushed"
            value.bytes = bytes
        case .output(let line):
            value.event = "output"
            value.line = line
        case .warning(let message):
            value.event = "warning"
            value.line = message
        case .finished(let report):
            value.event = "finished"
            value.status = report.status.rawValue
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let bytes = try? encoder.encode(value) else { return }
        Output.errorJSON(String(decoding: bytes, as: UTF8.self))
    }

    static func summary(_ report: ProcessorReport) -> String {
        var text = report.status.rawValue
        let built = report.platforms.filter { $0.cache == "miss" }.map(\.platform)
        if !built.isEmpty, report.status == .built { text += " " + built.joined(separator: ", ") }
        if report.pushedBytes > 0 { text += ", pushed \(bytes(report.pushedBytes))" }
        if report.pinned { text += ", pinned" }
        if report.partial { text += ", index left to kiln assemble" }
        if report.status == .skipped || report.status == .failed, let message = report.message {
            text += ": " + message
        }
        text += String(format: " (%.2fs)", report.seconds)
        return text
    }

    static func bytes(_ count: Int64) -> String {
        count < 1 << 20
            ? String(format: "%.1f KiB", Double(count) / 1024) : String(format: "%.1f MiB", Double(count) / 1_048_576)
    }
}

/// Prints lane reports: JSON lines (one object per processor) or a readable block per processor.
enum LaneOutput {
    static func render(_ reports: [ProcessorReport], json: Bool, verbose: Bool = true) {
        for report in reports {
            if json {
                Output.json(report)
                continue
            }
            var head = "\(report.ref)  \(report.status.rawValue)"
            if let repository = report.repository { head += "  \(repository)" }
            Output.line(head)
            for platform in report.platforms {
                var line = "  \(platform.platform)"
                if let digest = platform.digest { line += "  \(digest)" }
                if let cache = platform.cache { line += "  [cache: \(cache)]" }
                if platform.cache == "miss", let reason = platform.reason, verbose { line += "  because \(reason)" }
                Output.line(line)
            }
            if let index = report.index { Output.line("  index  \(index)") }
            if let step = report.firstStep { Output.line("  \(step)") }
            if verbose {
                for step in report.runSteps {
                    let took = step.seconds.map { String(format: " (%.1f s)", $0) } ?? ""
                    Output.line("  RUN line \(step.line) [\(step.platform)]: \(step.reason)\(took)")
                }
            }
            for advice in report.advice { Output.line("  advice: \(advice)") }
            for pin in report.pins { Output.line("  pin  \(pin)") }
            if let message = report.message { Output.line("  \(message)") }
        }
    }

    /// The exit status for a run: the first failure's category, else `failure` when a report has
    /// one of `failing` statuses, else success.
    static func exitCode(_ reports: [ProcessorReport], failing: Set<ProcessorReport.Status> = []) -> ExitCode {
        if let failed = reports.first(where: { $0.status == .failed }) {
            let category = ErrorCategory.allCases.first { $0.name == failed.category } ?? .internal
            return ExitCode(category.rawValue)
        }
        return reports.contains { failing.contains($0.status) } ? ExitCode(1) : .success
    }
}
