import KilnCore
import KilnOCI
import KilnPin

extension ProcessorRun {
    /// Pinning (`--pin`): the file's pins set to the images of the current inputs, written only
    /// when one differs; a pin of a platform no longer built taken out or reported (per
    /// `unbuilt-pins`); the pinned images' prune marks taken off.
    func pinning(_ keyed: Keyed, _ lookedUp: LookedUp, index: Digest) async throws {
        let settings = lane.settings
        guard settings.pin else { return }
        _ = Elapsed.lap(&clock)
        defer { report.phases?.pin = Elapsed.lap(&clock) }
        let platforms = keyed.keys.map(\.platform)
        let pins = try lane.pinEdits(
            processor, repository: keyed.repository, platforms: platforms, found: lookedUp.found, index: index)
        report.pins = pins.changed.map { "\($0.key): \($0.new ?? "(removed)")" }
        report.pinChanges = pins.changed
        // Pins already as they should be: the file is not read and parsed again to find so.
        report.pinned = pins.changed.isEmpty ? false : try lane.writePins(processor, pins.all)
        if settings.config.unbuiltPins == .report, let snapshot = processor.pins,
            let problem = Lane.unbuiltPinsProblem(snapshot, platforms: platforms)
        {
            report.status = .stale
            report.message = problem
        }
        if report.pinned, settings.push {
            try await RepositoryPrune.unmark(
                Set(lookedUp.found.values.map(\.digest) + [index]), in: keyed.repository, client: lane.client,
                store: lane.store, markless: lane.markless)
        }
    }
}
