import Foundation
import KilnCore
import KilnLane

/// The pull request that carries a lane's pins (`--summary FILE`): its title on the first line
/// (a `##` heading), then a table of each processor's pins, old → new digest per key, and why the
/// processor was built. A bot opens it with the file as its body and the first line as its title
/// (the runbooks' "Pin digest for {processor} @ {commit}").
enum PinSummary {
    /// The title: one processor by name, several by count, at the commit when one is known.
    static func title(_ reports: [ProcessorReport], commit: String?) -> String {
        let changed = reports.filter { $0.pinned && !$0.pinChanges.isEmpty }
        let what: String
        switch changed.count {
        case 0: what = "No pin changed"
        case 1: what = "Pin digest for \(changed[0].ref)"
        default: what = "Pin digests for \(changed.count) processors"
        }
        guard let commit, !commit.isEmpty else { return what }
        return "\(what) @ \(commit.prefix(12))"
    }

    /// The title as the file's first line: a processor's name in code, so nothing in it renders.
    static func heading(_ reports: [ProcessorReport], commit: String?) -> String {
        let changed = reports.filter { $0.pinned && !$0.pinChanges.isEmpty }
        guard changed.count == 1 else { return title(reports, commit: commit) }
        let name = OutsideText.markdownCode(changed[0].ref, inTable: false)
        guard let commit, !commit.isEmpty else { return "Pin digest for \(name)" }
        return "Pin digest for \(name) @ \(OutsideText.markdown(String(commit.prefix(12))))"
    }

    /// The whole file: title, table, and what built it.
    static func markdown(_ reports: [ProcessorReport], commit: String?, seconds: Double) -> String {
        var text = "## \(heading(reports, commit: commit))\n\n"
        let changed = reports.filter { $0.pinned && !$0.pinChanges.isEmpty }
        let problems = reports.filter { $0.status == .failed || $0.status == .stale }
        if !problems.isEmpty {
            // What this pull request does not carry comes first.
            text += "**\(problems.count) processor\(problems.count == 1 ? "" : "s") not pinned** (failed or stale):\n\n"
            for report in problems.prefix(200) {
                let why = report.message.map { $0.split(separator: "\n").first.map(String.init) ?? $0 } ?? ""
                text +=
                    "- \(OutsideText.markdownCode(report.ref, inTable: false)) \(report.status.rawValue): \(LaneSummary.cell(why))\n"
            }
            if problems.count > 200 { text += "- … and \(problems.count - 200) more\n" }
            text += "\n"
        }
        if changed.isEmpty {
            text +=
                problems.isEmpty
                ? "Every pin already named the image of its processor's current inputs.\n"
                : "No other pin changed.\n"
        } else {
            text += "| processor | pin | old | new | why |\n| --- | --- | --- | --- | --- |\n"
            for report in changed {
                for change in report.pinChanges {
                    text +=
                        "| \(OutsideText.markdownCode(report.ref)) | \(OutsideText.markdownCode(change.key)) | \(digest(change.old)) | \(change.new.map { digest($0) } ?? "(removed)") | \(LaneSummary.cell(change.new == nil ? "a platform no longer built" : reason(report, key: change.key))) |\n"
                }
            }
            let files = Set(changed.map(\.file)).sorted()
            text +=
                "\nFiles: " + files.map { OutsideText.markdownCode($0, inTable: false) }.joined(separator: ", ") + "\n"
        }
        text += String(format: "\nBuilt and pinned by kiln %@ in %.1f s.\n", KilnVersion.current, seconds)
        return text
    }

    /// Why the processor was built, for one of its pins: the platform's reason for a platform
    /// pin, every built platform's for the index pin.
    static func reason(_ report: ProcessorReport, key: String) -> String {
        let built = report.platforms.filter { $0.cache == "miss" }
        let platform = key.split(separator: ".").last.map(String.init)
        let matching = built.filter { entry in
            guard let platform, key.hasPrefix("image.platforms.") else { return true }
            let parts = entry.platform.split(separator: "/")
            let arch = parts.count > 1 ? String(parts[1]) : entry.platform
            return platform.hasPrefix(arch)
        }
        let reasons = (matching.isEmpty ? built : matching).compactMap { entry in
            entry.reason.map { "\(entry.platform): \($0)" }
        }
        return reasons.isEmpty
            ? "the pin did not name the image of the current inputs" : reasons.joined(separator: "; ")
    }

    /// `repo@sha256:…` as its digest, shortened, in code; a missing or placeholder value as is.
    static func digest(_ value: String?) -> String {
        guard let value, !value.isEmpty else { return "(none)" }
        guard let at = value.range(of: "@sha256:") else { return OutsideText.markdownCode(value) }
        let hex = value[at.upperBound...]
        return OutsideText.markdownCode("sha256:\(hex.prefix(12))…")
    }

    /// Writes the file atomically.
    static func write(_ reports: [ProcessorReport], to path: String, commit: String?, seconds: Double) throws {
        try AtomicFileWriter.write(
            Array(markdown(reports, commit: commit, seconds: seconds).utf8), to: FilePaths.absolute(path))
    }
}
