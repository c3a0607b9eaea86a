import KilnCore
import KilnOCI

extension ProcessorRun {
    /// Publishing: the index over every platform, pushed and tagged with the version (or, found
    /// in the registry already, the version tag moved to it when it names another). The index's
    /// digest.
    func publishing(_ keyed: Keyed, _ lookedUp: LookedUp) async throws -> Digest {
        let settings = lane.settings
        let indexDigest: Digest
        if let pushed = lookedUp.pushedIndex {
            indexDigest = pushed.index
            if !pushed.tagged, settings.push {
                report.pushedBytes += try await lane.tagVersion(
                    processor.ref.version, index: indexDigest, in: keyed.repository)
            }
        } else {
            let index = try lane.index(keyed.keys.map(\.platform), lookedUp.found)
            indexDigest = index.descriptor.digest
            if settings.push {
                _ = Elapsed.lap(&clock)
                report.pushedBytes += try await lane.pushIndex(
                    index, to: keyed.repository, version: processor.ref.version)
                report.phases?.push += Elapsed.lap(&clock)
            }
        }
        report.index = indexDigest.description
        if settings.push {
            published = KeyMemo.Published(
                repository: keyed.repository, index: indexDigest, found: lookedUp.found, keys: keyed.keys)
        }
        if mode == .assemble { report.status = .assembled }
        return indexDigest
    }
}
