import KilnCore
import KilnOCI
import KilnPin

/// What `build.context` in a `registry.yaml` is relative to. Real repositories differ: in
/// `tools/` layouts the Dockerfile copies `code/libs/…` and `tools/…`, so `context: .` is the
/// repository root; in older `code/apps/core/processors/` layouts it copies `app/`, so `.` is the
/// processor's folder. `kiln.yaml` says which (`context-relative-to`).
package enum ContextBase: String, Sendable, CaseIterable {
    case root
    case processor

    /// The other one, for the hint when a `COPY` source is missing.
    package var other: ContextBase { self == .root ? .processor : .root }
}

/// One processor as its `registry.yaml` describes it: where its Dockerfile and build context are,
/// what to build it for, and where its pins live.
package struct Processor: Sendable {
    package var ref: ProcessorRef
    /// The `registry.yaml`, absolute.
    package var file: String
    /// The same, relative to the repository root, for messages.
    package var displayPath: String
    /// The build context directory (absolute, inside the repository).
    package var context: String
    /// `build.context` as written, and what it is relative to.
    package var contextText: String
    package var contextBase: ContextBase
    /// The same `build.context` taken relative to the other base, when that is a directory
    /// inside the repository: where a missing `COPY` source is looked for, to say which setting
    /// to change.
    package var alternativeContext: String?
    /// The Dockerfile (`build.dockerfile`, relative to the processor's folder).
    package var dockerfile: String
    /// `build.platforms`, when the file narrows the lane's platforms (possibly to none).
    package var platforms: [Platform]?
    /// `build.args`.
    package var buildArgs: [String: String]
    /// `enabled: false` keeps a processor listed but out of the lane.
    package var enabled: Bool
    /// Other enabled `registry.yaml` files giving the same ref (set by `Discovery`): a processor
    /// with duplicates is not built.
    package var duplicates: [String] = []
    /// The pins the file held when it was read.
    package var pins: PinSnapshot?

    /// Reads a processor's `registry.yaml`.
    /// - Parameters:
    ///   - root: the repository root, absolute and with symlinks resolved.
    ///   - realPaths: where symlinks are resolved; one shared by a whole discovery pass resolves
    ///     each folder once.
    /// - Throws: `YAMLFileError` naming the file, the key and its line: for a missing or
    ///   malformed key, a context or Dockerfile outside the repository, or a platform kiln cannot
    ///   build.
    package static func load(
        file: String, root: String, contextBase: ContextBase = .root, realPaths: RealPaths = RealPaths()
    ) throws(YAMLFileError) -> Processor {
        let display = file.hasPrefix(root + "/") ? String(file.dropFirst(root.count + 1)) : file
        if let real = realPaths.resolve(file), !FilePaths.isInside(real, root: root) {
            throw YAMLFileError(
                "\(display) is a symlink to \(real), outside the repository; kiln reads and pins files inside it only",
                location: nil)
        }
        let document = try YAMLDocument(path: file)
        let refText = try document.requiredString("ref", example: "llm/litellm@1")
        guard let ref = ProcessorRef(parsing: refText) else {
            throw YAMLFileError(
                "'ref' must read NAMESPACE/NAME@VERSION, e.g. llm/litellm@1, not '\(refText)'",
                location: document.location(document.node("ref")))
        }
        guard document.node("build") != nil else {
            throw YAMLFileError(
                "'build' is missing; add build: {context: ., dockerfile: Dockerfile}",
                location: SourceLocation(file: file, line: 1))
        }
        try checkBuildKeys(document)
        let folder = FilePaths.directory(of: file)
        let contextText = try document.string("build.context") ?? "."
        let contextLocation = document.location(document.node("build.context") ?? document.node("build"))
        let base = contextBase == .root ? root : folder
        let context = try inside(
            contextText, from: base, root: root, key: "build.context", location: contextLocation, realPaths: realPaths)
        guard FilePaths.isDirectory(context) else {
            throw YAMLFileError(
                "'build.context' names '\(contextText)', which is not a directory (it is taken relative to \(contextBase == .root ? "the repository root" : "the processor's folder"); kiln.yaml's context-relative-to says which)",
                location: contextLocation)
        }
        let otherBase = contextBase == .root ? folder : root
        let alternative =
            (try? inside(
                contextText, from: otherBase, root: root, key: "build.context", location: contextLocation,
                realPaths: realPaths))
            .flatMap { FilePaths.isDirectory($0) && $0 != context ? $0 : nil }

        let dockerfileText = try document.string("build.dockerfile") ?? "Dockerfile"
        let dockerfileLocation = document.location(document.node("build.dockerfile") ?? document.node("build"))
        let dockerfile = try inside(
            dockerfileText, from: folder, root: root, key: "build.dockerfile", location: dockerfileLocation,
            realPaths: realPaths)
        guard FilePaths.exists(dockerfile) else {
            throw YAMLFileError(
                "'build.dockerfile' names '\(dockerfileText)', which does not exist next to \(FilePaths.lastComponent(of: file))",
                location: dockerfileLocation)
        }
        guard FileKind.of(path: dockerfile) == .regular else {
            throw YAMLFileError(
                "'build.dockerfile' names '\(dockerfileText)', which is not a regular file",
                location: dockerfileLocation)
        }
        var platforms: [Platform]?
        if let texts = try document.strings("build.platforms") {
            do {
                platforms = try Platform.buildable(texts)
            } catch {
                throw YAMLFileError(
                    "'build.platforms' has \(error)", location: document.location(document.node("build.platforms")))
            }
        }
        return Processor(
            ref: ref, file: file, displayPath: display, context: context, contextText: contextText,
            contextBase: contextBase,
            alternativeContext: alternative, dockerfile: dockerfile, platforms: platforms,
            buildArgs: try document.stringMap("build.args") ?? [:], enabled: try document.bool("enabled") ?? true,
            pins: PinSnapshot(YAMLPins.Parsed(root: document.root.map { .mapping($0) })))
    }

    /// The `build:` keys kiln reads.
    static let buildKeys = ["context", "dockerfile", "platforms", "args"]

    /// `build:` keeps keys other tools read (`port`), but a near miss of one kiln reads
    /// (`dockerfle:`) would silently build with the default: an error naming the key and its line.
    static func checkBuildKeys(_ document: YAMLDocument) throws(YAMLFileError) {
        guard case .mapping(let build)? = document.node("build") else { return }
        for entry in build {
            guard let key = entry.key.string, !buildKeys.contains(key),
                let meant = EditDistance.nearest(to: key.lowercased(), in: buildKeys, limit: 2)
            else { continue }
            throw YAMLFileError(
                "'build.\(key)' is not a key kiln reads; did you mean 'build.\(meant)'? (kiln reads build.\(buildKeys.joined(separator: ", build.")))",
                location: document.location(entry.key))
        }
    }

    /// `path` taken from `base`, which must stay inside the repository `root`: not absolute, no
    /// `..` above the root, no symlink leading out of it.
    static func inside(
        _ path: String, from base: String, root: String, key: String, location: SourceLocation, realPaths: RealPaths
    ) throws(YAMLFileError) -> String {
        guard !path.hasPrefix("/") else {
            throw YAMLFileError(
                "'\(key)' is the absolute path '\(path)'; it must be a path inside the repository, relative to it",
                location: location)
        }
        let joined = FilePaths.clean(FilePaths.join(base, path))
        guard FilePaths.isInside(joined, root: root) else {
            throw YAMLFileError(
                "'\(key)' is '\(path)', which leads out of the repository (\(root))", location: location)
        }
        // Through symlinks, too: what the path really names must be inside the repository.
        if let real = realPaths.resolve(joined), !FilePaths.isInside(real, root: root) {
            throw YAMLFileError(
                "'\(key)' is '\(path)', which leads out of the repository through a symlink (to \(real))",
                location: location)
        }
        return joined
    }
}
