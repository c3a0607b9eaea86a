import Foundation

/// The lane at 24, 240 and 2,400 processors (issue 16): `kiln bench --synthetic N` (a generated
/// monorepo with shared libraries, several versions per processor and `.dockerignore`, both
/// platforms, `--push --pin` into a throwaway loopback registry), `--runs` times per size, and
/// the median of each scenario's wall time and peak memory against the targets.
///   kiln-bench scale [--sizes 24,240,2400] [--runs 3] [--sample 1]
enum ScaleBenchmark {
    struct Row {
        var seconds = [Double]()
        var memoryMiB = [Double]()
    }

    /// Issue 16's targets, by processors and scenario: seconds.
    static let targets: [Int: [String: Double]] = [
        240: ["nothing changed": 2],
        2400: ["nothing changed": 10, "one processor changed": 3],
    ]

    static func run() throws {
        let sizes = (option("--sizes") ?? "24,240,2400").split(separator: ",").compactMap { Int($0) }
        let sample = option("--sample") ?? "1"
        for size in sizes {
            var rows = [String: Row]()
            var order = [String]()
            for run in 0..<runs {
                let directory = work + "/scale-\(size)-\(run)"
                try? FileManager.default.removeItem(atPath: directory)
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let result = shell(
                    "cd '\(directory)' && '\(kiln)' bench --synthetic \(size) --sample \(sample) --json 2>/dev/null")
                try? FileManager.default.removeItem(atPath: directory)
                guard result.status == 0,
                    let object = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any],
                    let scenarios = object["scenarios"] as? [[String: Any]]
                else {
                    print("scale \(size): kiln bench failed (status \(result.status))")
                    return
                }
                // A label names its subject (the processor or library edited), the same in every run.
                var seen = [String: Int]()
                for scenario in scenarios {
                    let label = scenario["label"] as? String ?? "?"
                    seen[label, default: 0] += 1
                    let name = seen[label]! == 1 ? label : "\(label) #\(seen[label]!)"
                    if rows[name] == nil { order.append(name) }
                    rows[name, default: Row()].seconds.append(scenario["seconds"] as? Double ?? .nan)
                    rows[name, default: Row()].memoryMiB.append(scenario["peakMemoryMiB"] as? Double ?? .nan)
                }
            }
            print("\n\(size) processors × 2 platforms, --push --pin, \(runs) run(s): median wall s (runs), peak MiB")
            print("| scenario | wall s | runs | peak MiB | target |")
            print("| --- | ---: | --- | ---: | --- |")
            for name in order {
                let row = rows[name]!
                let wall = median(row.seconds)
                let base = name.components(separatedBy: ":")[0]
                var target = targets[size]?[base].map { wall < $0 ? "< \(Int($0)) s ✓" : "< \(Int($0)) s ✗" } ?? ""
                // Issue 16's memory ceiling holds for every scenario.
                if median(row.memoryMiB) >= 200 { target += " memory ≥ 200 MiB ✗" }
                print(
                    "| \(name) | \(String(format: "%.2f", wall)) | \(row.seconds.map { String(format: "%.2f", $0) }.joined(separator: " ")) | \(String(format: "%.0f", median(row.memoryMiB))) | \(target) |"
                )
            }
        }
    }
}
