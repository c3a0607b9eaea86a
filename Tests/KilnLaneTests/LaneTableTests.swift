import Foundation
import KilnCore
import KilnOCI
import KilnRegistry
import Testing

@testable import KilnLane

/// Every lane mode × the state of the runner's store × what the registry holds × a full or a
/// per-platform run, in-process against `InMemoryRegistry`. Each case starts from the same
/// history: both processors built, pushed and pinned; then `t/a@1` edited, built and pinned
/// again (so its first images are pinned nowhere). The expected outcome is derived from the
/// case by the rules the lane promises (`expected`), not recorded from a run.
@Suite("Every lane mode, in-process, against an in-memory registry")
struct LaneTableTests {
    enum Mode: String, CaseIterable, Sendable { case plan, build, check, verify, warm, assemble, prune }
    /// The runner's store: the one that built the pins, an empty one (a fresh runner), or the
    /// one that built the pins with `t/a@1` edited since (its memo is stale).
    enum Store: String, CaseIterable, Sendable { case warm, fresh, edited }
    /// The registry: everything pushed, `t/a@1`'s pinned linux/amd64 manifest deleted, or
    /// unreachable.
    enum Registry: String, CaseIterable, Sendable { case complete, deleted, down }
    enum Run: String, CaseIterable, Sendable { case full, amd64 }

    struct Case: Sendable, CustomTestStringConvertible {
        var mode: Mode
        var store: Store
        var registry: Registry
        var run: Run
        var testDescription: String { "\(mode) \(store) store, registry \(registry), \(run) run" }

        /// `t/a@1`'s current inputs have no image for some platform of the run.
        var aMissing: Bool { store == .edited || registry == .deleted }
        var platforms: [Platform]? { run == .amd64 ? [.linuxAMD64] : nil }
    }

    static let cases: [Case] = Mode.allCases.flatMap { mode in
        Store.allCases.flatMap { store in
            Registry.allCases.flatMap { registry in
                Run.allCases.map { Case(mode: mode, store: store, registry: registry, run: $0) }
            }
        }
    }

    /// What a case must end in.
    struct Outcome: Equatable, CustomStringConvertible {
        /// Status by ref, or the error's category when the run throws.
        var statuses: [String: String] = [:]
        var thrown: String?
        /// Whether `t/a@1`'s pins changed.
        var aPinsChanged = false
        /// Whether the registry was written to (manifests, blobs, tags).
        var wrote = false
        /// Pins naming a manifest the registry does not have.
        var missingPins = 0

        var description: String {
            let statuses = statuses.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return
                "[\(thrown.map { "threw \($0)" } ?? statuses)] pins of a changed: \(aPinsChanged), wrote: \(wrote), missing pins: \(missingPins)"
        }
    }

    /// The rules: nothing but build, assemble and prune writes; a pin changes only when a full
    /// build of changed inputs pushed its image; a build leaves no pin naming a missing image;
    /// an unreachable registry fails the run before any work.
    static func expected(_ test: Case) -> Outcome {
        var outcome = Outcome()
        let deletedPin = test.registry == .deleted ? 1 : 0
        if test.registry == .down {
            outcome.thrown = ErrorCategory.network.name
            return outcome
        }
        let a: String
        var b = "hit"
        switch test.mode {
        case .plan, .warm:
            a = test.aMissing ? "would-build" : "hit"
            outcome.missingPins = deletedPin
        case .build:
            a = test.aMissing ? "built" : "hit"
            outcome.aPinsChanged = test.store == .edited && test.run == .full
            outcome.wrote = test.aMissing
            // A per-platform run pins nothing: a pin to an image of older inputs stays as it was.
            outcome.missingPins = test.store == .edited && test.run == .amd64 ? deletedPin : 0
        case .check, .verify:
            a = test.aMissing ? "stale" : "ok"
            b = "ok"
            outcome.missingPins = deletedPin
        case .assemble:
            // Only whole indexes are assembled: a per-platform assemble fails every processor,
            // saying to run it without --platforms. The version tags already name the indexes.
            a = test.aMissing || test.run == .amd64 ? "failed" : "assembled"
            b = test.run == .amd64 ? "failed" : "assembled"
            outcome.missingPins = deletedPin
        case .prune:
            // The first images of t/a@1 go; nothing a pin names does.
            outcome.wrote = true
            outcome.missingPins = deletedPin
            return outcome
        }
        outcome.statuses = ["t/a@1": a, "t/b@1": b]
        return outcome
    }

