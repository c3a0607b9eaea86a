import KilnCore
import KilnLayers

/// Replays what a traced `RUN` step did (`RunTrace`) on a model of the file system it ran on, to
/// find everything it could have observed of the layers below it.
///
/// Paths are resolved the way the kernel resolves them: one component at a time from the root
/// or the process's working directory (inherited at `fork`, shared by `CLONE_FS` threads), `..`
/// taken after the directory before it is resolved, symlinks followed (at most 40 per path), a
/// missing or non-directory component ending the walk. The model is the lower layers with the
/// step's own changes on top (`overlay`: what it made, removed, renamed or linked, in the order it
/// did so), so a link the step makes or repoints is followed as the kernel followed it. Every
/// component found in the lower layers is an observation (`Observation.Kind.lookup`); what a call
/// looks at, opens, executes or changes is an `.entry`; a directory read is a `.listing`; a
/// directory moved or removed a `.tree`. What the step made itself is not below it: the step
/// decides it, so it is no observation.
///
/// Beyond the calls: the interpreter the kernel opens for a `#!` script or a dynamically linked
/// program (`FileSummary`), the `/etc/passwd` and `/etc/group` buildah reads to set the step's
/// user, and the `PATH` lookup of an exec-form `RUN`.
///
/// Where the model and the kernel disagree — a call succeeded on a path the model says is not
/// there, a descriptor opened a file other than the one the model resolved, a working directory
/// other than the one the kernel printed — or a path goes through `/proc/*/root`, `/proc/*/cwd`
/// or a directory descriptor under `/proc/*/fd`, the replay is `unmodelled`, with the reason.
struct StepReplay {
    /// What is mounted over the image while the step runs: not the image's.
    struct Mounts {
        var directories: Set<String> = ["/proc", "/sys", "/dev"]
        var files: Set<String> = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run/.containerenv"]
    }

    /// What the step made of a path.
    enum Made: Equatable {
        case directory
        /// A regular file the step wrote; `version` counts its writes.
        case file(version: Int)
        case symlink(String)
        case other
        case removed
        /// A node of the lower layers the step moved here (renamed or linked) from `from`.
        case moved(from: String)
    }

    /// What a path leads to in the model.
    enum Found: Equatable {
        case missing
        /// A node of the lower layers, at this exact path of theirs.
        case lower(String, ImageFilesystem.Node.Kind)
        case made(Made)
        /// Mounted over the image.
        case pseudo
    }

    /// Where a resolution ended.
    enum Resolution: Equatable {
        /// At the exact path `path` of the model, holding `found` (never `.missing`).
        case found(String, Found)
        /// At `path`, which is not there (its directory is).
        case missing(String)
        /// A component on the way is missing or no directory, or too many links.
        case failed
        case pseudo
        /// Not modelled: the replay is refused.
        case unmodelled
    }

    final class Context {
        var cwd: String
        init(cwd: String) { self.cwd = cwd }
    }

    private(set) var lower: LowerFilesystem
    let mounts: Mounts
    private(set) var overlay: [String: Made] = [:]
    private(set) var observations = Set<Observation>()
    private(set) var unmodelled: String?
    private var contexts: [Int: Context] = [:]
    /// The interpreter of each file the step made and executed, by (path, version), known from
    /// its layer (`interpretersOfMadeFiles`), for a second replay.
    var madeInterpreters: [String: FileSummary.Interpreter] = [:]
    /// Files the step made and executed: (path, version) keys of `madeInterpreters` it needs.
    private(set) var executedMade = Set<String>()

    init(lower: LowerFilesystem, mounts: Mounts) {
        self.lower = lower
        self.mounts = mounts
    }

    mutating func refuse(_ reason: String) {
        if unmodelled == nil { unmodelled = reason }
    }

    /// What buildah reads for the step before it starts: the user and groups (`/etc/passwd`,
    /// `/etc/group`), the working directory, and for an exec-form `RUN` naming a program without
    /// a `/`, each `PATH` directory's candidate.
    mutating func start(workingDirectory: String, program: String?, path: String) {
        let root = RunTrace.Place.Base.directory("/")
        for file in ["/etc/passwd", "/etc/group"] { observe(RunTrace.Place(base: root, path: file), follow: true) }
        if !workingDirectory.isEmpty {
            observe(RunTrace.Place(base: root, path: workingDirectory), follow: true)
        }
        if let program, !program.contains("/") {
            for directory in path.split(separator: ":", omittingEmptySubsequences: false) {
                let folder = directory.isEmpty ? "." : String(directory)
                let base = folder.hasPrefix("/") ? root : .directory(Self.normal(workingDirectory))
                observe(RunTrace.Place(base: base, path: folder + "/" + program), follow: true)
            }
        }
    }

