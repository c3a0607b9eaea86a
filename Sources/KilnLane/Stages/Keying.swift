import KilnBuild
import KilnCore
import KilnOCI
import KilnProcessors
import KilnRegistry

/// A processor's keys, one per platform of the run, and where they came from.
struct Keyed {
    /// Where the keys came from.
    enum Source {
        /// The key memo (the check pass): a few `lstat`s, no Dockerfile read.
        case memo(Lane.Memoized)
        /// A full keying pass: the job (Dockerfile, context, bases) and every key's parts.
        case inputs(ProcessorJob, [(platform: Platform, key: InputKey)])
    }

    var repository: Repository
    /// The platforms of this run, those the processor declares, and whether they are all.
    var platforms: [Platform]
    var declared: [Platform]
    var complete: Bool
    var keys: [(platform: Platform, key: Digest)]
    var source: Source

    /// The job and the keys' parts, when keyed in full.
    var full: (job: ProcessorJob, inputs: [(platform: Platform, key: InputKey)])? {
        if case .inputs(let job, let inputs) = source { return (job, inputs) }
        return nil
    }

    var memoized: Lane.Memoized? {
        if case .memo(let memoized) = source { return memoized }
        return nil
    }
}

/// A stage's reason to stop a processor short of the next one.
enum StageExit: Error {
    /// The check pass cannot settle it: the worker keys it in full.
    case unsettled
    /// Its report is final already (not buildable, nothing to do on this run).
    case done(ProcessorReport)
}

extension ProcessorRun {
    /// Keying: the memo's keys in the check pass, else a full pass over the Dockerfile, the
    /// context and the bases.
    func keying() async throws -> Keyed {
        let repository = try Lane.repository(try lane.settings.config.repository(for: processor.ref))
        report.repository = repository.description
        guard case .build(let platforms, let declared, let complete) = lane.plan(processor) else {
            throw StageExit.done(report)
        }
        if mode == .assemble && !complete { throw LaneError.assembleNeedsEveryPlatform }
        report.phases = ProcessorReport.Phases()
        defer { report.phases?.hash = Elapsed.lap(&clock) }
        if checkOnly {
            // An unchanged processor's keys come from its memo (a few lstats); the Dockerfile is
            // read and the context walked only when something changed.
            guard mode.trustsKeyMemo, let memoized = await lane.memoizedKeys(processor, platforms: platforms) else {
                throw StageExit.unsettled
            }
            if let steps = memoized.memo.runSteps {
                lane.checkpointHomes.found(runSteps: steps, inMemo: Lane.memoSlot(processor, platforms))
            }
            report.keyedFrom = "memo"
            return Keyed(
                repository: repository, platforms: platforms, declared: declared, complete: complete,
                keys: memoized.keys, source: .memo(memoized))
        }
        start.send()
        lane.observer(LaneEvent(ref: processor.ref, kind: .hashing))
        let job = try ProcessorJob(processor: processor, lane: lane, pinFiles: pinFiles, platforms: platforms)
        if let problem = job.unbuildable {
            report.status = .notBuildable
            report.message = problem
            report.phases = nil
            throw StageExit.done(report)
        }
        self.job = job
        report.keyedFrom = "inputs"
        let inputs = try await job.keys(downloadingLayers: mode == .warm, memoizing: mode.trustsKeyMemo)
        return Keyed(
            repository: repository, platforms: platforms, declared: declared, complete: complete,
            keys: inputs.map { ($0.platform, $0.key.digest) }, source: .inputs(job, inputs))
    }
}
