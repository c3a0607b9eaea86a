import KilnCore
import KilnOCI

/// `RUN` segments under way in one run, by the step key of their last `RUN`. Processors often
/// share their first steps (the same `FROM`, `ENV` and `RUN apt-get …`); when two builds of a run
/// need the same step at the same time, the second waits for the first and starts from its
/// checkpoint instead of running buildah again.
package final class StepRuns: Sendable {
    /// A step's image, and whether this flight ran it.
    struct Outcome: Sendable {
        var image: BaseImage
        var ran: Bool
    }

    private let running = SingleFlight<Digest, Outcome>(keeping: .nothing)

    package init() {}

    /// The checkpoint image for `key`: the one a build already running it makes, else one
    /// `recorded()` finds (a build of this run finished it a moment ago), else `run()`'s.
    func run(
        _ key: Digest, recorded: @escaping @Sendable () -> BaseImage?,
        _ run: @escaping @Sendable () async throws -> BaseImage
    ) async throws -> (image: BaseImage, ran: Bool) {
        let result = try await running.value(for: key) {
            // Nothing under way: a build of this run may have finished it a moment ago.
            if let image = recorded() { return Outcome(image: image, ran: false) }
            return Outcome(image: try await run(), ran: true)
        }
        return (result.value.image, result.made && result.value.ran)
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
