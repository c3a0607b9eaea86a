import KilnCore
import KilnDockerfile
import KilnLayers
import KilnOCI

/// `COPY` and `ADD` with Docker's rules: sources relative to the context (or another stage or
/// image with `--from`), a directory's contents copied rather than the directory, the
/// destination a directory when it ends in `/`, already is one, or receives several sources;
/// relative destinations under `WORKDIR`; modes kept, owners `0:0` unless `--chown`.
extension StageBuilder {
    /// One thing to copy, before it is placed.
    private struct Source {
        enum Kind {
            case file(LayerEntry.FileSource)
            case directory
            case symlink(String)
            /// A hard link to another item of the same group (its relative path).
            case hardLink(String)
        }
        /// Path below the copied root (`""` for the root itself).
        var relative: String
        var kind: Kind
        var mode: UInt32
        var uid = 0
        var gid = 0
    }

    /// One resolved source: a root (file or directory) and, for a directory, what is inside.
    private struct Group {
        var name: String
        var isDirectory: Bool
        var items: [Source]
        /// Keeps the path from the context root (`--parents`).
        var parentsPath: String?
        /// Owners come from the source (archives), not `0:0`.
        var keepsOwners = false
    }

    /// What `--chown`, `--chmod` and `--exclude` say, expanded and checked.
    private struct CopyFlags {
        var owner: (uid: Int, gid: Int)?
        var chmod: UInt32?
        var excludes: DockerIgnore?
    }

    /// The entries of one `COPY`/`ADD` layer: its flags, its sources gathered into groups, the
    /// destination decided, and every group placed under it.
    mutating func copyEntries(_ copy: CopyCommand, isAdd: Bool, _ instruction: Instruction) throws -> [LayerEntry] {
        let location = instruction.location
        let keyword = isAdd ? "ADD" : "COPY"
        let sources = try copy.sources.map { (source) throws(BuildError) in try expand(source, instruction) }
        let rawDestination = try expand(copy.destination, instruction)
        guard !rawDestination.isEmpty else {
            throw BuildError.input("\(keyword) needs a destination", location: location)
        }
        let endsAsDirectory =
            rawDestination.hasSuffix("/") || rawDestination == "." || rawDestination.hasSuffix("/.")
            || rawDestination == ".."
        if sources.count + copy.heredocs.count > 1 && !endsAsDirectory {
            throw BuildError.input(
                "\(keyword) with more than one source needs a directory destination ending in '/', e.g. \(keyword) a b \(rawDestination)/",
                location: location)
        }
        let flags = try copyFlags(copy, instruction)
        let groups = try sourceGroups(copy, sources: sources, isAdd: isAdd, excludes: flags.excludes, instruction)
        let filesystem = try state.filesystem()
        let destination = String(Self.absolute(rawDestination, from: state.runtime.workingDir ?? "/").dropFirst())
        let intoDirectory =
            endsAsDirectory || groups.count > 1 || (!destination.isEmpty && filesystem.isDirectory(destination))
        return try place(
            groups, at: destination, intoDirectory: intoDirectory, flags: flags, in: filesystem, keyword, location)
    }

    private mutating func copyFlags(_ copy: CopyCommand, _ instruction: Instruction) throws -> CopyFlags {
        let location = instruction.location
        let owner = try copy.chown.map { (chown) throws in try resolveOwner(try expand(chown, instruction), location) }
        let chmod = try copy.chmod.map { (text) throws(BuildError) -> UInt32 in
            let expanded = try expand(text, instruction)
            guard let mode = UInt32(expanded, radix: 8), mode <= 0o7777 else {
                throw .input("--chmod takes an octal mode such as 0755, not '\(expanded)'", location: location)
            }
            return mode
        }
        let excludes = try excludePatterns(copy, instruction)
        return CopyFlags(owner: owner, chmod: chmod, excludes: excludes)
    }

