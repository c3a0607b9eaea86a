import KilnBuild
import KilnCore
import KilnOCI

extension ProcessorRun {
    /// Building: the missing platforms built natively (and pushed under their key tags); what
    /// was built joins what was found. The keys' inputs are remembered for the next run's
    /// explanations.
    func building(_ keyed: Keyed, _ lookedUp: inout LookedUp) async throws {
        if !lookedUp.missing.isEmpty {
            // The check pass never gets here with a miss: the worker keyed it in full.
            let full = try fullKeys(keyed, for: "a build")
            report.status = .built
            let built = try await lane.build(
                full.job, platforms: lookedUp.missing, keys: full.inputs, repository: keyed.repository,
                report: &report)
            for (platform, descriptor) in built {
                lookedUp.found[platform] = descriptor
                if let position = report.platforms.firstIndex(where: { $0.platform == platform.description }) {
                    report.platforms[position].digest = descriptor.digest.description
                }
            }
            lookedUp.missing = []
        }
        // A memo's keys are the ones remembered when it was written.
        for (platform, key) in keyed.full?.inputs ?? [] { try lane.remember(processor, platform: platform, key: key) }
    }
}
