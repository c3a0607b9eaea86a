import KilnCore
import KilnDockerfile
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The build context: a directory and the `.dockerignore` rules that hide part of it. Sources
/// are named relative to its root; nothing outside it can be read, and ignored paths do not
/// exist as far as `COPY` is concerned.
package struct BuildContext: Sendable {
    package let root: String
    package let ignore: DockerIgnore
    /// The ignore file used, if any.
    package let ignoreFile: String?
    /// The absolute paths `hiding` named: a set shared by every processor's context, not
    /// patterns, so hiding every `registry.yaml` of a monorepo costs one lookup per path
    /// rather than one match per file (which made a lane's keys grow with the square of its
    /// processors), and making a context costs nothing per processor of the lane.
    let hidden: Set<String>
    /// Walks already made by another processor's context of the same run.
    let walks: WalkMemo?
    /// Where the directories listed and the paths followed are written down, when a caller
    /// wants to check later, by `lstat` alone, that resolving the same sources would give the
    /// same items.
    let consulted: Consulted?

    /// - Parameter hiding: absolute paths of files to leave out as if `.dockerignore` named them, after
    ///   its own rules (so no `!` pattern brings them back).
    /// - Parameter walks: a memo shared by the contexts of one run that hide the same paths, so a
    ///   library directory every processor copies is listed and matched once.
    /// - Parameter consulted: records what resolving and walking looked at.
    package init(
        root: String, dockerfile: String, hiding: Set<String> = [], walks: WalkMemo? = nil,
        consulted: Consulted? = nil
    ) throws(BuildError) {
        let absolute = FilePaths.absolute(root)
        guard FilePaths.isDirectory(absolute) else {
            throw .input("the build context '\(root)' is not a directory", location: nil)
        }
        self.root = absolute
        var ignore: DockerIgnore
        do {
            (ignore, ignoreFile) = try DockerIgnore.load(context: absolute, dockerfile: FilePaths.absolute(dockerfile))
        } catch let error as DockerIgnoreError {
            throw .input(error.description, location: error.location)
        } catch let error as FileError {
            throw .io(error)
        } catch {
            throw .input("\(error)", location: nil)
        }
        hidden = hiding
        self.walks = walks
        self.consulted = consulted
        ignore.patterns += DockerIgnore(parsing: Self.alwaysHidden.joined(separator: "\n")).patterns
        self.ignore = ignore
    }

    /// Whether `path` (relative to the root) is left out: hidden, or excluded by the ignore rules.
    package func leavesOut(_ path: String, parentIncluded: Bool = false) -> Bool {
        if !hidden.isEmpty, hidden.contains(root + "/" + path) { return true }
        return ignore.excludes(path, parentIncluded: parentIncluded)
    }

    /// Names no build context shows: the temporary files of kiln's atomic writes (a pin being
    /// written beside a `registry.yaml`, or one a killed run left there), which are never part
    /// of what a Dockerfile means to copy.
    static let alwaysHidden = ["**/\(AtomicFileWriter.temporaryPrefix)*", "**/.tmp-registry.yaml-*"]

    /// One file-system object of the context.
    package struct Item: Sendable, Hashable {
        package enum Kind: Sendable, Hashable {
            case file
            case directory
            case symlink(String)
        }
        /// Relative to the context root (`""` for the root).
        package var path: String
        package var kind: Kind
        package var mode: UInt32
    }

    package func diskPath(_ item: Item) -> String { item.path.isEmpty ? root : root + "/" + item.path }

    /// What a `COPY` source names: the items matching it (several for a wildcard), each with
    /// symlinks along the way followed inside the context.
    /// - Throws: `BuildError.input` for a source outside the context or one that matches nothing.
    package func resolve(source: String, at location: SourceLocation?) throws(BuildError) -> [Item] {
        let components = try Self.components(of: source, at: location)
        if components.contains(where: Glob.hasWildcard) {
            var matches = [Item]()
            try match(components[...], directory: "", into: &matches, location: location)
            guard !matches.isEmpty else {
                throw BuildError(.missingSource(source, isPattern: true), location: location)
            }
            return matches.sorted { $0.path < $1.path }
        }
        let path = try follow(components.joined(separator: "/"), source: source, location: location)
        guard let item = try item(at: path), path.isEmpty || !leavesOut(path) else {
            let hint =
                path.isEmpty || !leavesOut(path)
                ? "" : " (it is excluded by \(ignoreFile.map(FilePaths.lastComponent(of:)) ?? ".dockerignore"))"
            guard hint.isEmpty else {
                throw .input("'\(source)' is not in the build context\(hint)", location: location)
            }
            throw BuildError(.missingSource(source, isPattern: false), location: location)
        }
        return [item]
    }

    /// A source path as components relative to the root; `..` that would leave it is an error.
    static func components(of source: String, at location: SourceLocation?) throws(BuildError) -> [String] {
        var result = [String]()
        for part in source.split(separator: "/") {
            switch part {
            case ".": continue
            case "..":
                guard !result.isEmpty else {
                    throw .input(
                        "'\(source)' is outside the build context; sources are relative to the context directory",
                        location: location)
                }
                result.removeLast()
            default: result.append(String(part))
            }
        }
        return result
    }

    /// Follows symlinks in `path` (including the last component, as COPY does for a source),
    /// staying inside the context.
    func follow(_ path: String, source: String, location: SourceLocation?) throws(BuildError) -> String {
        var pending = path.split(separator: "/").map(String.init).reversed() as [String]
        var resolved = [String]()
        var hops = 0
        while let component = pending.popLast() {
            if component == "." { continue }
            if component == ".." {
                guard !resolved.isEmpty else {
                    throw .input("'\(source)' leads outside the build context through a symlink", location: location)
                }
                resolved.removeLast()
                continue
            }
            let candidate = (resolved + [component]).joined(separator: "/")
            consulted?.followed(candidate)
            if case .symlink(let target)? = try item(at: candidate)?.kind {
                hops += 1
                guard hops < 64 else {
                    throw .input(
                        "'\(source)' goes through a loop of symlinks ('\(candidate)' → '\(target)' → …)",
                        location: location)
                }
                guard !target.hasPrefix("/") else {
                    throw .input(
                        "'\(source)' is a symlink to '\(target)', which is outside the build context",
                        location: location)
                }
                pending += target.split(separator: "/").map(String.init).reversed()
                continue
            }
            resolved.append(component)
        }
        return resolved.joined(separator: "/")
    }

    private func match(
        _ pattern: ArraySlice<String>, directory: String, into matches: inout [Item], location: SourceLocation?
    )
        throws(BuildError)
    {
        guard let first = pattern.first else { return }
        let rest = pattern.dropFirst()
        var candidates = [String]()
        if Glob.hasWildcard(first) {
            consulted?.listed([directory])
            candidates = try names(in: directory).filter { Glob.matches(Array(first), Array($0)) }
        } else {
            candidates = [first]
        }
        for name in candidates {
            let path = directory.isEmpty ? name : directory + "/" + name
            consulted?.followed(path)
            guard !leavesOut(path), var item = try item(at: path) else { continue }
            if case .symlink = item.kind {
                let target = try follow(path, source: path, location: location)
                guard let followed = try self.item(at: target) else { continue }
                item = followed
            }
            if rest.isEmpty {
                matches.append(item)
            } else if item.kind == .directory {
                try match(rest, directory: item.path, into: &matches, location: location)
            }
        }
    }

    /// The item at a context-relative path, nil when absent.
    func item(at path: String) throws(BuildError) -> Item? {
        let disk = path.isEmpty ? root : root + "/" + path
        var info = stat()
        guard lstat(disk, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw .io(FileError("stat", path: disk))
        }
        let mode = UInt32(info.st_mode & 0o7777)
        switch FileKind(mode: info.st_mode) {
        case .directory: return Item(path: path, kind: .directory, mode: mode)
        case .regular: return Item(path: path, kind: .file, mode: mode)
        case .symlink:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = readlink(disk, &buffer, buffer.count - 1)
            guard count >= 0 else { throw .io(FileError("read link", path: disk)) }
            return Item(
                path: path,
                kind: .symlink(String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)),
                mode: 0o777)
        case let kind:
            throw .input(
                "'\(path)' in the build context is a \(kind.name); COPY takes files, directories and symlinks",
                location: nil)
        }
    }

    func names(in directory: String) throws(BuildError) -> [String] {
        let disk = directory.isEmpty ? root : root + "/" + directory
        do {
            return try FilePaths.contents(of: disk).sorted()
        } catch {
            throw .io(error)
        }
    }

    /// Everything below a directory item that `.dockerignore` lets through, parents first. An
    /// excluded directory is entered only when a `!` pattern may re-include something in it.
    package func walk(_ directory: Item, excluding excludes: DockerIgnore? = nil) throws(BuildError) -> [Item] {
        // The same directory of the same root under the same ignore file lists the same items.
        let memoKey =
            walks != nil && excludes == nil ? root + "\u{0}" + (ignoreFile ?? "") + "\u{0}" + directory.path : nil
        if let memoKey, let known = walks?.walk(memoKey) {
            consulted?.listed(known.listed)
            return known.items
        }
        var result = [Item]()
        var listed = [String]()
        let included = directory.path.isEmpty || !leavesOut(directory.path)
        try walk(
            directory.path, base: directory.path, excludes: excludes, included: included, into: &result,
            listing: &listed)
        consulted?.listed(listed)
        if let memoKey { walks?.remember(Walk(items: result, listed: listed), for: memoKey) }
        return result
    }

    /// A walk's items, and the directories it listed to find them.
    struct Walk {
        var items: [Item]
        var listed: [String]
    }

    /// Directory walks shared by the contexts of one run (which all hide the same paths).
    package final class WalkMemo: Sendable {
        private let entries = Mutex<[String: Walk]>([:])

        package init() {}

        func walk(_ key: String) -> Walk? { entries.withLock { $0[key] } }

        func remember(_ walk: Walk, for key: String) { entries.withLock { $0[key] = walk } }
    }

    /// What resolving sources looked at besides the items it gave: the directories whose entries
    /// were listed (a file added to one could be a new source) and the paths followed to reach a
    /// source (a component that became a symlink, or another directory, could lead elsewhere).
    /// Paths are relative to the root, `""` for the root.
    package final class Consulted: Sendable {
        /// What a followed path was when it was followed.
        package enum Followed: Sendable, Equatable {
            case absent
            /// A directory: which one (its inode) is all that matters, not its entries.
            case directory(inode: UInt64)
            /// A file or symlink.
            case other
        }

        package struct Paths: Sendable, Equatable {
            package var listed: Set<String> = []
            package var followed: [String: Followed] = [:]
        }
        private let paths = Mutex(Paths())
        private let root: String

        package init(root: String) { self.root = FilePaths.absolute(root) }

        package var recorded: Paths { paths.withLock { $0 } }

        func listed(_ directories: [String]) {
            paths.withLock { $0.listed.formUnion(directories) }
        }

        func followed(_ path: String) {
            guard paths.withLock({ $0.followed[path] == nil }) else { return }
            let state = Self.state(of: path.isEmpty ? root : root + "/" + path)
            paths.withLock { $0.followed[path] = $0.followed[path] ?? state }
        }

        /// What `lstat` says `disk` is now, as a followed path.
        package static func state(of disk: String) -> Followed {
            var info = stat()
            guard lstat(disk, &info) == 0 else { return .absent }
            return FileKind(mode: info.st_mode) == .directory ? .directory(inode: UInt64(info.st_ino)) : .other
        }
    }

    /// - Parameter included: whether `directory` is known not to be left out, so only each entry's
    ///   own path needs matching.
    private func walk(
        _ directory: String, base: String, excludes: DockerIgnore?, included: Bool, into result: inout [Item],
        listing listed: inout [String]
    ) throws(BuildError) {
        listed.append(directory)
        for name in try names(in: directory) {
            let path = directory.isEmpty ? name : directory + "/" + name
            let relative = base.isEmpty ? path : String(path.dropFirst(base.count + 1))
            let hidden =
                leavesOut(path, parentIncluded: included)
                || (excludes?.excludes(relative, parentIncluded: included) ?? false)
            guard let item = try item(at: path) else { continue }
            if item.kind == .directory {
                if hidden && !ignore.mayReinclude(under: path) && !(excludes?.mayReinclude(under: relative) ?? false) {
                    continue
                }
                let before = result.count
                if !hidden { result.append(item) }
                try walk(path, base: base, excludes: excludes, included: !hidden, into: &result, listing: &listed)
                // A hidden directory with re-included children still appears, as their parent.
                if hidden && result.count > before { result.insert(item, at: before) }
            } else if !hidden {
                result.append(item)
            }
        }
    }
}