    // MARK: - Events

    mutating func apply(_ event: RunTrace.Event) {
        let pid = event.pid
        if case .enterRoot = event.operation {
            contexts[pid] = Context(cwd: "/")
            return
        }
        guard let context = contexts[pid] else {
            refuse("the trace shows process \(pid) without the process that started it")
            return
        }
        for case .cwd(let seen?) in event.operation.bases where seen != context.cwd {
            refuse("kiln's working directory for a step process (\(context.cwd)) is not the kernel's (\(seen))")
        }
        let succeeded = event.succeeded
        switch event.operation {
        case .enterRoot:
            break
        case .fork(let child, let sharesFS):
            contexts[child] = sharesFS ? context : Context(cwd: context.cwd)
        case .chdir(let place):
            let resolution = resolve(place, pid: pid, follow: true)
            guard succeeded != nil else { return refuse("a chdir's outcome is not in the trace") }
            if succeeded == true {
                guard case .found(let path, let found) = resolution, isDirectory(found) else {
                    if resolution != .unmodelled {
                        refuse("chdir to \(place) succeeded where kiln's model has no directory")
                    }
                    return
                }
                context.cwd = path
            }
        case .fchdir(let path):
            guard succeeded != false else { return }
            guard let path else { return refuse("the step changed into a directory outside the image") }
            context.cwd = path
        case .observe(let place, let follow):
            let resolution = resolve(place, pid: pid, follow: follow)
            recordEntry(resolution)
            if succeeded == true { expectFound(resolution, place) }
        case .describe(let path):
            guard let path else { return }
            if case .lower(let lowerPath, _) = look(path, record: false) {
                observations.insert(Observation(lowerPath, .entry))
            }
        case .execute(let place):
            let resolution = resolve(place, pid: pid, follow: true)
            recordEntry(resolution)
            guard succeeded == true else { return }
            expectFound(resolution, place)
            if case .found(let path, let found) = resolution { interpreters(of: path, found, pid: pid, depth: 0) }
        case .open(let place, let create, _, let follow, let write, let temporary):
            if temporary {
                recordEntry(resolve(place, pid: pid, follow: true))
                return
            }
            let resolution = resolve(place, pid: pid, follow: follow)
            recordEntry(resolution)
            guard succeeded != false else { return }
            guard succeeded == true else {
                if create || write { refuse("an open for writing has no outcome in the trace") }
                return
            }
            switch resolution {
            case .found(let path, let found):
                if case .inside(let opened) = event.returned, opened != path {
                    return refuse("kiln resolved \(place) to \(path), but the kernel opened \(opened)")
                }
                if event.returned == .outside { return refuse("\(place) opened a file outside the image") }
                if write, !isDirectory(found) { overlay[path] = .file(version: nextVersion(of: found)) }
            case .missing(let path):
                guard create else { return refuse("\(place) opened where kiln's model has nothing") }
                if case .inside(let opened) = event.returned, opened != path {
                    return refuse("kiln resolved \(place) to \(path), but the kernel made \(opened)")
                }
                overlay[path] = .file(version: 1)
            case .failed: refuse("\(place) opened where kiln's model has nothing")
            case .pseudo, .unmodelled: break
            }
        case .makeDirectory(let place):
            made(place, pid: pid, succeeded: succeeded, as: .directory)
        case .makeNode(let place):
            made(place, pid: pid, succeeded: succeeded, as: .other)
        case .makeSymlink(let place, let target):
            made(place, pid: pid, succeeded: succeeded, as: .symlink(target))
        case .remove(let place, let directory):
            let resolution = resolve(place, pid: pid, follow: false)
            if case .found(_, .lower(let lowerPath, _)) = resolution {
                observations.insert(Observation(lowerPath, directory ? .tree : .entry))
            }
            guard succeeded != false else { return }
            guard succeeded == true else { return refuse("a removal has no outcome in the trace") }
            guard case .found(let path, _) = resolution else {
                if resolution != .unmodelled && resolution != .pseudo {
                    refuse("\(place) was removed where kiln's model has nothing")
                }
                return
            }
            if contexts.values.contains(where: { Self.isWithin($0.cwd, path) }) && directory {
                return refuse("the step removed a working directory of its own (\(path))")
            }
            clear(below: path)
            overlay[path] = .removed
        case .rename(let from, let to, let exchange):
            rename(from, to, exchange: exchange, pid: pid, succeeded: succeeded)
        case .link(let from, let to, let follow):
            let source = resolve(from, pid: pid, follow: follow)
            recordEntry(source)
            let destination = resolve(to, pid: pid, follow: false)
            recordEntry(destination)
            guard succeeded != false else { return }
            guard succeeded == true else { return refuse("a link has no outcome in the trace") }
            guard case .found(let sourcePath, let found) = source, case .missing(let path) = destination else {
                return refuse("a link succeeded where kiln's model says it cannot")
            }
            switch found {
            case .lower(let lowerPath, _): overlay[path] = .moved(from: lowerPath)
            case .made(let made): overlay[path] = made
            default: return refuse("the step linked \(sourcePath), which kiln does not model")
            }
        case .list(let path):
            guard let path else { return }
            switch look(path, record: false) {
            case .lower(let lowerPath, _): observations.insert(Observation(lowerPath, .listing))
            case .missing: refuse("the step listed \(path), which kiln's model does not have")
            case .made, .pseudo: break
            }
        }
    }

