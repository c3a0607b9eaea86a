import KilnCore
import KilnOCI
import KilnPin

/// One processor as its `registry.yaml` describes it: where its Dockerfile and build context are,
/// what to build it for, and where its pins live.
public struct Processor: Sendable {
    public var ref: ProcessorRef
    /// The `registry.yaml`, absolute.
    public var file: String
    /// The same, relative to the repository root, for messages.
    public var displayPath: String
    /// The build context directory (`build.context`, relative to the repository root).
    public var context: String
    /// The Dockerfile (`build.dockerfile`, relative to the processor's folder).
    public var dockerfile: String
    /// `build.platforms`, when the file narrows the lane's platforms.
    public var platforms: [Platform]?
    /// `build.args`.
    public var buildArgs: [String: String]
    /// `enabled: false` keeps a processor listed but out of the lane.
    public var enabled: Bool

    /// Reads a processor's `registry.yaml`.
    /// - Throws: `YAMLFileError` naming the file, the key and its line.
    public static func load(file: String, root: String) throws(YAMLFileError) -> Processor {
        let document = try YAMLDocument(path: file)
        let display = file.hasPrefix(root + "/") ? String(file.dropFirst(root.count + 1)) : file
        let refText = try document.requiredString("ref", example: "llm/litellm@1")
        guard let ref = ProcessorRef(parsing: refText) else {
            throw YAMLFileError("'ref' must read NAMESPACE/NAME@VERSION, e.g. llm/litellm@1, not '\(refText)'", location: document.location(document.node("ref")))
        }
        guard document.node("build") != nil else {
            throw YAMLFileError("'build' is missing; add build: {context: ., dockerfile: Dockerfile}", location: SourceLocation(file: file, line: 1))
        }
        let folder = FilePaths.directory(of: file)
        let contextText = try document.string("build.context") ?? "."
        let context = FilePaths.clean(contextText.hasPrefix("/") ? contextText : FilePaths.join(root, contextText))
        guard FilePaths.isDirectory(context) else {
            throw YAMLFileError(
                "'build.context' names '\(contextText)', which is not a directory under the repository root \(root)",
                location: document.location(document.node("build.context")))
        }
        let dockerfileText = try document.string("build.dockerfile") ?? "Dockerfile"
        let dockerfile = FilePaths.clean(dockerfileText.hasPrefix("/") ? dockerfileText : FilePaths.join(folder, dockerfileText))
        guard FilePaths.exists(dockerfile) else {
            throw YAMLFileError(
                "'build.dockerfile' names '\(dockerfileText)', which does not exist next to \(FilePaths.lastComponent(of: file))",
                location: document.location(document.node("build.dockerfile") ?? document.node("build")))
        }
        var platforms: [Platform]?
        if let texts = try document.strings("build.platforms") {
            var parsed = [Platform]()
            for text in texts {
                do {
                    parsed.append(try Platform(parsing: text.contains("/") ? text : "linux/" + text))
                } catch {
                    throw YAMLFileError("'build.platforms' has '\(text)': \(error)", location: document.location(document.node("build.platforms")))
                }
            }
            platforms = parsed
        }
        return Processor(
            ref: ref, file: file, displayPath: display, context: context, dockerfile: dockerfile, platforms: platforms,
            buildArgs: try document.stringMap("build.args") ?? [:], enabled: try document.bool("enabled") ?? true)
    }
}
