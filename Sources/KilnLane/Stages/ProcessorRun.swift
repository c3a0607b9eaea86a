import KilnBuild
import KilnCore
import KilnOCI
import KilnProcessors

/// One processor through the lane's stages, top to bottom:
///
///     Keying → Lookup → (the mode's own stage) → Building → Publishing → Pinning
///
/// Each stage is a method taking the value the one before made (`Keyed`, `LookedUp`, the
/// images found or built, the index); a stage ends the processor early by throwing `StageExit`.
/// The report is the rendering of what happened, written as the stages go; no stage decides by
/// reading it back.
final class ProcessorRun {
    let lane: Lane
    let processor: Processor
    let mode: Lane.Mode
    let pinFiles: Set<String>
    let start: StartEvent
    /// The check pass: keys from the memo only, and nothing built. The worker that takes the
    /// run over clears it.
    var checkOnly: Bool
    /// What the check pass found of a processor it could not settle: its keys from the memo and
    /// their lookups (nil when the memo was not right). The worker goes on from there.
    var handoff: (keyed: Keyed, lookedUp: LookedUp)?
    var report: ProcessorReport
    var clock = Elapsed.now()
    /// The job of a full keying pass, whose memo is written when the processor is done.
    var job: ProcessorJob?
    /// The index pushed, for the memo.
    var published: KeyMemo.Published?

    init(lane: Lane, processor: Processor, mode: Lane.Mode, pinFiles: Set<String>, start: StartEvent, checkOnly: Bool) {
        self.lane = lane
        self.processor = processor
        self.mode = mode
        self.pinFiles = pinFiles
        self.start = start
        self.checkOnly = checkOnly
        report = ProcessorReport(processor: processor, status: .hit)
    }

    /// The processor's report; nil when the check pass cannot settle it (the worker goes on).
    func run() async throws -> ProcessorReport? {
        defer {
            if let job, let memo = job.pendingMemo.take() {
                lane.saveMemo(memo, for: processor, platforms: job.platforms, published: published)
            }
        }
        do {
            let keyed: Keyed
            var lookedUp: LookedUp
            if let handed = handoff, !checkOnly {
                (keyed, lookedUp) = try await continuing(handed)
            } else {
                keyed = try await keying()
                lookedUp = try await lookup(keyed)
            }
            if checkOnly {
                guard lookedUp.settled else {
                    handoff = (keyed, lookedUp)
                    throw StageExit.unsettled
                }
                start.send()
            }
            try await repairProvenance(keyed, lookedUp)
            if let final = try await modeStage(keyed, lookedUp) { return final }
            try await building(keyed, &lookedUp)
            guard keyed.complete else { return partial(keyed) }
            let index = try await publishing(keyed, lookedUp)
            try await pinning(keyed, lookedUp, index: index)
            return report
        } catch StageExit.unsettled {
            return nil
        } catch StageExit.done(let final) {
            return final
        }
    }

    /// The worker's start on a run the check pass keyed from the memo: keyed in full (a build
    /// needs the Dockerfile and the context), and, the keys being the memo's, the lookups the
    /// check made are kept; only the missing platforms' reasons are added. Nothing is asked of
    /// the registry twice.
    func continuing(_ handed: (keyed: Keyed, lookedUp: LookedUp)) async throws -> (Keyed, LookedUp) {
        let keyed = try await keying()
        guard keyed.keys.map(\.key) == handed.keyed.keys.map(\.key) else { return (keyed, try await lookup(keyed)) }
        return (keyed, recorded(keyed, handed.lookedUp.lookups.map(\.lookup), pushedIndex: handed.lookedUp.pushedIndex))
    }

    /// A hit whose image lacks its provenance gets it (build and assemble only).
    func repairProvenance(_ keyed: Keyed, _ lookedUp: LookedUp) async throws {
        guard mode == .build || mode == .assemble, let full = keyed.full else { return }
        report.pushedBytes += try await lane.repairProvenance(
            full.job, lookups: lookedUp.lookups.map { ($0.platform, $0.lookup) }, keys: full.inputs,
            repository: keyed.repository)
    }

    /// A per-platform run: the platform manifests and their key tags are pushed; the version tag
    /// and the pins wait for the index over every platform (`kiln assemble`).
    func partial(_ keyed: Keyed) -> ProcessorReport {
        let left = keyed.declared.filter { !keyed.platforms.contains($0) }
        report.partial = true
        report.message =
            "\(left.map(\.description).joined(separator: ", ")) left to another run; kiln assemble tags and pins the index once every platform is pushed"
        return report
    }

    /// The keys' parts when keyed in full; an internal error otherwise (a stage that needs them
    /// is only reached after a full pass).
    func fullKeys(_ keyed: Keyed, for stage: String) throws -> (
        job: ProcessorJob, inputs: [(platform: Platform, key: InputKey)]
    ) {
        guard let full = keyed.full else { throw LaneError.internalState("\(stage) needs keys computed in full") }
        return full
    }
}