    /// Every source (context paths, another stage's or image's paths, heredocs) as groups.
    private mutating func sourceGroups(
        _ copy: CopyCommand, sources: [String], isAdd: Bool, excludes: DockerIgnore?, _ instruction: Instruction
    ) throws -> [Group] {
        let location = instruction.location
        var groups = [Group]()
        for source in sources {
            if isAdd, source.contains("://") || source.hasPrefix("git@") {
                throw BuildError.input(
                    "ADD of a URL ('\(source)') is not supported; download it in the build context or use COPY",
                    location: location)
            }
            if let from = copy.from {
                groups += try groupsFromImage(
                    try expand(from, instruction), source: source, excludes: excludes, location: location)
            } else {
                groups += try groupsFromContext(
                    source, isAdd: isAdd, parents: copy.parents, excludes: excludes, location: location)
            }
        }
        for heredoc in copy.heredocs {
            var content = heredoc.content
            if heredoc.expands {
                do {
                    content = try WordExpander(escape: dockerfile.escape, raw: true).expand(content) { lookup($0) }
                } catch {
                    throw BuildError.input(
                        "cannot substitute variables in heredoc '\(heredoc.name)': \(error)", location: location)
                }
            }
            groups.append(
                Group(
                    name: heredoc.name, isDirectory: false,
                    items: [Source(relative: "", kind: .file(.bytes(Array(content.utf8))), mode: 0o644)]))
        }
        return groups
    }

    /// The layer entries for `groups` copied to `destination`: each group's missing parents, then
    /// its items, with owners and modes as the flags say; a later entry for a path replaces an
    /// earlier one in place.
    private func place(
        _ groups: [Group], at destination: String, intoDirectory: Bool, flags: CopyFlags,
        in filesystem: ImageFilesystem,
        _ keyword: String, _ location: SourceLocation
    ) throws -> [LayerEntry] {
        var placed = [String: LayerEntry]()
        var order = [String]()
        func place(_ entry: LayerEntry) {
            let key = entry.path.description
            if placed.updateValue(entry, forKey: key) == nil { order.append(key) }
        }
        for group in groups {
            let rootResolved = try groupRoot(
                group, at: destination, intoDirectory: intoDirectory, in: filesystem, keyword, location)
            for entry in try parents(of: rootResolved + "/x", in: filesystem, owner: flags.owner)
            where placed[entry.path.description] == nil {
                if !rootResolved.isEmpty || entry.path.description != "" { place(entry) }
            }
            for item in group.items {
                if let entry = try entry(for: item, of: group, under: rootResolved, flags: flags, in: filesystem) {
                    place(entry)
                }
            }
        }
        return order.map { placed[$0]! }
    }

    /// Where a group's root lands, resolved in the image: a directory's contents go into the
    /// destination; a file goes into it (a directory destination) or becomes it.
    private func groupRoot(
        _ group: Group, at destination: String, intoDirectory: Bool, in filesystem: ImageFilesystem, _ keyword: String,
        _ location: SourceLocation
    ) throws -> String {
        var root: String
        if group.isDirectory {
            root = group.parentsPath.map { ImageFilesystem.join(destination, $0) } ?? destination
        } else if intoDirectory {
            root = ImageFilesystem.join(destination, group.parentsPath ?? group.name)
        } else {
            root = destination
        }
        let resolved =
            group.isDirectory || intoDirectory
            ? filesystem.resolve(root)
            : ImageFilesystem.join(
                filesystem.resolve(ImageFilesystem.parent(of: root)), FilePaths.lastComponent(of: "/" + root))
        guard !resolved.isEmpty || group.isDirectory else {
            throw BuildError.input(
                "\(keyword) cannot replace the image's root directory with a file", location: location)
        }
        root = resolved
        return root
    }

