import Dispatch
import KilnCore
import KilnDockerfile
import KilnPin
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Finds processors: every file under the root that one of the globs matches (`.dockerignore`
/// pattern syntax, `**` for any depth), read as a `registry.yaml`.
package enum Discovery {
    /// Folders never searched: version control, build output, dependency caches.
    static let skipped: Set<String> = [".git", ".hg", ".svn", ".build", "node_modules", "__pycache__", ".venv"]

    /// The processors under `config.root`, sorted by ref. Processors that give the same ref as
    /// another enabled one carry the other files in `duplicates` (a disabled one conflicts with
    /// nothing), so the lane fails just those and builds the rest.
    /// - Throws: `YAMLFileError` for the first file that is not a valid `registry.yaml`; when no
    ///   file matches the globs; when a glob `kiln.yaml` lists matches nothing.
    package static func processors(_ config: LaneConfig) throws(YAMLFileError) -> [Processor] {
        let matcher = DockerIgnore(parsing: config.globs.joined(separator: "\n"), dialect: .glob)
        var files = [String]()
        do {
            try walk(config.root, relative: "", matcher: matcher, into: &files)
        } catch {
            throw YAMLFileError(error.description, location: nil, category: .io)
        }
        try checkGlobs(config, found: files)
        var result = try load(files.sorted(), config)
        var byRef = [ProcessorRef: [Int]]()
        for (index, processor) in result.enumerated() where processor.enabled {
            byRef[processor.ref, default: []].append(index)
        }
        for indices in byRef.values where indices.count > 1 {
            for index in indices {
                result[index].duplicates = indices.filter { $0 != index }.map { result[$0].displayPath }
            }
        }
        return result.sorted { ($0.ref, $0.displayPath) < ($1.ref, $1.displayPath) }
    }

    /// Reads the files on every core, each thread resolving paths with its own `RealPaths`; the
    /// error thrown is the first file's in `files` order, as one thread reading them in turn
    /// would throw. At thousands of processors, reading them was most of discovery, and while it
    /// ran nothing else could.
    static func load(_ files: [String], _ config: LaneConfig) throws(YAMLFileError) -> [Processor] {
        let width = Swift.max(1, Swift.min(files.count / 64, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        let loaded = Mutex([Result<Processor, YAMLFileError>?](repeating: nil, count: files.count))
        DispatchQueue.concurrentPerform(iterations: width) { lane in
            let realPaths = RealPaths()
            for index in stride(from: lane, to: files.count, by: width) {
                let result = Result { () throws(YAMLFileError) -> Processor in
                    try Processor.load(
                        file: FilePaths.join(config.root, files[index]), root: config.root,
                        contextBase: config.contextBase, realPaths: realPaths)
                }
                loaded.withLock { $0[index] = result }
            }
        }
        return try loaded.withLock { $0 }.map { result throws(YAMLFileError) in try result!.get() }
    }

    /// No processor at all is an error naming the globs; so is a glob of `kiln.yaml` (not a
    /// default one) that matches nothing, which is almost always a typo or a moved folder.
    static func checkGlobs(_ config: LaneConfig, found files: [String]) throws(YAMLFileError) {
        let location = config.file.map { SourceLocation(file: $0, line: config.globsLine ?? 1) }
        guard !files.isEmpty else {
            throw YAMLFileError(
                "no registry.yaml under \(config.root) matches the processor globs \(config.globs.joined(separator: ", "))\(config.globsFromFile ? "" : " (the defaults; set processors: in kiln.yaml)")",
                location: location)
        }
        guard config.globsFromFile else { return }
        for glob in config.globs where !glob.hasPrefix("!") {
            let single = DockerIgnore(parsing: glob, dialect: .glob)
            if !files.contains(where: { single.excludes($0) }) {
                throw YAMLFileError(
                    "the processor glob '\(glob)' matches no file under \(config.root)", location: location)
            }
        }
    }

    /// Walks the tree without following symlinks to directories: a link must not take discovery
    /// out of the repository, nor around in a loop. Kinds come from the directory entries, so a
    /// file costs no `lstat` where the file system records them; and a file is matched against
    /// the globs by its own path only while no folder above it matched (`parentIncluded`).
    private static func walk(
        _ directory: String, relative: String, matcher: DockerIgnore, into files: inout [String],
        parentIncluded: Bool = true, depth: Int = 0
    ) throws(FileError) {
        guard depth < 64 else { return }
        for (name, recorded) in try FilePaths.entries(of: directory) {
            let path = FilePaths.join(directory, name)
            let relativePath = relative.isEmpty ? name : relative + "/" + name
            let kind: FileKind
            if let recorded {
                kind = recorded
            } else {
                var info = stat()
                guard lstat(path, &info) == 0 else { continue }
                kind = FileKind(mode: info.st_mode)
            }
            if kind == .directory {
                if skipped.contains(name) { continue }
                let matched = matcher.excludes(relativePath, parentIncluded: parentIncluded)
                try walk(
                    path, relative: relativePath, matcher: matcher, into: &files, parentIncluded: !matched,
                    depth: depth + 1)
            } else if (kind == .regular || kind == .symlink || kind == .fifo)
                && matcher.excludes(relativePath, parentIncluded: parentIncluded)
            {
                // Symlinks and FIFOs are listed so that reading them fails with a clear error
                // (a link out of the repository, a file that is not regular).
                files.append(relativePath)
            }
        }
    }
}
