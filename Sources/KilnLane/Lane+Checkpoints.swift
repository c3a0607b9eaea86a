import KilnBuild
import KilnCore
import KilnDockerfile
import KilnOCI
import KilnProcessors
import KilnRegistry
import Synchronization

/// The home of every `RUN` step key of the lane: the cache repository when there is one, else the
/// repository of the first processor (by ref) whose steps include it. Processors often share
/// their first steps (the same `FROM`, `ENV` and `RUN apt-get …`); with one home per key, a
/// fresh runner building processor B finds, with one `HEAD`, the checkpoint processor A
/// published — whichever runner built A, and whichever processors this run selected.
actor CheckpointHomes {
    private var processors: [Processor] = []
    private var trustsMemos = false
    /// Computed once per `use` (one key: the lane's one table).
    private let table = SingleFlight<Int, [Digest: Repository]>(keeping: .results)
    /// The `RUN` step keys the run's checks found in processors' key memos (`KeyMemo.runSteps`),
    /// by memo slot: the homes take them from here before reading a memo again.
    private nonisolated let memoized = Mutex<[Digest: [String]]>([:])

    /// Keeps the step keys a check found in the memo in `slot`, for the homes.
    nonisolated func found(runSteps: [String], inMemo slot: Digest) {
        memoized.withLock { $0[slot] = runSteps }
    }

    /// The step keys a check found in the memo in `slot`, if one did.
    nonisolated func runSteps(inMemo slot: Digest) -> [String]? { memoized.withLock { $0[slot] } }

    /// Every processor of the lane (not only the selected ones: a home must not depend on the
    /// selection, or two runners would look in different places).
    /// - Parameter trustingMemos: a processor's step keys may come from its key memo while the
    ///   memo holds (as its keys may in this mode); otherwise each is keyed in full.
    func use(_ processors: [Processor], trustingMemos: Bool) async {
        self.processors = processors
        trustsMemos = trustingMemos
        await table.reset()
        memoized.withLock { $0 = [:] }
    }

    func homes(
        _ compute: @escaping @Sendable (_ processors: [Processor], _ trustingMemos: Bool) async -> [Digest: Repository]
    ) async -> [Digest: Repository] {
        let processors = self.processors
        let trustsMemos = self.trustsMemos
        // (compute cannot fail.)
        return (try? await table.value(for: 0) { await compute(processors, trustsMemos) }.value) ?? [:]
    }
}

extension Lane {
    /// The registry checkpoints a processor's build uses: keyed homes across the lane.
    func checkpoints(for repository: Repository) async throws -> RegistryCheckpoints {
        let cache = try cacheRepository(for: repository)
        await layers.note([], in: cache, indexes: true)
        guard settings.config.cacheRepository == nil else {
            return RegistryCheckpoints(client: client, repository: cache, layers: layers)
        }
        let homes = await checkpointHomes.homes { await self.computeHomes($0, trustingMemos: $1) }
        return RegistryCheckpoints(client: client, repository: cache, homes: homes, layers: layers)
    }

    /// Step keys of the `RUN`s of every buildable processor with `RUN`, for the run's platforms,
    /// each mapped to the first processor's repository. A processor whose key memo still holds
    /// gives its step keys from the memo; the others are keyed in full. A processor whose keys
    /// cannot be computed (a broken Dockerfile, a missing base) is left out: its own build
    /// reports why.
    func computeHomes(_ processors: [Processor], trustingMemos: Bool) async -> [Digest: Repository] {
        var homes = [Digest: Repository]()
        let pinFiles = Set(processors.map(\.file))
        for processor in processors where processor.enabled && processor.duplicates.isEmpty {
            guard case .build(let platforms, _, _) = plan(processor),
                let repository = try? Self.repository(try settings.config.repository(for: processor.ref))
            else { continue }
            let steps: [Digest]
            if trustingMemos, let memoized = await memoizedRunSteps(processor, platforms: platforms) {
                steps = memoized
            } else {
                guard
                    let job = try? ProcessorJob(
                        processor: processor, lane: self, pinFiles: pinFiles, platforms: platforms),
                    let keys = try? await job.runStepKeys()
                else { continue }
                steps = keys
            }
            for key in steps where homes[key] == nil { homes[key] = repository }
        }
        return homes
    }

    /// A processor's `RUN` step keys from its key memo, when the memo still holds and knows them:
    /// as the run's check found it, else read and checked now.
    func memoizedRunSteps(_ processor: Processor, platforms: [Platform]) async -> [Digest]? {
        let slot = Self.memoSlot(processor, platforms)
        var hexes = checkpointHomes.runSteps(inMemo: slot)
        if hexes == nil { hexes = await memoizedKeys(processor, platforms: platforms)?.memo.runSteps }
        guard let hexes else { return nil }
        var keys = [Digest]()
        keys.reserveCapacity(hexes.count)
        for hex in hexes {
            guard let key = try? Digest(sha256Hex: hex) else { return nil }
            keys.append(key)
        }
        return keys
    }
}
