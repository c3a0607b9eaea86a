import KilnBuild
import KilnCore
import KilnOCI
import KilnPin
import KilnProcessors
import KilnRegistry

extension Lane {
    /// The `image.platforms` key of a platform: its architecture, plus the variant where it is
    /// not the usual one (`arm64` for linux/arm64/v8, `armv7` for linux/arm/v7).
    package static func pinKey(_ platform: Platform) -> String {
        guard let variant = platform.variant, !(platform.architecture == "arm64" && variant == "v8") else {
            return platform.architecture
        }
        return platform.architecture + variant
    }

    static func readText(_ path: String) throws -> String {
        String(decoding: try ReadableFile.readAll(path: path, limit: 4 << 20), as: UTF8.self)
    }

    /// The pins a processor's file should hold for these digests, and those it does not hold yet
    /// (with what it holds instead).
    /// - Parameter index: the index digest, nil in a per-platform run (no index pin then).
    func pinEdits(
        _ processor: Processor, repository: Repository, platforms: [Platform], found: [Platform: Descriptor],
        index: Digest?
    ) throws
        -> (all: [PinEdit], changed: [ProcessorReport.PinChange])
    {
        // Pins already right when the file was discovered: no second read and parse (at
        // thousands of processors that parse was a twentieth of an unchanged lane).
        if let pins = processor.pins {
            let edits = wantedPins(pins, repository: repository, platforms: platforms, found: found, index: index)
            if edits.allSatisfy({ !$0.removes && pins.value(at: $0.path) == $0.value }) { return (edits, []) }
        }
        // Parsed once: pinning reads up to five keys of each file.
        let yaml = try YAMLPins.Parsed(Self.readText(processor.file), file: processor.displayPath)
        let edits = wantedPins(yaml, repository: repository, platforms: platforms, found: found, index: index)
        var changed = [ProcessorReport.PinChange]()
        for edit in edits {
            let old = yaml.value(at: edit.path)
            guard edit.removes || old != edit.value else { continue }
            changed.append(
                ProcessorReport.PinChange(
                    key: edit.dottedPath, old: old, new: edit.removes ? nil : edit.value,
                    line: yaml.line(of: edit.path)))
        }
        return (edits, changed)
    }

    /// The pins a file should hold: per platform, the index, or both (`pin:` in kiln.yaml; `auto`
    /// follows what the file has).
    func wantedPins(
        _ yaml: some PinReading, repository: Repository, platforms: [Platform], found: [Platform: Descriptor],
        index: Digest?
    ) -> [PinEdit] {
        var byPlatform = false
        var byIndex = false
        switch settings.config.pin {
        case .platforms: byPlatform = true
        case .oci: byIndex = true
        case .both: (byPlatform, byIndex) = (true, true)
        case .auto:
            byPlatform = yaml.contains(["image", "platforms"])
            byIndex = yaml.contains(["image", "oci"])
            if !byPlatform && !byIndex { byPlatform = true }
        }
        var edits = [PinEdit]()
        if byPlatform {
            // Every platform's image was found or built before pins are made.
            for platform in platforms {
                guard let image = found[platform] else { continue }
                edits.append(
                    PinEdit(
                        path: ["image", "platforms", Self.pinKey(platform)], value: "\(repository)@\(image.digest)"))
            }
        }
        if byIndex, let index { edits.append(PinEdit(path: ["image", "oci"], value: "\(repository)@\(index)")) }
        // A whole run: the pins of platforms no longer built go (`unbuilt-pins: remove`).
        if index != nil, settings.config.unbuiltPins == .remove {
            for key in Self.unbuiltPins(yaml, platforms: platforms) {
                edits.append(.removal(["image", "platforms", key]))
            }
        }
        return edits
    }

    /// The `image.platforms` keys a file holds for platforms the lane does not build for it.
    static func unbuiltPins(_ yaml: some PinReading, platforms: [Platform]) -> [String] {
        let built = Set(platforms.map(pinKey))
        return yaml.keys(at: ["image", "platforms"]).filter { !built.contains($0) }
    }

    /// What a stale report says of the pins of platforms no longer built (nil: there are none).
    static func unbuiltPinsProblem(_ yaml: some PinReading, platforms: [Platform]) -> String? {
        let unbuilt = unbuiltPins(yaml, platforms: platforms)
        guard !unbuilt.isEmpty else { return nil }
        let names = unbuilt.map { "image.platforms.\($0)" }.joined(separator: ", ")
        return
            "\(names) \(unbuilt.count == 1 ? "pins a platform" : "pin platforms") kiln no longer builds for this processor (it builds \(platforms.map(\.description).joined(separator: ", "))): the pinned image is of old inputs; kiln build --pin takes it out (unbuilt-pins: remove in kiln.yaml), or build the platform again"
    }

    /// Writes the pins into the processor's file; false when it already holds them.
    func writePins(_ processor: Processor, _ edits: [PinEdit]) throws -> Bool {
        try YAMLPins.write(edits, toFileAt: processor.file, displayPath: processor.displayPath)
    }

