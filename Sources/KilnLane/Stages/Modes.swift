import KilnBuild
import KilnCore
import KilnOCI

extension ProcessorRun {
    /// The mode's own stage, after the lookup: `plan` and `warm` end here, `check` and `verify`
    /// compare pins, `assemble` insists every platform was found; `build` goes on.
    func modeStage(_ keyed: Keyed, _ lookedUp: LookedUp) async throws -> ProcessorReport? {
        switch mode {
        case .plan, .warm:
            return try await planning(keyed, lookedUp)
        case .check:
            return try lane.check(
                processor, report: report, repository: keyed.repository, platforms: keyed.keys.map(\.platform),
                found: lookedUp.found, missing: lookedUp.missingWithReasons, complete: keyed.complete)
        case .verify:
            return try await lane.verify(
                processor, report: report, repository: keyed.repository,
                keys: try fullKeys(keyed, for: "verify").inputs, found: lookedUp.found, reasons: lookedUp.reasons,
                complete: keyed.complete)
        case .assemble:
            if let platform = lookedUp.missing.first,
                let key = keyed.keys.first(where: { $0.platform == platform })?.key
            {
                throw LaneError.missingPlatform(
                    ref: processor.ref.description, platform: platform.description,
                    repository: try lane.cacheRepository(for: keyed.repository).description,
                    tag: Lane.cacheTag(key), others: lookedUp.missing.dropFirst().map(\.description))
            }
            return nil
        case .build:
            return nil
        }
    }

    /// `plan` says what would be built and why; `warm` fetches and pre-builds what an edit's
    /// build will need.
    func planning(_ keyed: Keyed, _ lookedUp: LookedUp) async throws -> ProcessorReport {
        let job = try fullKeys(keyed, for: mode == .plan ? "plan" : "warm").job
        let missing = lookedUp.missing
        if !missing.isEmpty { report.status = .wouldBuild }
        let runs = job.dockerfile.stages.contains { $0.lastRun != nil }
        if mode == .warm, runs {
            try await warming(keyed, lookedUp, job: job)
        }
        if mode == .plan {
            report.advice = Advice.advise(job.dockerfile).map(\.description)
            if !missing.isEmpty, runs {
                let decisions = try await lane.planRuns(job, platforms: missing, repository: keyed.repository)
                report.runSteps = decisions.map(RunStepReport.init)
                report.firstStep = lane.firstStep(job, decisions: decisions, reasons: lookedUp.reasons)
            }
        }
        // (A processor kiln cannot build ended at Keying.)
        if missing.isEmpty {
            report.index = try lane.index(keyed.keys.map(\.platform), lookedUp.found).descriptor.digest.description
        }
        return report
    }

    /// `warm`: the missing platforms' `RUN` checkpoints pre-built into the store (nothing
    /// pushed); for the built ones, each `RUN`'s checkpoint, read set and lower-layer indexes
    /// fetched, so an edit's reuse check finds them here.
    func warming(_ keyed: Keyed, _ lookedUp: LookedUp, job: ProcessorJob) async throws {
        let checkpoints = try await lane.checkpoints(for: keyed.repository)
        var decisions = [RunDecision]()
        if !lookedUp.missing.isEmpty {
            let result = try await job.builder(
                platforms: lookedUp.missing, downloadingLayers: true, checkpoints: checkpoints
            ).build()
            report.stepsRun = result.stepsRun
            report.stepsReused = result.stepsReused
            decisions += result.runDecisions
        }
        let built = keyed.keys.map(\.platform).filter { lookedUp.found[$0] != nil }
        if !built.isEmpty {
            decisions += try await job.builder(
                platforms: built, downloadingLayers: true, checkpoints: checkpoints, planning: true, prefetching: true
            ).planRuns()
        }
        report.runSteps = decisions.map(RunStepReport.init)
    }
}
