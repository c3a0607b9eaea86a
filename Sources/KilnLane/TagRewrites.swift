import KilnOCI

/// Tags that several writers rewrite by reading what one names, adding to it and pushing it
/// back (a step's execution record, an image's referrers tag). A registry has no
/// compare-and-swap, so two rewrites that overlap lose one writer's entry. Within this process
/// one rewrite of a tag runs at a time; across runners each rewrite is read back and done again
/// (up to four times, a short random pause between) while what it added is missing.
actor TagRewrites {
    static let shared = TagRewrites()
    private var held = Set<String>()
    private var waiting = [String: [CheckedContinuation<Void, Never>]]()

    /// Runs `rewrite` of `tag` until `holds` says the tag has what it added.
    nonisolated func rewrite(
        _ tag: ImageReference, _ rewrite: () async throws -> Void, holds: () async throws -> Bool
    ) async throws {
        let name = tag.description
        await lock(name)
        do {
            for attempt in 1...4 {
                try await rewrite()
                if attempt == 4 { break }
                if try await holds() { break }
                try await Task.sleep(for: .milliseconds(Int.random(in: 50...250)))
            }
        } catch {
            await unlock(name)
            throw error
        }
        await unlock(name)
    }

    private func lock(_ name: String) async {
        if held.insert(name).inserted { return }
        await withCheckedContinuation { waiting[name, default: []].append($0) }
    }

    /// Hands the tag to the next waiter, if any.
    private func unlock(_ name: String) {
        guard var queue = waiting[name], !queue.isEmpty else {
            held.remove(name)
            return
        }
        let next = queue.removeFirst()
        waiting[name] = queue.isEmpty ? nil : queue
        next.resume()
    }
}