    /// `--check`: whether the file's pins are those of the current inputs.
    /// - Parameter missing: the platforms whose image of the current inputs was not found, with
    ///   why (the lookup's verdict, never the report's text).
    func check(
        _ processor: Processor, report: ProcessorReport, repository: Repository, platforms: [Platform],
        found: [Platform: Descriptor], missing: [(platform: Platform, reason: String?)], complete: Bool
    ) throws -> ProcessorReport {
        var report = report
        if !missing.isEmpty {
            report.status = .stale
            let yaml = try YAMLPins.Parsed(Self.readText(processor.file), file: processor.displayPath)
            // The stale pin's key: a missing platform's, else the index's, else `image`.
            let keys = missing.map { ["image", "platforms", Self.pinKey($0.platform)] } + [["image", "oci"]]
            let path = keys.first { yaml.contains($0) } ?? ["image"]
            report.location = ProcessorReport.Location(file: processor.displayPath, line: yaml.line(of: path))
            report.message =
                "inputs changed since the pins were written: "
                + missing.map { "\($0.platform) (\($0.reason ?? "changed"))" }.joined(separator: ", ")
            return report
        }
        let index = complete ? try self.index(platforms, found).descriptor.digest : nil
        report.index = index?.description
        if complete, let parsed = try? YAMLPins.Parsed(Self.readText(processor.file), file: processor.displayPath),
            let problem = Self.unbuiltPinsProblem(parsed, platforms: platforms)
        {
            report.status = .stale
            report.message = problem
            let key = Self.unbuiltPins(parsed, platforms: platforms)[0]
            report.location = ProcessorReport.Location(
                file: processor.displayPath, line: parsed.line(of: ["image", "platforms", key]))
            return report
        }
        let pins = try pinEdits(processor, repository: repository, platforms: platforms, found: found, index: index)
        report.pins = pins.changed.map { "\($0.key): \($0.new ?? "(removed)")" }
        report.pinChanges = pins.changed
        if pins.changed.isEmpty {
            report.status = .ok
        } else {
            report.status = .stale
            report.message =
                "pins differ from the current inputs' images: " + pins.changed.map(\.key).joined(separator: ", ")
            report.location = ProcessorReport.Location(file: processor.displayPath, line: pins.changed[0].line)
        }
        return report
    }
}

extension Lane {
    /// `kiln verify`: every digest the file pins exists in its registry, and the pins are those
    /// of the current inputs.
    func verify(
        _ processor: Processor, report: ProcessorReport, repository: Repository,
        keys: [(platform: Platform, key: InputKey)], found: [Platform: Descriptor], reasons: [Platform: String],
        complete: Bool
    ) async throws -> ProcessorReport {
        let platforms = keys.map(\.platform)
        var report = report
        let yaml = try YAMLPins.Parsed(Self.readText(processor.file), file: processor.displayPath)
        var problems = [String]()
        var pinned = [(path: [String], value: String)]()
        for platform in platforms {
            let path = ["image", "platforms", Self.pinKey(platform)]
            if let value = yaml.value(at: path) {
                pinned.append((path, value))
            }
        }
        if complete, let value = yaml.value(at: ["image", "oci"]) {
            pinned.append((["image", "oci"], value))
        }
        if pinned.isEmpty { problems.append("nothing is pinned") }
        if complete, let problem = Self.unbuiltPinsProblem(yaml, platforms: platforms) { problems.append(problem) }
        for pin in pinned {
            let name = pin.path.joined(separator: ".")
            guard let reference = try? ImageReference(parsing: pin.value), let digest = reference.digest else {
                problems.append("\(name) is '\(pin.value)', not REPOSITORY@sha256:…")
                continue
            }
            guard let head = try await client.headManifest(reference) else {
                problems.append("\(name) names \(digest.short), which \(reference.repository) does not have")
                continue
            }
            let platform = platforms.first { Self.pinKey($0) == pin.path.last }
            if let platform, let problem = try await pinnedPlatformProblem(reference, head, platform: platform) {
                problems.append("\(name) \(problem)")
                continue
            }
            let expected: Digest?
            if pin.path.last == "oci" {
                expected =
                    platforms.allSatisfy { found[$0] != nil } ? try index(platforms, found).descriptor.digest : nil
            } else {
                expected = platform.flatMap { found[$0]?.digest }
            }
            if expected != digest {
                let why = platform.flatMap { reasons[$0] }
                problems.append("\(name) is not the image of the current inputs" + (why.map { " (\($0))" } ?? ""))
                continue
            }
            guard settings.verifyProvenance else { continue }
            problems += try await provenanceProblems(
                processor, name: name, pinned: digest, platform: platform, platforms: platforms, keys: keys,
                found: found, repository: reference.repository)
        }
        report.status = problems.isEmpty ? .ok : .stale
        if !problems.isEmpty { report.message = problems.joined(separator: "; ") }
        return report
    }

    /// `verify --provenance` of one pin: provenance is attached to each platform image, the
    /// pinned one or every one the pinned index lists; what is wrong with it.
    private func provenanceProblems(
        _ processor: Processor, name: String, pinned digest: Digest, platform: Platform?, platforms: [Platform],
        keys: [(platform: Platform, key: InputKey)], found: [Platform: Descriptor], repository: Repository
    ) async throws -> [String] {
        let images = platform.map { [($0, digest)] } ?? platforms.compactMap { p in found[p].map { (p, $0.digest) } }
        var problems = [String]()
        for (imagePlatform, image) in images {
            guard let key = keys.first(where: { $0.platform == imagePlatform })?.key else { continue }
            if let problem = try await provenanceProblem(
                of: image, in: repository, processor: processor, platform: imagePlatform, key: key,
                name: "\(name) (\(imagePlatform))")
            {
                problems.append(problem)
            }
        }
        return problems
    }

    /// Why the image a platform pin names is no image for `platform` (nil when it is one).
    private func pinnedPlatformProblem(_ reference: ImageReference, _ head: Descriptor, platform: Platform)
        async throws -> String?
    {
        if !store.contains(head.digest) {
            let fetched = try await client.fetchManifest(
                ImageReference(repository: reference.repository, digest: head.digest))
            _ = try store.put(fetched.bytes, mediaType: fetched.mediaType)
        }
        return try await platformProblem(of: head, in: reference.repository, platform: platform)
    }
}
