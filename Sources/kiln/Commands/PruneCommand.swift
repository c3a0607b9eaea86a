import ArgumentParser
import Foundation
import KilnCore
import KilnLane
import KilnStore

struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Tidy the store and the registry: list (or, with --delete, remove) what nothing needs.",
        discussion: """
            A dry run unless --delete. The store: records (what a key built) not used for \
            --older-than, then the least recently used while the blobs kept exceed --max-size, and the \
            blobs no kept record reaches. The registry: in every repository of the lane, kiln's tags \
            (kiln-KEY, kiln-step-…, kiln-reads-…, kiln-run-…, kiln-index-…, sha256-… referrers) that \
            nothing needs: not the current inputs' keys, nor keys this store used within --older-than, \
            nor the RUN steps of the current Dockerfiles. Every image a pin names is kept: pins in any \
            processor file of the checkout (enabled or not, any platform) and on every git branch and \
            tag, local and remote (--delete refuses a shallow clone). A candidate is deleted only once \
            nothing has needed it for --older-than: --delete marks each in the repository \
            (kiln-prune-marks) with when it was first found unneeded, so a fresh runner keeps the grace \
            period too, and a prune racing a lane only marks what the lane just pushed. GHCR deletes \
            nothing through the registry API: kiln lists what to delete through GitHub's packages API \
            instead. distribution needs storage.delete.enabled: true.

              kiln prune                               # what would go, store and registry
              kiln prune --store-only --max-size 5G --delete
              kiln prune --registry-only --older-than 14d --delete --json
              kiln prune --registry-only --older-than 0 --delete  # no grace period
            """)

    @Option(
        name: .customLong("older-than"),
        help: ArgumentHelp(
            "What has not been used (store) or needed (registry) for this long goes (e.g. 30d, 12h; 0: now).",
            valueName: "duration"))
    var olderThan = "30d"

    @Option(
        name: .customLong("max-size"),
        help: ArgumentHelp("Keep the store's blobs under this size (e.g. 10G, 500M).", valueName: "size"))
    var maxSize: String?

    @Flag(name: .customLong("store-only"), help: "Only the local store.")
    var store = false

    @Flag(name: .customLong("registry-only"), help: "Only the registry.")
    var registry = false

    @Flag(help: "Remove what is listed (without it, nothing is removed).")
    var delete = false

    @OptionGroup(title: "Lane options") var lane: LaneOptions
    @OptionGroup var registryOptions: RegistryOptions
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if store && registry {
            throw ValidationError("Give --store-only or --registry-only, not both (neither: both).")
        }
        if Self.seconds(olderThan) == nil {
            throw ValidationError("--older-than takes a duration such as 30d, 12h or 90m, not '\(olderThan)'.")
        }
        if let maxSize, Self.bytes(maxSize) == nil {
            throw ValidationError("--max-size takes a size such as 10G, 500M or 2048K, not '\(maxSize)'.")
        }
    }

    static func seconds(_ text: String) -> Double? {
        if text.hasSuffix("d"), let days = Double(text.dropLast()), days >= 0 { return days * 86_400 }
        return LaneOptions.seconds(text) ?? (text == "0" ? 0 : nil)
    }

    static func bytes(_ text: String) -> Int64? {
        let units: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        if let unit = text.uppercased().last, let scale = units[unit], let value = Double(text.dropLast()), value >= 0 {
            return Int64(value * Double(scale))
        }
        return Int64(text).flatMap { $0 >= 0 ? $0 : nil }
    }

    static func print(_ plans: [RegistryPrunePlan], deleting: Bool, refs: Int?, grace: String) {
        if let refs {
            Output.line("registry: keeping every image pinned in this checkout and on \(refs) git refs")
        } else {
            Output.line(
                "registry: not a git repository: keeping the images this checkout pins (no other branch is seen)")
        }
        for plan in plans {
            let verb = deleting && plan.unsupported == nil ? "deleted" : "would delete"
            Output.line(
                "\(plan.repository): \(verb) \(plan.delete.count), \(plan.pending.count) unneeded for less than \(grace), kept \(plan.kept)"
            )
            for deletion in plan.delete {
                Output.line("  delete  \(deletion.tag ?? "(untagged)")  \(deletion.digest): \(deletion.reason)")
            }
            for deletion in plan.pending {
                let since = deletion.unneededSince.map { "unneeded since \($0)" } ?? "first found unneeded now"
                Output.line(
                    "  later   \(deletion.tag ?? "(untagged)")  \(deletion.digest): \(deletion.reason); \(since)")
            }
            if let unsupported = plan.unsupported { Output.line("  \(unsupported)") }
        }
    }

    func run() async throws {
        struct Report: Encodable {
            struct StorePart: Encodable {
                var records: Int
                var blobs: Int
                var freedBytes: Int64
                var keptBytes: Int64
                var keptRecords: Int
                var deleted: Bool
            }
            var store: StorePart?
            /// How many git refs' pins were kept (nil: not in a git repository).
            var pinnedRefs: Int?
            var registry: [RegistryPrunePlan]?
        }
        try await Output.reportingAsync(json: output.json) {
            let cutoff = Date().addingTimeInterval(-(Self.seconds(olderThan) ?? 30 * 86_400))
            let both = !store && !registry
            let contentStore = try storeOptions.open()
            var report = Report()
            if store || both {
                // Exclusive while planning and removing: a lane using the store finishes first.
                let lock = try StoreLock(root: contentStore.root, mode: .exclusive) {
                    Output.errorLine(
                        "kiln: waiting for the kiln runs using \(contentStore.root) to finish before pruning it")
                }
                let plan = try contentStore.prunePlan(unusedSince: cutoff, maxBytes: maxSize.flatMap(Self.bytes))
                if delete { contentStore.prune(plan) }
                lock.release()
                report.store = .init(
                    records: plan.records.count, blobs: plan.blobs.count, freedBytes: plan.freedBytes,
                    keptBytes: plan.keptBytes, keptRecords: plan.keptRecords, deleted: delete)
                if !output.json {
                    Output.line(
                        "store: \(delete ? "removed" : "would remove") \(plan.records.count) records and \(plan.blobs.count) blobs (\(LaneProgress.bytes(plan.freedBytes))); \(plan.keptRecords) records and \(LaneProgress.bytes(plan.keptBytes)) kept"
                    )
                }
            }
            if registry || both {
                let settings = try lane.settings(platforms: [])
                let recent = contentStore.recordKeys(kind: "lane", usedSince: cutoff)
                let grace = Self.seconds(olderThan) ?? 30 * 86_400
                let plans = try await registryOptions.withClient { client in
                    let lane = Lane(settings: settings, store: contentStore, client: client, observer: { _ in })
                    let pinned = try await lane.pinnedEverywhere(deleting: delete)
                    report.pinnedRefs = pinned.refs
                    return try await lane.pruneRegistry(
                        guards: PruneGuards(pinned: pinned, recentKeys: recent, gracePeriod: grace), apply: delete)
                }
                report.registry = plans
                if !output.json { Self.print(plans, deleting: delete, refs: report.pinnedRefs, grace: olderThan) }
            }
            if output.json { Output.json(report) }
            if !delete && !output.json { Output.line("(a dry run: add --delete to remove these)") }
        }
    }
}