    @Test("mode × store × registry × run", arguments: cases)
    func table(_ test: Case) async throws {
        let repo = try InProcessLane()
        _ = try await repo.run(.build, store: "runner")
        try repo.write("tools/t/a/1/data.txt", "a 1\n")
        _ = try await repo.run(.build, store: "runner")
        let pinsBefore = repo.read("tools/t/a/1/registry.yaml")
        let history = await Set(repo.registry.manifests.flatMap { entry in entry.value.keys })
        if test.store == .edited { try repo.write("tools/t/a/1/data.txt", "a 2\n") }
        if test.registry == .deleted {
            let pin = try #require(repo.pins().first { $0.repository.hasSuffix("t-a") || $0.repository.contains("a") })
            await repo.registry.delete(pin.repository, pin.digest)
        }
        await repo.registry.setDown(test.registry == .down)
        await repo.registry.clearLog()

        var observed = Outcome()
        var said = ""
        let store = test.store == .fresh ? "fresh" : "runner"
        do {
            if test.mode == .prune {
                try await prune(repo, store: store)
            } else {
                let mode: Lane.Mode = try #require(
                    [
                        .plan: .plan, .build: .build, .check: .check, .verify: .verify, .warm: .warm,
                        .assemble: .assemble,
                    ][
                        test.mode])
                let reports = try await repo.run(
                    mode, store: store, platforms: test.platforms, push: test.mode == .build || test.mode == .assemble,
                    pin: test.mode == .build || test.mode == .assemble)
                observed.statuses = reports.mapValues(\.status.rawValue)
                said = reports.values.compactMap { $0.message.map { "\($0)" } }.joined(separator: "; ")
            }
        } catch {
            observed.thrown = (error as? any KilnError)?.category.name ?? "\(error)"
            said = "\(error)"
        }
        await repo.registry.setDown(false)
        observed.aPinsChanged = repo.read("tools/t/a/1/registry.yaml") != pinsBefore
        observed.wrote = await !repo.registry.log.filter { !$0.hasPrefix("GET") && !$0.hasPrefix("HEAD") }.isEmpty
        for pin in repo.pins() where await repo.registry.manifest(pin.repository, pin.digest) == nil {
            observed.missingPins += 1
        }
        #expect(observed == Self.expected(test), "\(test.testDescription): \(said)")
        if test.mode == .prune, test.registry != .down {
            // Every image the history pushed that a pin names is still there.
            let left = await Set(repo.registry.manifests.flatMap { entry in entry.value.keys })
            #expect(left.count < history.count, "prune deleted nothing")
        }
    }

    /// `kiln prune --delete` with no grace period.
    func prune(_ repo: InProcessLane, store: String) async throws {
        let (lane, client) = try repo.lane(store: store)
        defer { Task { await client.shutdown() } }
        let guards = PruneGuards(
            pinned: try await lane.pinnedEverywhere(deleting: false), recentKeys: [], gracePeriod: 0)
        _ = try await lane.pruneRegistry(guards: guards, apply: true)
    }
}

