import Foundation
import KilnCore

/// The GitHub Actions step summary of a lane run, written from the outcomes (the CLI writes it to
/// `$GITHUB_STEP_SUMMARY`).
package enum LaneSummary {
    /// GitHub refuses a step summary over 1 MiB: the table stops short of it.
    package static let limit = 900 << 10

    /// The step summary, from the outcomes: a verdict (✅ only when every processor succeeded
    /// and the run fit its budget), the failures and stale pins first with their reasons and
    /// places, then a row per processor that did something (hits are counted, not listed).
    package static func markdown(_ reports: [ProcessorReport], command: String, seconds: Double, budget: Double)
        -> String
    {
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
                let place = OutsideText.markdownCode(report.location.map { "\($0.file):\($0.line)" } ?? report.file)
                let why = report.message.map { $0.split(separator: "\n").first.map(String.init) ?? $0 } ?? ""
                text +=
                    "| \(OutsideText.markdownCode(report.ref)) | \(report.status.rawValue) | \(place) | \(Self.cell(why)) |\n"
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
            if text.utf8.count + row.utf8.count > limit {
                text += "\n… and \(listed.count - position) more (every processor is in the `--json` output).\n"
                break
            }
            text += row
        }
        if quiet > 0 { text += "\n\(quiet) more processor\(quiet == 1 ? "" : "s") unchanged (hit, ok or disabled).\n" }
        return text + "\n"
    }

    /// One processor's row of the summary table.
    package static func row(_ report: ProcessorReport) -> String {
        let platforms = Self.cell(report.platforms.map(\.platform).joined(separator: ", "))
        let digests = report.platforms.compactMap { platform in
            platform.digest.map { "\(Self.cell(platform.platform)) \(OutsideText.markdownCode(Self.short($0)))" }
        }.joined(separator: "<br>")
        var why = report.platforms.compactMap { platform in
            platform.reason.map { "\(platform.platform): \($0)" }
        }
        if report.status == .failed || report.status == .stale || report.status == .skipped,
            let message = report.message
        {
            why.append(message.split(separator: "\n").first.map(String.init) ?? message)
        }
        return "| \(OutsideText.markdownCode(report.ref)) | \(report.status.rawValue) | \(platforms) | \(digests) | "
            + String(format: "%.1f", report.seconds) + " | \(why.map(Self.cell).joined(separator: "<br>")) |\n"
    }

    package static func short(_ digest: String) -> String {
        digest.hasPrefix("sha256:") ? String(digest.prefix(7 + 12)) + "…" : digest
    }

    /// Outside text (a message, a reason, names from the repository) in a Markdown table cell:
    /// shown as written, one line, no markup, links or mentions (`OutsideText.markdown`).
    package static func cell(_ text: String) -> String { OutsideText.markdown(text) }

    /// `42.1 s`, `10 min`, `1 min 30 s`.
    package static func duration(_ seconds: Double) -> String {
        if seconds < 60 { return String(format: "%.1f s", seconds) }
        let whole = Int(seconds.rounded())
        return whole % 60 == 0 ? "\(whole / 60) min" : "\(whole / 60) min \(whole % 60) s"
    }
}