    /// After the events: each path the step's own layer holds (`members`) as what applying the
    /// layer keeps of what was below it.
    mutating func finish(layerMembers members: [TarMember]) {
        for member in members where !member.path.isEmpty {
            let path = "/" + member.path
            let name = FilePaths.lastComponent(of: path)
            if name == ".wh..wh..opq" {
                observations.insert(Observation(FilePaths.directory(of: path), .tree))
            } else if name.hasPrefix(".wh.") {
                observations.insert(
                    Observation(FilePaths.join(FilePaths.directory(of: path), String(name.dropFirst(4))), .tree))
            } else {
                observations.insert(Observation(path, .layer))
            }
        }
    }

    // MARK: - Calls

    private mutating func made(_ place: RunTrace.Place, pid: Int, succeeded: Bool?, as made: Made) {
        let resolution = resolve(place, pid: pid, follow: false)
        recordEntry(resolution)
        guard succeeded != false else { return }
        guard succeeded == true else { return refuse("\(place) has no outcome in the trace") }
        switch resolution {
        case .missing(let path): overlay[path] = made
        case .pseudo, .unmodelled: break
        case .found, .failed: refuse("\(place) was made where kiln's model says it cannot be")
        }
    }

    private mutating func rename(
        _ from: RunTrace.Place, _ to: RunTrace.Place, exchange: Bool, pid: Int, succeeded: Bool?
    ) {
        let source = resolve(from, pid: pid, follow: false)
        let destination = resolve(to, pid: pid, follow: false)
        // What moves, and what it replaces, depend on everything below them.
        for resolution in [source, destination] {
            if case .found(_, .lower(let lowerPath, _)) = resolution {
                observations.insert(Observation(lowerPath, .tree))
            }
        }
        guard succeeded != false else { return }
        guard succeeded == true else { return refuse("a rename has no outcome in the trace") }
        if exchange { return refuse("the step exchanged two paths (RENAME_EXCHANGE)") }
        guard case .found(let sourcePath, let found) = source else {
            return refuse("\(from) was renamed where kiln's model has nothing")
        }
        let destinationPath: String
        switch destination {
        case .found(let path, _), .missing(let path): destinationPath = path
        default: return refuse("\(to) was renamed onto where kiln's model says it cannot")
        }
        if sourcePath == destinationPath { return }
        if contexts.values.contains(where: { Self.isWithin($0.cwd, sourcePath) }) {
            return refuse("the step moved a working directory of its own (\(sourcePath))")
        }
        let moving: Made
        switch found {
        case .lower(let lowerPath, _): moving = .moved(from: lowerPath)
        case .made(let made):
            if case .file(let version) = made { moving = .file(version: version + 1) } else { moving = made }
        default: return refuse("the step renamed \(sourcePath), which kiln does not model")
        }
        // What the step made below the source goes along; what was below the destination goes.
        clear(below: destinationPath)
        let prefix = sourcePath == "/" ? "/" : sourcePath + "/"
        for (path, value) in overlay where path.hasPrefix(prefix) {
            overlay[path] = nil
            overlay[Self.join(destinationPath, String(path.dropFirst(prefix.count)))] = value
        }
        overlay[destinationPath] = moving
        overlay[sourcePath] = .removed
    }