@Suite("The check pass hands over what it learnt")
struct HandoffTests {
    @Test("a processor the check could not settle is not asked about twice: one HEAD per manifest before the push")
    func nothingTwice() async throws {
        let repo = try InProcessLane()
        _ = try await repo.run(.build, store: "runner")
        let pin = try #require(repo.pins().first)
        await repo.registry.delete(pin.repository, pin.digest)
        await repo.registry.clearLog()
        let reports = try await repo.run(.build, store: "runner")
        #expect(reports["t/a@1"]?.status == .built)
        let asked = await repo.registry.requests("HEAD /v2/\(pin.repository)/manifests/\(pin.digest)")
        let log = await repo.registry.log
        #expect(asked.count == 1, "\(log.joined(separator: "\n"))")
        #expect(await repo.registry.manifest(pin.repository, pin.digest) != nil)
    }
}

@Suite("What a fresh runner asks of a registry without the referrers API")
struct FreshRunnerRequestTests {
    @Test("each hit's provenance is one GET of its referrers tag; the missing referrers API is asked about once")
    func referrersOnce() async throws {
        let repo = try InProcessLane()
        _ = try await repo.run(.build, store: "runner")
        await repo.registry.clearLog()
        let reports = try await repo.run(.build, store: "fresh")
        #expect(reports.values.allSatisfy { $0.status == .hit })
        let log = await repo.registry.log
        #expect(log.filter { $0.contains("/referrers/") }.count == 1, "\(log.joined(separator: "\n"))")
        #expect(log.filter { $0.hasPrefix("HEAD") && $0.contains("/manifests/sha256-") }.isEmpty)
        // Two processors, two platforms: one GET of each image's referrers tag.
        #expect(log.filter { $0.hasPrefix("GET") && $0.contains("/manifests/sha256-") }.count == 4)
        // The statements record key and platform: no image's config is read to check its tag.
        #expect(log.filter { $0.hasPrefix("GET") && $0.contains("/blobs/") }.isEmpty, "\(log.joined(separator: "\n"))")
    }

    @Test("a key tag moved to another key's image of the same platform is refused, and the image built again")
    func keyTagOfAnotherKey() async throws {
        let repo = try InProcessLane()
        let built = try await repo.run(.build, store: "runner")
        let amd64 = "linux/amd64"
        let a = try #require(built["t/a@1"]?.platforms.first { $0.platform == amd64 })
        let b = try #require(built["t/b@1"]?.platforms.first { $0.platform == amd64 })
        let (aDigest, bDigest, aKey) = (try #require(a.digest), try #require(b.digest), try #require(a.key))
        let pins = repo.pins()
        let aRepository = try #require(pins.first { $0.digest == aDigest }?.repository)
        let bRepository = try #require(pins.first { $0.digest == bDigest }?.repository)
        // Both repositories hold b's image (pushed under a's name by whoever moved the tag).
        await repo.registry.copyManifest(bDigest, from: bRepository, to: aRepository)
        await repo.registry.copyTag("sha256-\(bDigest.dropFirst(7))", from: bRepository, to: aRepository)
        await repo.registry.retag(aRepository, "kiln-\(aKey)", to: bDigest)
        let reports = try await repo.run(.build, store: "fresh")
        let again = try #require(reports["t/a@1"]?.platforms.first { $0.platform == amd64 })
        #expect(again.cache == "miss", "\(again)")
        #expect(again.reason?.contains("built from other inputs") == true, "\(again.reason ?? "")")
        #expect(again.digest == aDigest)
        #expect(await repo.registry.digest(aRepository, tag: "kiln-\(aKey)") == aDigest)
    }
}

@Suite("Provenance listings vouch for a key tag's image")
struct ProvenanceListingTests {
    static let key = Digest.sha256(of: Array("k".utf8))
    static let other = Digest.sha256(of: Array("o".utf8))

    static func entry(key: Digest?, platform: String?) -> Descriptor {
        var annotations = [String: String]()
        annotations[ProvenanceStatement.inputKeyAnnotation] = key?.description
        annotations[ProvenanceStatement.platformAnnotation] = platform
        return Descriptor(
            mediaType: .ociManifest, digest: .sha256(of: Array("\(key?.hex ?? "") \(platform ?? "")".utf8)), size: 1,
            annotations: annotations.isEmpty ? nil : annotations)
    }

