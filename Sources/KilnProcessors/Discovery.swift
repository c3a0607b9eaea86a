import KilnCore
import KilnDockerfile
import KilnPin

/// Finds processors: every file under the root that one of the globs matches (`.dockerignore`
/// pattern syntax, `**` for any depth), read as a `registry.yaml`.
public enum Discovery {
    /// Folders never searched: version control, build output, dependency caches.
    static let skipped: Set<String> = [".git", ".hg", ".svn", ".build", "node_modules", "__pycache__", ".venv"]

    /// The processors under `config.root`, sorted by ref.
    /// - Throws: `YAMLFileError` for the first file that is not a valid `registry.yaml`, or when
    ///   two files give the same ref.
    public static func processors(_ config: LaneConfig) throws(YAMLFileError) -> [Processor] {
        let matcher = DockerIgnore(parsing: config.globs.joined(separator: "\n"))
        var files = [String]()
        do {
            try walk(config.root, relative: "", matcher: matcher, into: &files)
        } catch {
            throw YAMLFileError(error.description, location: nil, category: .io)
        }
        var result = [Processor]()
        var seen = [ProcessorRef: String]()
        for file in files.sorted() {
            let processor = try Processor.load(file: FilePaths.join(config.root, file), root: config.root)
            if let other = seen[processor.ref] {
                throw YAMLFileError("ref \(processor.ref) is also given by \(other)", location: SourceLocation(file: processor.file, line: 1))
            }
            seen[processor.ref] = processor.displayPath
            result.append(processor)
        }
        return result.sorted { $0.ref < $1.ref }
    }

    private static func walk(_ directory: String, relative: String, matcher: DockerIgnore, into files: inout [String], depth: Int = 0) throws(FileError) {
        guard depth < 64 else { return }
        for name in try FilePaths.contents(of: directory) {
            let path = FilePaths.join(directory, name)
            let relativePath = relative.isEmpty ? name : relative + "/" + name
            if FilePaths.isDirectory(path) {
                if skipped.contains(name) { continue }
                try walk(path, relative: relativePath, matcher: matcher, into: &files, depth: depth + 1)
            } else if matcher.excludes(relativePath) {
                files.append(relativePath)
            }
        }
    }
}