    /// The interpreters the kernel opens to execute the file at `path` (`depth` scripts deep).
    private mutating func interpreters(of path: String, _ found: Found, pid: Int, depth: Int) {
        guard depth < 5 else { return }
        let interpreter: FileSummary.Interpreter
        switch found {
        case .lower(let lowerPath, _):
            do {
                interpreter = try lower.interpreter(at: lowerPath) ?? .none
            } catch {
                return refuse("kiln cannot read \(lowerPath) to see what executing it opens")
            }
        case .made(.file(let version)):
            let key = "\(path)\u{0}\(version)"
            executedMade.insert(key)
            // Known only from the layer, on a second replay; unknown on the first.
            interpreter = madeInterpreters[key] ?? .none
        case .made(.moved(let from)):
            do {
                interpreter = try lower.interpreter(at: from) ?? .none
            } catch {
                return refuse("kiln cannot read \(from) to see what executing it opens")
            }
        default:
            return
        }
        switch interpreter {
        case .none: return
        case .unknown: return refuse("kiln cannot tell what executing \(path) opens")
        case .script(let name), .loader(let name):
            let context = contexts[pid].map { RunTrace.Place.Base.directory($0.cwd) } ?? .directory("/")
            let resolution = resolve(RunTrace.Place(base: context, path: name), pid: pid, follow: true)
            recordEntry(resolution)
            if case .script = interpreter, case .found(let next, let nextFound) = resolution {
                interpreters(of: next, nextFound, pid: pid, depth: depth + 1)
            }
        }
    }

    private mutating func observe(_ place: RunTrace.Place, follow: Bool) {
        recordEntry(resolve(place, pid: nil, follow: follow))
    }

    private mutating func recordEntry(_ resolution: Resolution) {
        if case .found(_, .lower(let lowerPath, _)) = resolution {
            observations.insert(Observation(lowerPath, .entry))
        }
    }

    private mutating func expectFound(_ resolution: Resolution, _ place: RunTrace.Place) {
        switch resolution {
        case .missing, .failed: refuse("\(place) succeeded where kiln's model has nothing")
        default: break
        }
    }

    private func nextVersion(of found: Found) -> Int {
        if case .made(.file(let version)) = found { return version + 1 }
        return 1
    }

    private func isDirectory(_ found: Found) -> Bool {
        switch found {
        case .lower(_, .directory), .made(.directory), .pseudo: true
        case .made(.moved(let from)): lower.node(at: from)?.kind == .directory
        default: false
        }
    }

    /// Forgets what the step made below `path` (the path itself stays).
    private mutating func clear(below path: String) {
        let prefix = path == "/" ? "/" : path + "/"
        for key in overlay.keys where key.hasPrefix(prefix) { overlay[key] = nil }
    }

    // MARK: - Resolution

    /// What `path` (exact, as the model names it) is, recording a lookup when it is the lower
    /// layers' and `record`.
    mutating func look(_ path: String, record: Bool) -> Found {
        if mounts.files.contains(path) || mounts.directories.contains(path) { return .pseudo }
        if !overlay.isEmpty {
            if let made = overlay[path] {
                switch made {
                case .removed: return .missing
                case .moved(let from):
                    return lower.node(at: from).map { .lower(from, $0.kind) } ?? .missing
                default: return .made(made)
                }
            }
            var ancestor = path
            while ancestor != "/" {
                ancestor = FilePaths.directory(of: ancestor)
                guard let made = overlay[ancestor] else { continue }
                if case .moved(let from) = made {
                    let mapped = Self.join(from, String(path.dropFirst(ancestor == "/" ? 1 : ancestor.count + 1)))
                    return lower.node(at: mapped).map { .lower(mapped, $0.kind) } ?? .missing
                }
                // Below anything else the step made (or removed), only what it made is there.
                return .missing
            }
        }
        if record { observations.insert(Observation(path, .lookup)) }
        return lower.node(at: path).map { .lower(path, $0.kind) } ?? .missing
    }

