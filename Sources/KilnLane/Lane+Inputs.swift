import KilnCore
import KilnProcessors

extension Lane {
    /// The context files a processor's build reads, over its platforms (after `.dockerignore`).
    package struct Inputs: Sendable {
        package var processor: Processor
        /// Absolute paths of the regular files, sorted.
        package var files: [String]
    }

    /// What each selected, buildable processor reads: what `kiln bench` edits to measure a change
    /// to one processor, or to a library several of them copy. Resolves bases (their configs, not
    /// their layers) as the keys need; a processor whose inputs cannot be read has no files.
    package func inputs() async throws -> [Inputs] {
        let config = settings.config
        let all = try await BlockingWork.run { try Discovery.processors(config) }
        let pinFiles = Set(all.map(\.file))
        let processors = try select(from: all).filter { $0.enabled && $0.duplicates.isEmpty }
        defer { hashers.saveAll() }
        return await processors.mapConcurrently(width: settings.jobs) { processor in
            guard case .build(let platforms, _, _) = self.plan(processor),
                let job = try? ProcessorJob(processor: processor, lane: self, pinFiles: pinFiles, platforms: platforms),
                job.unbuildable == nil,
                let keys = try? await job.keys(downloadingLayers: false)
            else { return Inputs(processor: processor, files: []) }
            var files = Set<String>()
            for (_, key) in keys {
                for (path, leaf) in key.parts.files where leaf.hasPrefix("file ") {
                    files.insert(FilePaths.join(job.context.root, path))
                }
            }
            return Inputs(processor: processor, files: files.sorted())
        }
    }
}