    @Test("vouched only by a statement of this key and platform; other builds contradict; old statements say nothing")
    func verdicts() throws {
        let amd64 = try Platform(parsing: "linux/amd64")
        func verdict(_ entries: [Descriptor]) -> ProvenanceListing.Verdict {
            ProvenanceListing(entries).verdict(key: Self.key, platform: amd64)
        }
        #expect(verdict([]) == .silent)
        #expect(verdict([Self.entry(key: nil, platform: nil)]) == .silent)
        #expect(verdict([Self.entry(key: Self.key, platform: "linux/amd64")]) == .vouched)
        // Two keys whose images are the same: each statement names its own key.
        #expect(
            verdict([
                Self.entry(key: Self.other, platform: "linux/amd64"),
                Self.entry(key: Self.key, platform: "linux/amd64"),
            ])
                == .vouched)
        guard case .contradicted(let platform) = verdict([Self.entry(key: Self.key, platform: "linux/arm64/v8")]) else {
            Issue.record("another platform's statement vouched")
            return
        }
        #expect(platform.contains("linux/arm64/v8"))
        #expect(
            verdict([Self.entry(key: Self.other, platform: "linux/arm64/v8")])
                == .contradicted("names an image kiln built for linux/arm64/v8"))
        guard case .contradicted(let inputs) = verdict([Self.entry(key: Self.other, platform: "linux/amd64")]) else {
            Issue.record("another key's statement vouched")
            return
        }
        #expect(inputs.contains("other inputs"))
    }
}

@Suite("verify --provenance compares what the inputs decide")
struct ProvenanceCheckTests {
    static func statement(builder: String = "kiln", file: String = "aa", revision: String = "1") -> ProvenanceStatement
    {
        let definition = ProvenanceStatement.BuildDefinition(
            buildType: "https://kiln.build/provenance/lane/v1",
            externalParameters: [
                "processor": "t/a@1", "platform": "linux/amd64", "dockerfile": "t/a/Dockerfile", "context": ".",
                "source": "https://github.com/acme/repo", "revision": revision,
            ],
            internalParameters: ["inputKey": "sha256:11", "keyFormat": "kiln-input-key/2"],
            resolvedDependencies: [
                .init(uri: "git+https://github.com/acme/repo", digest: ["gitCommit": revision]),
                .init(name: "t/a/data.txt", digest: ["sha256": file]),
            ])
        return ProvenanceStatement(
            subject: [.init(name: "r", digest: ["sha256": "ff"])],
            predicate: .init(buildDefinition: definition, runDetails: .init(builder: .init(id: builder))))
    }

    @Test("the commit and the run differ freely; a file digest, a parameter or a foreign builder do not")
    func differences() {
        let source = "https://github.com/acme/repo"
        let now = Self.statement()
        func check(_ recorded: ProvenanceStatement, source: String? = source) -> [String] {
            ProvenanceCheck.differences(recorded, from: now, source: source)
        }
        #expect(check(Self.statement(revision: "2")).isEmpty)
        #expect(check(Self.statement(builder: source + "/actions/runs/77")).isEmpty)
        #expect(check(Self.statement(builder: "https://github.com/other/repo/actions/runs/77")).count == 1)
        #expect(check(Self.statement(builder: "https://github.com/other/repo/actions/runs/77"), source: nil).isEmpty)
        #expect(check(Self.statement(builder: "https://evil.example/builder")).first?.hasPrefix("builder") == true)
        #expect(check(Self.statement(file: "bb")).first?.hasPrefix("dependency t/a/data.txt") == true)
        var parameter = Self.statement()
        parameter.predicate.buildDefinition.internalParameters["buildArg.X"] = "1"
        #expect(check(parameter).first?.hasPrefix("internal parameter buildArg.X") == true)
        var extra = Self.statement()
        extra.predicate.buildDefinition.resolvedDependencies.append(.init(name: "other", digest: ["sha256": "cc"]))
        #expect(check(extra) == ["dependency other not an input"])
    }
}