    /// The entry for one item of a group placed under `root`; nil for the image root itself.
    private func entry(
        for item: Source, of group: Group, under root: String, flags: CopyFlags, in filesystem: ImageFilesystem
    ) throws -> LayerEntry? {
        let path = item.relative.isEmpty ? root : ImageFilesystem.join(root, item.relative)
        if path.isEmpty { return nil }
        if case .directory = item.kind, item.relative.isEmpty, let node = filesystem.node(path), node.kind == .directory
        {
            // An existing destination directory keeps its own metadata.
            return .directory(try LayerPath(path), mode: node.mode, uid: node.uid, gid: node.gid)
        }
        let layerPath = try LayerPath(path)
        let uid = flags.owner?.uid ?? (group.keepsOwners ? item.uid : 0)
        let gid = flags.owner?.gid ?? (group.keepsOwners ? item.gid : 0)
        switch item.kind {
        case .file(let source):
            return .file(layerPath, source, mode: flags.chmod ?? item.mode, uid: uid, gid: gid)
        case .directory:
            return .directory(layerPath, mode: flags.chmod ?? item.mode, uid: uid, gid: gid)
        case .symlink(let target):
            return LayerEntry(path: layerPath, content: .symlink(target: target), mode: 0o777, uid: uid, gid: gid)
        case .hardLink(let target):
            let linked = try LayerPath(ImageFilesystem.join(root, target))
            return LayerEntry(
                path: layerPath, content: .hardLink(target: linked), mode: flags.chmod ?? item.mode, uid: uid, gid: gid)
        }
    }

    // MARK: - Sources from the context

    /// Records the context items a `COPY`/`ADD` reads, as `groupsFromContext` would visit them.
    mutating func recordReads(_ copy: CopyCommand, _ instruction: Instruction) throws {
        reads += try contextReads(copy, instruction)
    }

    /// The context items a `COPY`/`ADD` reads (none with `--from`).
    /// The context items a `RUN --mount=type=bind` (the default type) without `from=` makes
    /// visible to the step: its `source` (default the whole context), as a COPY of it would read.
    func bindMountReads(_ run: RunCommand, _ instruction: Instruction) throws -> [BuildContext.Item] {
        var items = [BuildContext.Item]()
        for mount in run.mounts {
            let fields = RunCommand.mountFields(mount)
            guard (fields["type"] ?? "bind") == "bind", fields["from"] == nil else { continue }
            let source = fields["source"] ?? fields["src"] ?? "."
            items += try contextReads(CopyCommand(sources: [source], destination: "/"), instruction)
        }
        return items
    }

    /// `COPY --exclude` patterns, expanded, as one matcher; nil without any.
    func excludePatterns(_ copy: CopyCommand, _ instruction: Instruction) throws(BuildError) -> DockerIgnore? {
        guard !copy.excludes.isEmpty else { return nil }
        return DockerIgnore(
            parsing: try copy.excludes.map { (pattern) throws(BuildError) in try expand(pattern, instruction) }
                .joined(separator: "\n"))
    }

    func contextReads(_ copy: CopyCommand, _ instruction: Instruction) throws -> [BuildContext.Item] {
        guard copy.from == nil else { return [] }
        let excludes = try excludePatterns(copy, instruction)
        var result = [BuildContext.Item]()
        for source in copy.sources {
            let expanded = try expand(source, instruction)
            if expanded.contains("://") || expanded.hasPrefix("git@") { continue }
            for item in try context.resolve(source: expanded, at: instruction.location) {
                if let excludes, excludes.excludes(item.path) { continue }
                result.append(item)
                if item.kind == .directory { result += try context.walk(item, excluding: excludes) }
            }
        }
        return result
    }

