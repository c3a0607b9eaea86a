import KilnLane

/// What `kiln bench` measured: every scenario of the lane (and of its peer), against a budget.
package struct BenchReport: Codable, Sendable {
    /// The repository measured (its scratch copy was built, never the repository itself).
    package var root: String
    package var processors: Int
    package var platforms: [String]
    /// Seconds the lane may take (the runbooks' 10 minutes by default).
    package var budget: Double
    /// `docker-registry on 127.0.0.1:PORT (throwaway)` or the `--registry` host and prefix.
    package var registry: String
    package var kilnVersion: String
    package var scenarios: [ScenarioResult] = []
    /// `judged`, once every scenario ran.
    package var verdicts: [String] = []

    package init(
        root: String, processors: Int, platforms: [String], budget: Double, registry: String, kilnVersion: String
    ) {
        self.root = root
        self.processors = processors
        self.platforms = platforms
        self.budget = budget
        self.registry = registry
        self.kilnVersion = kilnVersion
    }
}

/// One run of the lane (or of the peer) in one scenario.
package struct ScenarioResult: Codable, Sendable {
    package enum Kind: String, Codable, Sendable, CaseIterable {
        /// Empty cache, empty registry.
        case cold
        /// The same lane again.
        case unchanged
        /// Empty local cache, warm registry: a new CI runner.
        case freshRunner = "fresh-runner"
        /// One file that one processor reads was edited.
        case processorChanged = "processor-changed"
        /// One file of a library several processors copy was edited.
        case libraryChanged = "library-changed"

        package var title: String {
            switch self {
            case .cold: "cold"
            case .unchanged: "nothing changed"
            case .freshRunner: "fresh runner"
            case .processorChanged: "one processor changed"
            case .libraryChanged: "shared library changed"
            }
        }
    }

    package var kind: Kind
    /// `kiln`, or the peer (`buildah`).
    package var tool: String
    /// The scenario in words, with what was edited: `one processor changed: llm/litellm@1`.
    package var label: String
    /// The file edited (relative to the repository), for the change scenarios.
    package var changed: String?
    /// Processors that read the edited file.
    package var readers: Int?
    /// Wall time of the whole lane.
    package var seconds: Double
    /// Processors built (not found in a cache).
    package var built = 0
    package var failed = 0
    /// Peak resident memory of the lane's process, in MiB (kiln only).
    package var peakMemoryMiB: Double?
    /// Each processor's seconds and, for kiln, their phases.
    package var processors: [ProcessorTiming] = []
    /// The first failure, when a processor failed.
    package var failure: String?

    package init(kind: Kind, tool: String, label: String, seconds: Double) {
        self.kind = kind
        self.tool = tool
        self.label = label
        self.seconds = seconds
    }

    /// Each phase's seconds summed over the processors, in `Phases.names` order.
    package var phaseTotals: [Double] {
        var totals = [Double](repeating: 0, count: ProcessorReport.Phases.names.count)
        for timing in processors {
            for (index, value) in (timing.phases?.values ?? []).enumerated() { totals[index] += value }
        }
        return totals
    }

    /// The phase that took most of the processors' time, and its share of it (kiln's runs).
    package var dominant: (phase: String, share: Double)? {
        let totals = phaseTotals
        let sum = totals.reduce(0, +)
        guard sum > 0, let top = totals.indices.max(by: { totals[$0] < totals[$1] }) else { return nil }
        return (ProcessorReport.Phases.names[top], totals[top] / sum)
    }

    /// The processor that took longest.
    package var slowest: ProcessorTiming? { processors.max { $0.seconds < $1.seconds } }
}

/// One processor in one scenario.
package struct ProcessorTiming: Codable, Sendable {
    package var ref: String
    package var status: String
    package var seconds: Double
    package var phases: ProcessorReport.Phases?

    package init(ref: String, status: String, seconds: Double, phases: ProcessorReport.Phases? = nil) {
        self.ref = ref
        self.status = status
        self.seconds = seconds
        self.phases = phases
    }
}

extension BenchReport {
    /// A sentence per scenario that does not fit the budget, saying what dominates it; or one
    /// saying they all fit and how close the slowest comes.
    package var judged: [String] {
        let kiln = scenarios.filter { $0.tool == "kiln" }
        let over = kiln.filter { $0.seconds > budget }
        guard !over.isEmpty else {
            guard let slowest = kiln.max(by: { $0.seconds < $1.seconds }) else { return [] }
            let share = slowest.seconds / budget * 100
            return [
                "Every scenario fits the \(Duration.words(budget)) budget; the slowest, \(slowest.label), takes \(Duration.words(slowest.seconds)) (\(String(format: "%.1f", share))% of it)."
            ]
        }
        return over.map { scenario in
            var text =
                "\(scenario.label) does not fit: \(Duration.words(scenario.seconds)) against \(Duration.words(budget))"
            if let dominant = scenario.dominant {
                text +=
                    "; \(Self.phaseWords[dominant.phase] ?? dominant.phase) take \(Int((dominant.share * 100).rounded()))% of the processors' time"
            }
            if let slowest = scenario.slowest {
                text += "; the slowest processor, \(slowest.ref), takes \(Duration.words(slowest.seconds))"
            }
            return text + "."
        }
    }

    /// Each phase in words.
    package static let phaseWords = [
        "hash": "hashing inputs and resolving bases", "lookup": "cache lookups", "run": "RUN steps",
        "layers": "writing layers", "push": "pushes", "pin": "writing pins",
    ]
}

/// Durations as people read them.
package enum Duration {
    /// `0.42 s`, `12.3 s`, `4m 05s`.
    package static func words(_ seconds: Double) -> String {
        if seconds < 10 { return String(format: "%.2f s", seconds) }
        if seconds < 60 { return String(format: "%.1f s", seconds) }
        let whole = Int(seconds.rounded())
        return whole % 60 == 0 ? "\(whole / 60)m" : String(format: "%dm %02ds", whole / 60, whole % 60)
    }
}
