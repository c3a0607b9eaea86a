import KilnBench

/// `kiln bench`'s terminal table: a row per scenario, kiln's seconds beside the peer's, whether
/// it fits the budget and what dominates; then the verdicts.
enum BenchTable {
    static func print(_ report: BenchReport) {
        let peer = report.scenarios.first { $0.tool != "kiln" }?.tool
        Output.line(
            "kiln bench: \(report.processors) processors, \(report.platforms.joined(separator: " + ")), budget \(Duration.words(report.budget))"
        )
        Output.line("registry: \(report.registry)")
        var rows = [["scenario", "kiln", peer ?? "", "built", "fits", "dominated by", "peak MiB"]]
        for scenario in report.scenarios where scenario.tool == "kiln" {
            let other = report.scenarios.first { $0.tool == peer && $0.label == scenario.label }
            let dominant = scenario.dominant.map { "\($0.phase) \(Int(($0.share * 100).rounded()))%" } ?? "-"
            rows.append([
                scenario.label, Duration.words(scenario.seconds), other.map { Duration.words($0.seconds) } ?? "",
                scenario.failed > 0 ? "\(scenario.built) (\(scenario.failed) failed)" : "\(scenario.built)",
                scenario.seconds <= report.budget ? "yes" : "NO", dominant,
                scenario.peakMemoryMiB.map { String(Int($0.rounded())) } ?? "",
            ])
        }
        if peer == nil { rows = rows.map { row in row.enumerated().filter { $0.offset != 2 }.map(\.element) } }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            let cells = row.enumerated().map { column, text in
                let pad = String(repeating: " ", count: widths[column] - text.count)
                return column == 0 || column >= row.count - 2 ? text + pad : pad + text
            }
            Output.line(cells.joined(separator: "  ").trimmingTrailingSpaces())
        }
        for scenario in report.scenarios where scenario.failure != nil {
            Output.line("\(scenario.tool) \(scenario.label): \(scenario.failure!.split(separator: "\n").first ?? "")")
        }
        for verdict in report.judged { Output.line(verdict) }
    }
}

extension String {
    fileprivate func trimmingTrailingSpaces() -> String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}