    private mutating func groupsFromContext(
        _ source: String, isAdd: Bool, parents: Bool, excludes: DockerIgnore?, location: SourceLocation
    ) throws -> [Group] {
        var groups = [Group]()
        for item in try context.resolve(source: source, at: location) {
            if let excludes, excludes.excludes(item.path) { continue }
            let name = FilePaths.lastComponent(of: "/" + item.path)
            let parentsPath = parents ? Self.parentsPath(item.path, source: source) : nil
            switch item.kind {
            case .directory:
                var items = [Source(relative: "", kind: .directory, mode: item.mode)]
                for child in try context.walk(item, excluding: excludes) {
                    let relative = String(child.path.dropFirst(item.path.isEmpty ? 0 : item.path.count + 1))
                    items.append(contextSource(child, relative: relative))
                }
                groups.append(Group(name: name, isDirectory: true, items: items, parentsPath: parentsPath))
            case .file where isAdd && LayerReader.isArchive(context.diskPath(item)):
                groups.append(try archiveGroup(context.diskPath(item), name: name, location: location))
            case .file, .symlink:
                groups.append(
                    Group(
                        name: name, isDirectory: false, items: [contextSource(item, relative: "")],
                        parentsPath: parentsPath))
            }
        }
        return groups
    }

    private func contextSource(_ item: BuildContext.Item, relative: String) -> Source {
        switch item.kind {
        case .file: Source(relative: relative, kind: .file(.file(path: context.diskPath(item))), mode: item.mode)
        case .directory: Source(relative: relative, kind: .directory, mode: item.mode)
        case .symlink(let target): Source(relative: relative, kind: .symlink(target), mode: 0o777)
        }
    }

    /// `--parents`: the source's path from the context root, or from a `/./` pivot in it.
    static func parentsPath(_ path: String, source: String) -> String {
        if let pivot = source.range(of: "/./") {
            let prefix = BuildContextPaths.clean(String(source[..<pivot.lowerBound]))
            if !prefix.isEmpty, path.hasPrefix(prefix + "/") { return String(path.dropFirst(prefix.count + 1)) }
        }
        return path
    }

    /// A local tar archive `ADD` unpacks into the destination, owners as recorded.
    private mutating func archiveGroup(_ path: String, name: String, location: SourceLocation) throws -> Group {
        let reader = try LayerReader(path: path)
        var items = [Source(relative: "", kind: .directory, mode: 0o755)]
        var files = [String: LayerEntry.FileSource]()
        while let member = try reader.next() {
            if member.path.isEmpty { continue }
            var source = Source(
                relative: member.path, kind: .directory, mode: member.mode, uid: member.uid, gid: member.gid)
            switch member.kind {
            case .directory: source.kind = .directory
            case .regularFile:
                let staged = try stageFile { sink throws in try reader.readData(into: sink) }
                files[member.path] = .file(path: staged)
                source.kind = .file(.file(path: staged))
            case .symlink(let target): source.kind = .symlink(target)
            case .hardLink(let target):
                guard files[target] != nil else {
                    throw BuildError.input(
                        "ADD \(name): member '\(member.path)' is a hard link to '\(target)', which is not a regular file earlier in the archive",
                        location: location)
                }
                source.kind = .hardLink(target)
            case .other:
                throw BuildError.input(
                    "ADD \(name): member '\(member.path)' is a device node or FIFO; kiln writes files, directories and links into layers, not those",
                    location: location)
            }
            items.append(source)
        }
        var group = Group(name: name, isDirectory: true, items: items)
        group.keepsOwners = true
        return group
    }

    /// Writes bytes to a new file under the build's scratch directory.
    mutating func stageFile(_ write: (AtomicFileWriter) throws -> Void) throws -> String {
        stagedFiles += 1
        let path = FilePaths.join(scratch, "f\(stagedFiles)")
        let writer = try AtomicFileWriter(destination: path)
        try write(writer)
        try writer.commit()
        return path
    }

    // MARK: - Sources from another stage or image

