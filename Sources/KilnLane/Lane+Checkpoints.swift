import KilnBuild
import KilnCore
import KilnDockerfile
import KilnOCI
import KilnProcessors
import KilnRegistry

/// The home of every `RUN` step key of the lane: the cache repository when there is one, else the
/// repository of the first processor (by ref) whose steps include it. Processors often share
/// their first steps (the same `FROM`, `ENV` and `RUN apt-get …`); with one home per key, a
/// fresh runner building processor B finds, with one `HEAD`, the checkpoint processor A
/// published — whichever runner built A, and whichever processors this run selected.
actor CheckpointHomes {
    private var processors: [Processor] = []
    private var table: Task<[Digest: Repository], Never>?

    /// Every processor of the lane (not only the selected ones: a home must not depend on the
    /// selection, or two runners would look in different places).
    func use(_ processors: [Processor]) {
        self.processors = processors
        table = nil
    }

    func homes(_ compute: @escaping @Sendable ([Processor]) async -> [Digest: Repository]) async -> [Digest: Repository]
    {
        if let table { return await table.value }
        let processors = self.processors
        let task = Task { await compute(processors) }
        table = task
        return await task.value
    }
}

extension Lane {
    /// The registry checkpoints a processor's build uses: keyed homes across the lane.
    func checkpoints(for repository: Repository) async throws -> RegistryCheckpoints {
        let cache = try cacheRepository(for: repository)
        guard settings.config.cacheRepository == nil else {
            return RegistryCheckpoints(client: client, repository: cache)
        }
        let homes = await checkpointHomes.homes { processors in await self.computeHomes(processors) }
        return RegistryCheckpoints(client: client, repository: cache, homes: homes)
    }

    /// Step keys of the `RUN`s of every buildable processor with `RUN`, for the run's platforms,
    /// each mapped to the first processor's repository. A processor whose keys cannot be
    /// computed (a broken Dockerfile, a missing base) is left out: its own build reports why.
    func computeHomes(_ processors: [Processor]) async -> [Digest: Repository] {
        var homes = [Digest: Repository]()
        let pinFiles = Set(processors.map(\.file))
        for processor in processors where processor.enabled && processor.duplicates.isEmpty {
            guard case .build(let platforms, _, _) = plan(processor),
                let repository = try? Self.repository(try settings.config.repository(for: processor.ref)),
                let job = try? ProcessorJob(processor: processor, lane: self, pinFiles: pinFiles, platforms: platforms),
                job.dockerfile.stages.contains(where: { $0.lastRun != nil }),
                let keyed = try? await job.builder(platforms: platforms, downloadingLayers: false)
                    .stepKeys(hasher: hashers.hasher(for: job.context.root))
            else { continue }
            for stages in keyed.values {
                for steps in stages.values {
                    for step in steps {
                        guard case .run = step.instruction.command, homes[step.key] == nil else { continue }
                        homes[step.key] = repository
                    }
                }
            }
        }
        return homes
    }
}
