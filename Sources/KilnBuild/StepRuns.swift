import KilnCore
import KilnOCI

/// `RUN` segments under way in one run, by the step key of their last `RUN`. Processors often
/// share their first steps (the same `FROM`, `ENV` and `RUN apt-get …`); when two builds of a run
/// need the same step at the same time, the second waits for the first and starts from its
/// checkpoint instead of running buildah again.
package actor StepRuns {
    private var running = [Digest: Task<BaseImage, any Error>]()

    package init() {}

    /// The checkpoint image for `key`: the one a build already running it makes, else one
    /// `recorded()` finds (a build of this run finished it a moment ago), else `run()`'s.
    func run(
        _ key: Digest, recorded: @Sendable () -> BaseImage?, _ run: @escaping @Sendable () async throws -> BaseImage
    ) async throws -> (image: BaseImage, ran: Bool) {
        if let task = running[key] { return (try await task.value, false) }
        if let image = recorded() { return (image, false) }
        let task = Task { try await run() }
        running[key] = task
        let result = await task.result
        running[key] = nil
        return (try result.get(), true)
    }
}

/// A checkpoint a build recorded, to publish once the build succeeded.
package struct NewCheckpoint: Sendable {
    package var key: Digest
    package var manifest: Descriptor
    /// What the step touched, when it ran traced (a `RunReads` blob).
    package var reads: Descriptor?
    /// The step's identity, when this build ran or reused it (a reused step's checkpoint is an
    /// execution too, on its new lower layers): published so other runners, and this
    /// processor's next build, find the execution by identity.
    package var identity: Digest?
}