    private mutating func groupsFromImage(
        _ from: String, source: String, excludes: DockerIgnore?, location: SourceLocation
    ) throws
        -> [Group]
    {
        var other: ImageState
        if let stage = dockerfile.stage(named: from), let built = stages[stage.index] {
            other = built
        } else if let image = images[from] {
            other = image
        } else {
            throw BuildError.input(
                "COPY --from names '\(from)', which is neither an earlier stage nor an image", location: location)
        }
        let filesystem = try other.filesystem()
        let components = try BuildContext.components(of: source, at: location)
        var matches = [String]()
        if components.contains(where: Glob.hasWildcard) {
            let pattern = components.map { Array($0) }
            matches = filesystem.nodes.keys.filter { path in
                let parts = path.split(separator: "/")
                return parts.count == pattern.count && zip(pattern, parts).allSatisfy { Glob.matches($0, Array($1)) }
            }.sorted()
        } else {
            let path = filesystem.resolve(components.joined(separator: "/"))
            if filesystem.node(path) != nil { matches = [path] }
        }
        guard !matches.isEmpty else {
            throw BuildError.input("'\(source)' does not exist in '\(from)'", location: location)
        }
        var groups = [Group]()
        for match in matches {
            let path = filesystem.resolve(match)
            guard let node = filesystem.node(path) else { continue }
            let name = FilePaths.lastComponent(of: "/" + match)
            if node.kind == .directory {
                var items = [Source(relative: "", kind: .directory, mode: node.mode)]
                for child in filesystem.descendants(of: path) {
                    let relative = String(child.dropFirst(path.isEmpty ? 0 : path.count + 1))
                    if let excludes, excludes.excludes(relative) { continue }
                    if let item = try imageSource(filesystem, child, relative: relative) { items.append(item) }
                }
                groups.append(Group(name: name, isDirectory: true, items: items))
            } else if let item = try imageSource(filesystem, path, relative: "") {
                groups.append(Group(name: name, isDirectory: false, items: [item]))
            }
        }
        return groups
    }

    private mutating func imageSource(_ filesystem: ImageFilesystem, _ path: String, relative: String) throws -> Source?
    {
        guard let node = filesystem.node(path) else { return nil }
        switch node.kind {
        case .directory: return Source(relative: relative, kind: .directory, mode: node.mode)
        case .symlink(let target): return Source(relative: relative, kind: .symlink(target), mode: 0o777)
        case .other: return nil
        case .file:
            switch node.content {
            case .source(let source)?: return Source(relative: relative, kind: .file(source), mode: node.mode)
            case .member(let blob, let member)?:
                let staged = try stageFile { sink throws in
                    let reader = try LayerReader(path: blob)
                    while let next = try reader.next(), next.path != member {}
                    try reader.readData(into: sink)
                }
                return Source(relative: relative, kind: .file(.file(path: staged)), mode: node.mode)
            case nil: return nil
            }
        }
    }

    // MARK: - Owners

    /// `--chown=user[:group]`, names looked up in the image's `/etc/passwd` and `/etc/group`.
    /// A user without a group uses the user's primary group (the same number for a numeric id).
    mutating func resolveOwner(_ spec: String, _ location: SourceLocation) throws -> (uid: Int, gid: Int) {
        let parts = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let filesystem = try state.filesystem()
        func table(_ path: String) throws -> [[String]] {
            guard let bytes = try filesystem.read(path) else { return [] }
            return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map {
                $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            }
        }
        var uid: Int
        var primaryGroup: Int?
        if let number = Int(parts[0]) {
            uid = number
        } else {
            guard let row = try table("etc/passwd").first(where: { $0.count > 3 && $0[0] == parts[0] }),
                let number = Int(row[2])
            else {
                throw BuildError.input("--chown: no user '\(parts[0])' in the image's /etc/passwd", location: location)
            }
            uid = number
            primaryGroup = Int(row[3])
        }
        guard parts.count == 2 else { return (uid, primaryGroup ?? uid) }
        if let number = Int(parts[1]) { return (uid, number) }
        guard let row = try table("etc/group").first(where: { $0.count > 2 && $0[0] == parts[1] }),
            let gid = Int(row[2])
        else {
            throw BuildError.input("--chown: no group '\(parts[1])' in the image's /etc/group", location: location)
        }
        return (uid, gid)
    }
}

enum BuildContextPaths {
    static func clean(_ path: String) -> String {
        path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }
}
