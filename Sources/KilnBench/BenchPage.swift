import Foundation
import KilnCore
import KilnLane

/// The report as one self-contained HTML page (inline SVG and CSS, no network): a bar per
/// scenario and tool on a log scale with the budget line, then per scenario a stacked bar per
/// processor by phase. A short script at the end records what the browser laid out
/// (`data-rendered` on `<body>`), so a headless browser can check the page drew.
package enum BenchPage {
    static let colors = ["kiln": "#2f6fdf", "buildah": "#8a8f98"]
    static let phaseColors = ["#7b61ff", "#00a3a3", "#e8833a", "#2f6fdf", "#3aa655", "#c94f7c"]

    package static func render(_ report: BenchReport) -> String {
        var page = """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>kiln bench: \(escape(report.root))</title>
            <style>
            body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1000px; color: #1d2330; padding: 0 1em; }
            h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { margin-top: 2em; font-size: 1.2em; } h3 { font-size: 1em; margin: 1.5em 0 .3em; }
            .meta { color: #5a6372; } svg text { font: 12px system-ui, sans-serif; fill: #1d2330; } svg .axis { fill: #5a6372; }
            .verdicts li.over { color: #b3261e; } table { border-collapse: collapse; margin-top: 1em; }
            td, th { padding: .25em .7em; border-bottom: 1px solid #e3e6eb; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
            .legend span { display: inline-block; margin-right: 1em; } .legend i { display: inline-block; width: .9em; height: .9em; margin-right: .3em; vertical-align: -.1em; }
            </style>
            </head>
            <body>
            <h1>kiln bench</h1>
            <p class="meta">\(escape(report.root)) · \(report.processors) processors · \(escape(report.platforms.joined(separator: ", "))) · budget \(Duration.words(report.budget)) · \(escape(report.registry)) · kiln \(escape(report.kilnVersion))</p>
            <h2>The lane in each scenario</h2>

            """
        page += scenarioChart(report)
        page += "<ul class=\"verdicts\">\n"
        let over = Set(report.scenarios.filter { $0.tool == "kiln" && $0.seconds > report.budget }.map(\.label))
        for verdict in report.judged {
            let isOver = over.contains { verdict.hasPrefix($0) }
            page += "<li\(isOver ? " class=\"over\"" : "")>\(escape(verdict))</li>\n"
        }
        page += "</ul>\n" + table(report)
        page += "<h2>Where each processor's time went (kiln)</h2>\n<p class=\"legend\">"
        for (index, name) in ProcessorReport.Phases.names.enumerated() {
            page += "<span><i style=\"background:\(phaseColors[index])\"></i>\(escape(name))</span>"
        }
        page += "</p>\n"
        for scenario in report.scenarios where scenario.tool == "kiln" && !scenario.processors.isEmpty {
            page += "<h3>\(escape(scenario.label)): \(Duration.words(scenario.seconds))</h3>\n"
            page += phaseChart(scenario)
        }
        page += """
            <script>
            (function () {
              function shown(e) { var r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; }
              var bars = [].slice.call(document.querySelectorAll("#scenarios .bar")).filter(shown);
              var names = {};
              bars.forEach(function (b) { names[b.getAttribute("data-scenario")] = true; });
              var line = document.querySelector("#scenarios .budget");
              var box = line ? line.getBoundingClientRect() : null;
              document.body.setAttribute("data-rendered", JSON.stringify({
                bars: bars.length, scenarios: Object.keys(names).length,
                budget: !!(box && box.height > 0),
                phases: [].slice.call(document.querySelectorAll(".phases rect")).filter(shown).length
              }));
            })();
            </script>
            </body>
            </html>

            """
        return page
    }

    /// Bars on a log scale (CI lanes range from a fraction of a second to many minutes), one row
    /// per scenario, a bar per tool, and the budget as a dashed vertical line.
    static func scenarioChart(_ report: BenchReport) -> String {
        var labels = [String]()
        for scenario in report.scenarios where !labels.contains(scenario.label) { labels.append(scenario.label) }
        let tools = ["kiln", "buildah"].filter { tool in report.scenarios.contains { $0.tool == tool } }
        let (left, width, bar, gap, top) = (300.0, 600.0, 14.0, 12.0, 24.0)
        let row = Double(tools.count) * (bar + 2) + gap
        let height = top + Double(labels.count) * row + 30
        let longest = report.scenarios.map(\.seconds).max() ?? 1
        let low = pow(10, floor(log10(max(0.001, min(0.1, (report.scenarios.map(\.seconds).min() ?? 0.1) / 2)))))
        let high = max(report.budget, longest) * 1.6
        func x(_ seconds: Double) -> Double {
            left + width * (log10(max(seconds, low)) - log10(low)) / (log10(high) - log10(low))
        }
        var svg =
            "<svg id=\"scenarios\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + width + 60))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"lane seconds per scenario\">\n"
        for tick in [0.001, 0.01, 0.1, 1, 10, 60, 600, 3600, 36000] where tick >= low && tick <= high {
            let position = x(tick)
            svg +=
                "<line x1=\"\(f(position))\" x2=\"\(f(position))\" y1=\"\(f(top - 6))\" y2=\"\(f(height - 24))\" stroke=\"#e3e6eb\"/>"
            svg +=
                "<text class=\"axis\" x=\"\(f(position))\" y=\"\(f(height - 8))\" text-anchor=\"middle\">\(Duration.short(tick))</text>\n"
        }
        for (index, label) in labels.enumerated() {
            let y = top + Double(index) * row
            svg +=
                "<text x=\"\(f(left - 8))\" y=\"\(f(y + bar))\" text-anchor=\"end\">\(escape(clipped(label)))<title>\(escape(label))</title></text>\n"
            for (slot, tool) in tools.enumerated() {
                guard let scenario = report.scenarios.first(where: { $0.label == label && $0.tool == tool }) else {
                    continue
                }
                let barY = y + Double(slot) * (bar + 2)
                let end = max(x(scenario.seconds), left + 2)
                svg +=
                    "<rect class=\"bar\" data-scenario=\"\(escape(label))\" data-tool=\"\(tool)\" x=\"\(f(left))\" y=\"\(f(barY))\" width=\"\(f(end - left))\" height=\"\(f(bar))\" fill=\"\(colors[tool] ?? "#555")\"><title>\(tool) · \(escape(label)): \(Duration.words(scenario.seconds))</title></rect>"
                svg +=
                    "<text x=\"\(f(end + 4))\" y=\"\(f(barY + bar - 3))\">\(tool) \(Duration.words(scenario.seconds))</text>\n"
            }
        }
        let budget = x(report.budget)
        svg +=
            "<line class=\"budget\" x1=\"\(f(budget))\" x2=\"\(f(budget))\" y1=\"\(f(top - 14))\" y2=\"\(f(height - 24))\" stroke=\"#d33\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>"
        svg +=
            "<text x=\"\(f(budget + 4))\" y=\"\(f(top - 12))\" fill=\"#d33\" style=\"fill:#d33\">budget \(Duration.words(report.budget))</text>\n"
        return svg + "</svg>\n"
    }

    /// A stacked bar per processor (the 40 slowest), by phase, on a linear scale.
    static func phaseChart(_ scenario: ScenarioResult) -> String {
        let rows = scenario.processors.sorted { $0.seconds > $1.seconds }.prefix(40)
        let (left, width, bar) = (300.0, 600.0, 12.0)
        let longest = max(rows.map { $0.phases?.values.reduce(0, +) ?? $0.seconds }.max() ?? 0, 0.001)
        let height = Double(rows.count) * (bar + 4) + 8
        var svg =
            "<svg class=\"phases\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + width + 70))\" height=\"\(Int(height))\">\n"
        for (index, timing) in rows.enumerated() {
            let y = 4 + Double(index) * (bar + 4)
            svg +=
                "<text x=\"\(f(left - 8))\" y=\"\(f(y + bar - 2))\" text-anchor=\"end\">\(escape(clipped(timing.ref)))</text>"
            var x = left
            for (phase, seconds) in zip(ProcessorReport.Phases.names, timing.phases?.values ?? []) where seconds > 0 {
                let span = width * seconds / longest
                let color = phaseColors[ProcessorReport.Phases.names.firstIndex(of: phase) ?? 0]
                svg +=
                    "<rect x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(max(span, 0.5)))\" height=\"\(f(bar))\" fill=\"\(color)\"><title>\(escape(timing.ref)) \(phase): \(Duration.words(seconds))</title></rect>"
                x += span
            }
            svg +=
                "<text x=\"\(f(x + 4))\" y=\"\(f(y + bar - 2))\">\(Duration.words(timing.seconds)) \(escape(timing.status))</text>\n"
        }
        return svg + "</svg>\n"
    }

    static func table(_ report: BenchReport) -> String {
        var html =
            "<table><thead><tr><th>scenario</th><th>tool</th><th>seconds</th><th>built</th><th>failed</th><th>fits</th><th>dominated by</th></tr></thead><tbody>\n"
        for scenario in report.scenarios {
            let dominant = scenario.dominant.map { "\($0.phase) \(Int(($0.share * 100).rounded()))%" } ?? ""
            html +=
                "<tr><td>\(escape(scenario.label))</td><td>\(scenario.tool)</td><td class=\"n\">\(String(format: "%.2f", scenario.seconds))</td><td class=\"n\">\(scenario.built)</td><td class=\"n\">\(scenario.failed)</td><td>\(scenario.seconds <= report.budget ? "yes" : "no")</td><td>\(dominant)</td></tr>\n"
        }
        return html + "</tbody></table>\n"
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    /// A label short enough for the chart's left margin (the whole one is its tooltip).
    static func clipped(_ text: String) -> String {
        text.count <= 44 ? text : String(text.prefix(20)) + "…" + String(text.suffix(23))
    }

    static func escape(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }

    /// Writes `index.html` (and `bench.json`) into `directory`; returns the page's path.
    package static func write(_ report: BenchReport, to directory: String, json: [UInt8]) throws -> String {
        try FilePaths.makeDirectories(directory)
        let page = directory + "/index.html"
        try AtomicFileWriter.write(Array(render(report).utf8), to: page)
        try AtomicFileWriter.write(json, to: directory + "/bench.json")
        return page
    }
}

extension Duration {
    /// Axis ticks: `0.1s`, `1s`, `1m`, `10m`, `1h`.
    static func short(_ seconds: Double) -> String {
        if seconds >= 3600 { return "\(Int(seconds / 3600))h" }
        if seconds >= 60 { return "\(Int(seconds / 60))m" }
        return seconds >= 1 ? "\(Int(seconds))s" : "\(seconds)s"
    }
}