    /// Resolves `place` as the kernel would for process `pid` (nil: buildah, from the root).
    mutating func resolve(_ place: RunTrace.Place, pid: Int?, follow: Bool) -> Resolution {
        var current: String
        if place.path.hasPrefix("/") {
            current = "/"
        } else {
            switch place.base {
            case .cwd:
                guard let pid, let context = contexts[pid] else {
                    refuse("a relative path of a process kiln could not place")
                    return .unmodelled
                }
                current = context.cwd
            case .directory(let directory): current = directory
            case .outside:
                refuse("\(place.path) was named relative to a descriptor outside the image")
                return .unmodelled
            }
        }
        var pending = place.path.split(separator: "/", omittingEmptySubsequences: true).reversed().map(String.init)
        let follow = follow || (place.path.hasSuffix("/") && place.path.count > 1)
        var links = 0
        if pending.isEmpty {
            guard !place.path.isEmpty else { return .failed }
            let found = look(current, record: true)
            return found == .pseudo ? .pseudo : .found(current, found)
        }
        while let component = pending.popLast() {
            if component == "." {
                if pending.isEmpty { return finalDirectory(current) }
                continue
            }
            if component == ".." {
                current = FilePaths.directory(of: current)
                if pending.isEmpty { return finalDirectory(current) }
                continue
            }
            let candidate = Self.join(current, component)
            let last = pending.isEmpty
            if mounts.directories.contains(candidate) {
                switch pseudo(candidate, pending: &pending, follow: follow) {
                case .some(let resolution): return resolution
                case .none:
                    // `..` out of the mount: on from the root.
                    current = FilePaths.directory(of: candidate)
                    if pending.isEmpty { return finalDirectory(current) }
                    continue
                }
            }
            let found = look(candidate, record: true)
            switch found {
            case .pseudo:
                return last ? .pseudo : .failed
            case .missing:
                return last ? .missing(candidate) : .failed
            case .lower(_, .symlink(let target)) where !last || follow,
                .made(.symlink(let target)) where !last || follow:
                links += 1
                guard links <= 40, !target.isEmpty else { return .failed }
                if target.hasPrefix("/") { current = "/" }
                pending += target.split(separator: "/", omittingEmptySubsequences: true).reversed().map(String.init)
                if pending.isEmpty { return finalDirectory(current) }
            default:
                if last { return .found(candidate, found) }
                guard isDirectory(found) else { return .failed }
                current = candidate
            }
        }
        return finalDirectory(current)
    }

    private mutating func finalDirectory(_ path: String) -> Resolution {
        let found = look(path, record: true)
        switch found {
        case .missing: return .failed
        case .pseudo: return .pseudo
        default: return .found(path, found)
        }
    }

    /// A walk into a pseudo file system at `mount`: nil when a `..` leads back out of it (the
    /// walk goes on from its parent), else where it ends. Paths that reach the image through
    /// `/proc` (`root`, `cwd`, a directory descriptor under `fd`) are not modelled.
    private mutating func pseudo(_ mount: String, pending: inout [String], follow: Bool) -> Resolution? {
        var inside = [String]()
        while let component = pending.popLast() {
            switch component {
            case ".":
                continue
            case "..":
                if inside.isEmpty { return nil }
                refuse("a path climbs out of a name in \(mount) with '..' (\(mount)/\(inside.joined(separator: "/")))")
                return .unmodelled
            default:
                inside.append(component)
            }
            let last = pending.isEmpty
            let position = inside.count
            if (component == "root" || component == "cwd") && (!last || follow) && position >= 2 {
                refuse("the step reached the image through \(mount)/\(inside.joined(separator: "/"))")
                return .unmodelled
            }
            if position >= 2, ["fd", "map_files"].contains(inside[position - 2]), !last {
                refuse("the step reached the image through \(mount)/\(inside.joined(separator: "/"))")
                return .unmodelled
            }
        }
        return .pseudo
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory == "/" ? "/" + name : directory + "/" + name
    }

    static func isWithin(_ path: String, _ directory: String) -> Bool {
        path == directory || directory == "/" || path.hasPrefix(directory + "/")
    }

    /// `a//b/./c/` → `/a/b/c` (`..` kept).
    static func normal(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        return "/" + parts.joined(separator: "/")
    }
}

extension RunTrace.Operation {
    /// The path bases the operation names (for the working directory check).
    var bases: [RunTrace.Place.Base] {
        switch self {
        case .chdir(let place), .observe(let place, _), .execute(let place), .open(let place, _, _, _, _, _),
            .makeDirectory(let place), .makeNode(let place), .makeSymlink(let place, _), .remove(let place, _):
            [place.base]
        case .rename(let from, let to, _), .link(let from, let to, _): [from.base, to.base]
        default: []
        }
    }
}
