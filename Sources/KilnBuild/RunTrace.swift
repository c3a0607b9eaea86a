import KilnOCI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What one `RUN` step did to the file system, read from an `strace -f -y` log of buildah: the
/// step's path operations in the order they started, with what the kernel answered, for
/// `StepReplay` to resolve against the file system the step ran on.
///
/// The log mixes buildah's own work on the host with the step's. With chroot isolation the
/// step's processes are the children (not threads) that a `buildah-chroot-exec` re-exec starts
/// after its `chroot(ROOT)`, and everything they start; paths they name are paths inside the
/// image, and the host paths `-y` prints for descriptors lose the `ROOT` prefix. With OCI
/// isolation (runc) the step's first process is the one below `runc init` that pivots into the
/// root: from its first `execve` after `pivot_root` it is the step, with everything it starts,
/// and `-y` prints paths as the step sees them (the old root is gone). Everything else (buildah,
/// its `chrootuser-open` and `buildah-copier` helpers, runc, the chroot-exec process, the
/// pivoting process before its `execve`) is left out, but for the working directory the step's
/// first process starts in.
///
/// Whatever the log shows that kiln does not model makes the trace `unmodelled`, with the reason:
/// a step that calls `chroot`, `mount` or `unshare`, resolves with `RESOLVE_IN_ROOT`, is killed
/// while still running when the step ends, or leaves a line kiln cannot read. Such a step is never
/// reused by what it read.
package struct RunTrace: Sendable {
    /// Where a path a call names starts.
    package struct Place: Sendable, Equatable, CustomStringConvertible {
        package enum Base: Sendable, Equatable {
            /// The working directory; `seen` is the path `-y` printed for `AT_FDCWD`, when it did
            /// (nil: not printed, or not inside the image).
            case cwd(seen: String?)
            /// A directory descriptor `-y` showed inside the image.
            case directory(String)
            /// A descriptor that is no directory of the image (a socket, or a host path).
            case outside
        }
        package var base: Base
        package var path: String

        package init(base: Base, path: String) {
            self.base = base
            self.path = path
        }

        package var description: String {
            switch base {
            case .cwd: path
            case .directory(let directory): path.hasPrefix("/") ? path : "\(directory)/\(path)"
            case .outside: "\(path) (from a descriptor outside the image)"
            }
        }
    }

    /// What a call did, as the replay needs it.
    package enum Operation: Sendable, Equatable {
        /// A process (`child`) started; `sharesFS`: it shares its parent's working directory
        /// (`CLONE_FS`: threads, mostly).
        case fork(child: Int, sharesFS: Bool)
        /// The chroot-exec entered the image's root: its working directory is now `/`.
        case enterRoot
        case chdir(Place)
        /// `fchdir` to a directory `-y` showed (nil: outside the image).
        case fchdir(String?)
        /// Looked at (`stat`, `access`, `readlink`, extended attributes, `chmod`, …): the path's
        /// last component is followed when `follow`.
        case observe(Place, follow: Bool)
        /// A descriptor's own file (`AT_EMPTY_PATH`, `utimensat(fd, NULL)`), as `-y` showed it.
        case describe(String?)
        case execute(Place)
        case open(Place, create: Bool, exclusive: Bool, follow: Bool, write: Bool, temporary: Bool)
        case makeDirectory(Place)
        /// `mknod` (a FIFO, device or empty file) or a socket `bind` made.
        case makeNode(Place)
        case makeSymlink(Place, target: String)
        case remove(Place, directory: Bool)
        case rename(Place, to: Place, exchange: Bool)
        case link(Place, to: Place, follow: Bool)
        /// `getdents` of a directory `-y` showed (nil: outside the image).
        case list(String?)
    }

    /// A descriptor a call returned, as `-y` printed it.
    package enum Returned: Sendable, Equatable {
        case none
        case inside(String)
        case outside
    }

    package struct Event: Sendable, Equatable {
        package var pid: Int
        package var operation: Operation
        /// Whether the call succeeded; nil when the log does not say (the process was killed in it).
        package var succeeded: Bool?
        package var returned: Returned

        package init(pid: Int, operation: Operation, succeeded: Bool?, returned: Returned = .none) {
            self.pid = pid
            self.operation = operation
            self.succeeded = succeeded
            self.returned = returned
        }
    }

    /// The step's operations, in the order they started.
    package var events: [Event]
    /// How many step processes the log showed (0 means the log did not show the step at all).
    package var processes: Int
    /// Why the step cannot be modelled, when it cannot (the first reason met).
    package var unmodelled: String?

    /// The stored form's media type, and its format line.
    package static let mediaType = MediaType("application/vnd.kiln.run-reads.v1+json")
    package static let format = "kiln-run-reads/2"

    /// Reads the log `text`.
    package init(parsing text: String) {
        self.init(log: Array(text.utf8))
    }

    /// Reads the log's bytes (as `strace -o` wrote them).
    package init(log bytes: [UInt8]) {
        let log = StraceLog(bytes)
        let lines = log.lines
        // Pass 1: the process tree, and each chroot-exec's root.
        var parent = [Int: Int]()
        var threads = Set<Int>()
        var sharesFS = Set<Int>()
        var chrootExec = [Int: String]()  // pid → root, once chrooted (OCI: "", paths as printed)
        var execPids = Set<Int>()
        // OCI isolation: `runc init` processes, the process below one that pivoted into the root
        // (the step's first process), once it has started the step (`execve`), and the
        // processes it started since.
        var runtimeInits = Set<Int>()
        var pivoted = Set<Int>()
        var launched = Set<Int>()
        var launchedChildren = Set<Int>()
        func below(_ pid: Int, _ set: Set<Int>) -> Bool {
            var current = pid
            var steps = 0
            while true {
                if set.contains(current) { return true }
                guard let up = parent[current], steps < 4096 else { return false }
                current = up
                steps += 1
            }
        }
        for line in lines {
            guard case .call(let call, let name, let arguments, let result) = line.kind else { continue }
            switch call {
            case .clone:
                guard let child = log.childPid(result), child > 0 else { continue }
                parent[child] = line.pid
                if log.contains(arguments, "CLONE_THREAD") { threads.insert(child) }
                if log.contains(arguments, "CLONE_FS") { sharesFS.insert(child) }
                if launched.contains(line.pid) { launchedChildren.insert(child) }
            case .execute:
                if log.contains(arguments, "[\"buildah-chroot-exec\"") { execPids.insert(line.pid) }
                if log.isRuntimeInit(arguments) { runtimeInits.insert(line.pid) }
                if pivoted.contains(line.pid), !launched.contains(line.pid), log.starts(result, "0") {
                    launched.insert(line.pid)
                }
            case .unmodelled where name == "pivot_root":
                // The runtime's pivot, by a process below `runc init` that is no step process.
                if log.starts(result, "0"), below(line.pid, runtimeInits), !below(line.pid, pivoted) {
                    pivoted.insert(line.pid)
                    chrootExec[line.pid] = ""
                }
            case .chroot:
                if execPids.contains(line.pid), log.starts(result, "0"),
                    let first = log.arguments(arguments).first, let root = log.string(first)
                {
                    chrootExec[line.pid] = root
                }
            default: break
            }
        }
        // A step process: a non-thread child of a chrooted chroot-exec, or anything below one.
        var rootOf = [Int: String?]()
        func root(of pid: Int) -> String? {
            if let known = rootOf[pid] { return known }
            var current = pid
            var chain = [Int]()
            var found: String?
            while let up = parent[current] {
                chain.append(current)
                if let root = chrootExec[up] {
                    if pivoted.contains(up) {
                        // Started by the step's first process once it was the step.
                        if let first = chain.last, launchedChildren.contains(first) { found = root }
                    } else if let first = chain.last, !threads.contains(first) {
                        // The chroot-exec's own threads are buildah's, not the step's.
                        found = root
                    }
                    break
                }
                current = up
                if chain.count > 4096 { break }
            }
            rootOf[pid] = .some(found)
            return found
        }

        var events = [Event]()
        var processes = Set<Int>()
        var entered = Set<Int>()  // chroot-execs inside their root
        var started = Set<Int>()  // pivoting processes that are the step by now
        var unmodelled: String?
        func refuse(_ reason: String) { if unmodelled == nil { unmodelled = reason } }

        for line in lines {
            let execRoot = chrootExec[line.pid]
            guard let root = execRoot ?? root(of: line.pid) else { continue }
            let isExec = execRoot != nil && !started.contains(line.pid)
            if !isExec { processes.insert(line.pid) }
            let (call, name, argumentRange, resultRange): (StraceLog.Call, String, Range<Int>, Range<Int>)
            switch line.kind {
            case .call(let c, let n, let a, let r): (call, name, argumentRange, resultRange) = (c, n, a, r)
            case .killed(let signal):
                if !isExec, signal == "SIGKILL" {
                    refuse("a process of the step was still running when the step ended and was killed")
                }
                continue
            case .meta: continue
            case .unreadable(let text):
                if !isExec { refuse("a trace line kiln cannot read: \(text.prefix(120))") }
                continue
            }
            let succeeded: Bool? =
                log.starts(resultRange, "?") ? nil : !log.starts(resultRange, "-")
            let arguments = log.arguments(argumentRange)

            /// An image path from a host path `-y` printed, nil when it is not below the root.
            func inside(_ host: String) -> String? {
                if host == root { return "/" }
                guard host.hasPrefix(root), host.utf8.count > root.utf8.count,
                    host.utf8[host.utf8.index(host.utf8.startIndex, offsetBy: root.utf8.count)] == 0x2F
                else { return nil }
                return String(host.dropFirst(root.count))
            }
            /// The image path of a descriptor argument (nil: none inside the image).
            func descriptor(_ index: Int) -> String? {
                guard index < arguments.count, let host = log.descriptorPath(arguments[index]) else { return nil }
                if host.hasSuffix(" (deleted)") {
                    refuse("the step used a descriptor of a deleted directory (\(host))")
                    return nil
                }
                return inside(host)
            }
            func base(_ index: Int?) -> Place.Base {
                guard let index else { return .cwd(seen: nil) }
                guard index < arguments.count else { return .outside }
                if log.starts(arguments[index], "AT_FDCWD") { return .cwd(seen: descriptor(index)) }
                if let path = descriptor(index) { return .directory(path) }
                return .outside
            }
            /// The path argument at `index`, relative to the descriptor at `dirfd` (nil: the
            /// working directory). Nil when the argument is not a whole string.
            func place(_ index: Int, at dirfd: Int? = nil) -> Place? {
                guard index < arguments.count else { return nil }
                guard let text = log.string(arguments[index]) else {
                    if !log.starts(arguments[index], "NULL") {
                        refuse("\(name) named a path kiln cannot read in the trace")
                    }
                    return nil
                }
                return Place(base: base(dirfd), path: text)
            }
            func flag(_ index: Int, _ flag: String) -> Bool {
                index < arguments.count && log.contains(arguments[index], flag)
            }
            func emit(_ operation: Operation, returned: Returned = .none) {
                events.append(Event(pid: line.pid, operation: operation, succeeded: succeeded, returned: returned))
            }
            func returnedDescriptor() -> Returned {
                guard let host = log.descriptorPath(resultRange) else { return .none }
                return inside(host).map(Returned.inside) ?? .outside
            }

            if isExec {
                // The chroot-exec, or (runc) the process that pivots into the root and becomes
                // the step: only where its working directory is, from entering the root on, the
                // processes a chroot-exec starts, and the runc process's start of the step.
                let pivots = pivoted.contains(line.pid)
                let enters = pivots ? call == .unmodelled && name == "pivot_root" : call == .chroot
                if enters, succeeded == true, !(pivots && entered.contains(line.pid)) {
                    entered.insert(line.pid)
                    emit(.enterRoot)
                    continue
                }
                guard entered.contains(line.pid) else { continue }
                switch call {
                case .chdir: if let target = place(0) { emit(.chdir(target)) }
                case .fchdir: emit(.fchdir(descriptor(0)))
                case .clone where !pivots:
                    if let child = log.childPid(resultRange), child > 0, !threads.contains(child) {
                        emit(.fork(child: child, sharesFS: sharesFS.contains(child)))
                    }
                case .execute where pivots && succeeded == true:
                    started.insert(line.pid)
                    processes.insert(line.pid)
                    if let target = place(name == "execveat" ? 1 : 0, at: name == "execveat" ? 0 : nil) {
                        emit(.execute(target))
                    }
                default: break
                }
                continue
            }

            switch call {
            case .clone:
                if let child = log.childPid(resultRange), child > 0 {
                    emit(.fork(child: child, sharesFS: sharesFS.contains(child)))
                }
            case .chroot:
                if succeeded != false { refuse("the step called chroot") }
            case .unmodelled:
                if succeeded != false { refuse("the step called \(name)") }
            case .chdir:
                if let target = place(0) { emit(.chdir(target)) }
            case .fchdir:
                emit(.fchdir(descriptor(0)))
            case .getdents:
                emit(.list(descriptor(0)))
            case .execute:
                let at = name == "execveat"
                if at, arguments.count > 1, log.string(arguments[1]) == "" {
                    refuse("the step executed a descriptor (execveat)")
                } else if let target = place(at ? 1 : 0, at: at ? 0 : nil) {
                    emit(.execute(target))
                }
            case .open(let path, let dirfd, let flags):
                guard let target = place(path, at: dirfd) else { continue }
                if name == "openat2" {
                    if flag(flags, "RESOLVE_IN_ROOT") || flag(flags, "RESOLVE_BENEATH") {
                        refuse("the step opened a path with openat2's RESOLVE_IN_ROOT or RESOLVE_BENEATH")
                    }
                }
                let creat = name == "creat"
                let create = creat || flag(flags, "O_CREAT")
                let exclusive = flag(flags, "O_EXCL")
                let temporary = flag(flags, "O_TMPFILE")
                let write = creat || flag(flags, "O_WRONLY") || flag(flags, "O_RDWR") || flag(flags, "O_TRUNC")
                let follow = !flag(flags, "O_NOFOLLOW") && !(create && exclusive)
                if target.path.isEmpty {
                    emit(.describe(descriptor(dirfd ?? 0)))
                } else {
                    emit(
                        .open(
                            target, create: create && !temporary, exclusive: exclusive, follow: follow, write: write,
                            temporary: temporary), returned: temporary ? .none : returnedDescriptor())
                }
            case .observe(let path, let dirfd, let flags, let rule):
                if path < arguments.count, log.starts(arguments[path], "NULL") || log.string(arguments[path]) == "" {
                    // The descriptor's own file (`AT_EMPTY_PATH`, or `utimensat(fd, NULL, …)`).
                    if let dirfd { emit(.describe(descriptor(dirfd))) }
                    continue
                }
                guard let target = place(path, at: dirfd) else { continue }
                let follow: Bool =
                    switch rule {
                    case .always: true
                    case .never: false
                    case .unlessFlag(let name): !flag(flags ?? -1, name)
                    case .onlyWithFlag(let name): flag(flags ?? -1, name)
                    }
                emit(.observe(target, follow: follow))
            case .makeDirectory(let path, let dirfd):
                if let target = place(path, at: dirfd) { emit(.makeDirectory(target)) }
            case .makeNode(let path, let dirfd):
                if let target = place(path, at: dirfd) { emit(.makeNode(target)) }
            case .symlink(let target, let path, let dirfd):
                guard target < arguments.count, let text = log.string(arguments[target]) else {
                    refuse("symlink named a target kiln cannot read in the trace")
                    continue
                }
                if let link = place(path, at: dirfd) { emit(.makeSymlink(link, target: text)) }
            case .remove(let path, let dirfd, let directory):
                let removesDirectory: Bool =
                    switch directory {
                    case .always: true
                    case .never: false
                    case .unlessFlag: false
                    case .onlyWithFlag(let name): flag(2, name)
                    }
                if let target = place(path, at: dirfd) { emit(.remove(target, directory: removesDirectory)) }
            case .rename(let from, let fromDirfd, let to, let toDirfd, let flags):
                if let flags, flag(flags, "RENAME_WHITEOUT") { refuse("the step renamed with RENAME_WHITEOUT") }
                let exchange = flags.map { flag($0, "RENAME_EXCHANGE") } ?? false
                if let source = place(from, at: fromDirfd), let destination = place(to, at: toDirfd) {
                    emit(.rename(source, to: destination, exchange: exchange))
                }
            case .link(let from, let fromDirfd, let to, let toDirfd, let flags):
                let follow = flags.map { flag($0, "AT_SYMLINK_FOLLOW") } ?? false
                if let source = place(from, at: fromDirfd), let destination = place(to, at: toDirfd) {
                    emit(.link(source, to: destination, follow: follow))
                }
            case .socket(let binds):
                // A Unix socket's path is looked up (connect) or made (bind); others name none.
                guard arguments.count > 1, log.contains(arguments[1], "AF_UNIX"),
                    let path = log.socketPath(arguments[1])
                else { continue }
                let target = Place(base: .cwd(seen: nil), path: path)
                emit(binds ? .makeNode(target) : .observe(target, follow: true))
            case .ignored:
                break
            case .other:
                refuse("the step called \(name), which kiln does not model")
            }
        }
        self.events = events
        self.processes = processes.count
        self.unmodelled = unmodelled
    }

    /// The system calls strace stops for (`-e trace=`): exactly the ones the parser reads, each
    /// marked `?` so a name the architecture lacks (`open` on arm64) is skipped, not an error.
    static var tracedCalls: String {
        tracedCallNames.map { "?" + $0 }.joined(separator: ",")
    }

    package static var tracedCallNames: [String] {
        StraceLog.Call.byName.filter { $0.value != .ignored }.keys.sorted()
    }
}

/// An `strace -f -y` log as bytes, cut into system call lines (`<unfinished ...>` and
/// `<... resumed>` halves joined, at the place the call started), read without making a string
/// of every line: a dependency install logs hundreds of megabytes.
struct StraceLog {
    /// How a call's last component is followed.
    enum Follow: Equatable {
        case always, never
        /// Unless the flags argument holds this flag.
        case unlessFlag(String)
        /// Only when the flags argument holds this flag.
        case onlyWithFlag(String)
    }

    /// The calls `RunTrace` reads, by what it takes from them. Indexes are argument positions.
    enum Call: Equatable {
        case clone, execute, chroot, chdir, fchdir, getdents
        case open(path: Int, dirfd: Int?, flags: Int)
        case observe(path: Int, dirfd: Int?, flags: Int?, Follow)
        case makeDirectory(path: Int, dirfd: Int?)
        case makeNode(path: Int, dirfd: Int?)
        case symlink(target: Int, path: Int, dirfd: Int?)
        /// `directory`: `.always` (rmdir), `.never` (unlink) or `.onlyWithFlag("AT_REMOVEDIR")`.
        case remove(path: Int, dirfd: Int?, directory: Follow)
        case rename(from: Int, fromDirfd: Int?, to: Int, toDirfd: Int?, flags: Int?)
        case link(from: Int, fromDirfd: Int?, to: Int, toDirfd: Int?, flags: Int?)
        case socket(binds: Bool)
        /// Calls that change what paths mean (mounts, namespaces, roots): a step that makes one
        /// is not modelled.
        case unmodelled
        /// Calls that name no path (logs traced with strace's `%process` class hold them): not
        /// stopped for, nothing to model.
        case ignored
        case other

        static let byName: [String: Call] = {
            var table = [String: Call]()
            for name in ["clone", "clone3", "fork", "vfork"] { table[name] = .clone }
            for name in ["execve", "execveat"] { table[name] = .execute }
            for name in ["getdents", "getdents64"] { table[name] = .getdents }
            table["chroot"] = .chroot
            table["chdir"] = .chdir
            table["fchdir"] = .fchdir
            table["open"] = .open(path: 0, dirfd: nil, flags: 1)
            table["creat"] = .open(path: 0, dirfd: nil, flags: 1)
            table["openat"] = .open(path: 1, dirfd: 0, flags: 2)
            table["openat2"] = .open(path: 1, dirfd: 0, flags: 2)
            for name in [
                "stat", "stat64", "statfs", "statfs64", "access", "chmod", "chown", "chown32", "truncate",
                "truncate64", "getxattr", "listxattr", "setxattr", "removexattr", "utime", "utimes",
            ] {
                table[name] = .observe(path: 0, dirfd: nil, flags: nil, .always)
            }
            for name in [
                "lstat", "lstat64", "lchown", "lchown32", "readlink", "lgetxattr", "llistxattr", "lsetxattr",
                "lremovexattr",
            ] {
                table[name] = .observe(path: 0, dirfd: nil, flags: nil, .never)
            }
            let noFollow = Follow.unlessFlag("AT_SYMLINK_NOFOLLOW")
            table["newfstatat"] = .observe(path: 1, dirfd: 0, flags: 3, noFollow)
            table["fstatat64"] = .observe(path: 1, dirfd: 0, flags: 3, noFollow)
            table["statx"] = .observe(path: 1, dirfd: 0, flags: 2, noFollow)
            table["faccessat"] = .observe(path: 1, dirfd: 0, flags: nil, .always)
            table["faccessat2"] = .observe(path: 1, dirfd: 0, flags: 3, noFollow)
            table["readlinkat"] = .observe(path: 1, dirfd: 0, flags: nil, .never)
            table["fchmodat"] = .observe(path: 1, dirfd: 0, flags: nil, .always)
            table["fchmodat2"] = .observe(path: 1, dirfd: 0, flags: 3, noFollow)
            table["fchownat"] = .observe(path: 1, dirfd: 0, flags: 4, noFollow)
            table["utimensat"] = .observe(path: 1, dirfd: 0, flags: 3, noFollow)
            table["futimesat"] = .observe(path: 1, dirfd: 0, flags: nil, .always)
            table["name_to_handle_at"] = .observe(path: 1, dirfd: 0, flags: 4, .onlyWithFlag("AT_SYMLINK_FOLLOW"))
            table["inotify_add_watch"] = .observe(path: 1, dirfd: nil, flags: 2, .unlessFlag("IN_DONT_FOLLOW"))
            table["mkdir"] = .makeDirectory(path: 0, dirfd: nil)
            table["mkdirat"] = .makeDirectory(path: 1, dirfd: 0)
            table["mknod"] = .makeNode(path: 0, dirfd: nil)
            table["mknodat"] = .makeNode(path: 1, dirfd: 0)
            table["symlink"] = .symlink(target: 0, path: 1, dirfd: nil)
            table["symlinkat"] = .symlink(target: 0, path: 2, dirfd: 1)
            table["unlink"] = .remove(path: 0, dirfd: nil, directory: .never)
            table["rmdir"] = .remove(path: 0, dirfd: nil, directory: .always)
            table["unlinkat"] = .remove(path: 1, dirfd: 0, directory: .onlyWithFlag("AT_REMOVEDIR"))
            table["rename"] = .rename(from: 0, fromDirfd: nil, to: 1, toDirfd: nil, flags: nil)
            table["renameat"] = .rename(from: 1, fromDirfd: 0, to: 3, toDirfd: 2, flags: nil)
            table["renameat2"] = .rename(from: 1, fromDirfd: 0, to: 3, toDirfd: 2, flags: 4)
            table["link"] = .link(from: 0, fromDirfd: nil, to: 1, toDirfd: nil, flags: nil)
            table["linkat"] = .link(from: 1, fromDirfd: 0, to: 3, toDirfd: 2, flags: 4)
            table["connect"] = .socket(binds: false)
            table["bind"] = .socket(binds: true)
            for name in [
                "pivot_root", "mount", "umount", "umount2", "unshare", "setns", "open_by_handle_at", "fanotify_mark",
                "move_mount", "open_tree", "fsopen", "fsmount", "fspick", "mount_setattr", "uselib", "acct", "swapon",
                "swapoff", "quotactl", "quotactl_fd",
            ] {
                table[name] = .unmodelled
            }
            for name in ["getcwd", "exit", "exit_group", "wait4", "waitid", "kill", "tkill", "tgkill"] {
                table[name] = .ignored
            }
            return table
        }()
    }

    struct Line {
        enum Kind {
            /// `name(arguments) = result`: ranges into the log's bytes.
            case call(Call, name: String, arguments: Range<Int>, result: Range<Int>)
            /// `+++ killed by SIGNAL +++`.
            case killed(signal: String)
            /// `+++ exited …`, `--- SIGNAL … ---`, and the like: nothing for the file system.
            case meta
            /// A line that is none of these.
            case unreadable(String)
        }
        var pid: Int
        var kind: Kind
    }

    /// The log, with joined halves appended at its end (ranges point into it).
    private(set) var bytes: [UInt8]
    /// In the order the calls started.
    private(set) var lines: [Line] = []

    init(_ log: [UInt8]) {
        bytes = log
        let end = log.count
        // The line index each pid's unfinished call holds, and its first half.
        var pending = [Int: (slot: Int, head: [UInt8])]()
        var start = 0
        let unfinished = Array(" <unfinished ...>".utf8)
        let resumedMark = Array(" resumed>".utf8)
        while start < end {
            let stop = log.withUnsafeBufferPointer { buffer -> Int in
                guard let found = memchr(buffer.baseAddress! + start, 0x0A, end - start) else { return end }
                return buffer.baseAddress!.distance(to: found.assumingMemoryBound(to: UInt8.self))
            }
            defer { start = stop + 1 }
            if stop == start { continue }
            var index = start
            var pid = 0
            while index < stop, log[index] >= 0x30, log[index] <= 0x39 {
                pid = pid * 10 + Int(log[index] - 0x30)
                index += 1
            }
            guard index > start, index < stop, log[index] == 0x20 else {
                lines.append(Line(pid: -1, kind: .unreadable(String(decoding: log[start..<stop], as: UTF8.self))))
                continue
            }
            // strace pads the pid column ("812  openat(…"), so the call starts after any spaces.
            while index < stop, log[index] == 0x20 { index += 1 }
            if Self.has(log, at: index, Array("<... ".utf8)) {
                guard let (slot, head) = pending.removeValue(forKey: pid),
                    let mark = Self.find(resumedMark, in: log, from: index, to: stop)
                else {
                    lines.append(
                        Line(pid: pid, kind: .unreadable(String(decoding: log[index..<stop], as: UTF8.self))))
                    continue
                }
                let joined = head + log[(mark + resumedMark.count)..<stop]
                let from = bytes.count
                bytes += joined
                lines[slot] = Self.parse(bytes, pid: pid, from: from, to: bytes.count)
            } else if stop - index >= unfinished.count, Self.has(log, at: stop - unfinished.count, unfinished) {
                // Its place is kept where it started; it is filled when it resumes.
                let head = Array(log[index..<(stop - unfinished.count)])
                lines.append(Line(pid: pid, kind: .meta))
                pending[pid] = (lines.count - 1, head)
            } else {
                lines.append(Self.parse(log, pid: pid, from: index, to: stop))
            }
        }
        // A call that never resumed (its process was killed in it): its result is unknown.
        for (pid, (slot, head)) in pending {
            let from = bytes.count
            bytes += head + Array(") = ?".utf8)
            lines[slot] = Self.parse(bytes, pid: pid, from: from, to: bytes.count)
        }
    }

    static func has(_ bytes: [UInt8], at index: Int, _ prefix: [UInt8]) -> Bool {
        guard index + prefix.count <= bytes.count else { return false }
        for offset in prefix.indices where bytes[index + offset] != prefix[offset] { return false }
        return true
    }

    static func find(_ needle: [UInt8], in bytes: [UInt8], from: Int, to: Int) -> Int? {
        guard !needle.isEmpty, to - from >= needle.count else { return nil }
        var index = from
        while index <= to - needle.count {
            if bytes[index] == needle[0], has(bytes, at: index, needle) { return index }
            index += 1
        }
        return nil
    }

    /// One line after its pid: a call, a process's end or a signal, or unreadable.
    static func parse(_ bytes: [UInt8], pid: Int, from: Int, to: Int) -> Line {
        if has(bytes, at: from, Array("+++ ".utf8)) {
            let text = String(decoding: bytes[from..<to], as: UTF8.self)
            if text.hasPrefix("+++ killed by ") {
                let signal = text.dropFirst("+++ killed by ".count).prefix { $0 != " " }
                return Line(pid: pid, kind: .killed(signal: String(signal)))
            }
            return Line(pid: pid, kind: .meta)
        }
        if has(bytes, at: from, Array("--- ".utf8)) { return Line(pid: pid, kind: .meta) }
        let unreadable = Line(pid: pid, kind: .unreadable(String(decoding: bytes[from..<to], as: UTF8.self)))
        var open = from
        while open < to, isNameByte(bytes[open]) { open += 1 }
        guard open > from, open < to, bytes[open] == UInt8(ascii: "("), isLetter(bytes[from]) else {
            return unreadable
        }
        let name = String(decoding: bytes[from..<open], as: UTF8.self)
        let call = Call.byName[name] ?? .other
        // The arguments end at the first ")" outside quotes, brackets and descriptor paths.
        var close: Int?
        scanUnquoted(bytes, from: open + 1, to: to) { index, byte, depth in
            guard byte == UInt8(ascii: ")"), depth == 0 else { return true }
            close = index
            return false
        }
        guard let close, let equals = find(Array("= ".utf8), in: bytes, from: close, to: to) else {
            return unreadable
        }
        return Line(
            pid: pid, kind: .call(call, name: name, arguments: (open + 1)..<close, result: (equals + 2)..<to))
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (0x61...0x7A).contains(byte) || (0x41...0x5A).contains(byte)
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        isLetter(byte) || (0x30...0x39).contains(byte) || byte == UInt8(ascii: "_")
    }

    /// Calls `visit` with each bracket and comma in `from..<to` outside double quotes (escapes
    /// honoured) and outside descriptor paths, with the bracket depth before it, until `visit`
    /// returns false.
    ///
    /// A descriptor path (`3</a(b>`, `AT_FDCWD</w)>`) is printed unescaped but for `<`, `>` and
    /// control bytes (`\74`, `\76`, `\n`), so everything from the `<` after a descriptor to the
    /// next `>` is the path, whatever brackets or quotes it holds.
    static func scanUnquoted(_ bytes: [UInt8], from: Int, to: Int, _ visit: (Int, UInt8, Int) -> Bool) {
        bytes.withUnsafeBufferPointer { buffer in
            var inQuote = false
            var escaped = false
            var depth = 0
            var index = from
            while index < to {
                let byte = buffer[index]
                if inQuote {
                    if escaped {
                        escaped = false
                    } else if byte == 0x5C {  // \
                        escaped = true
                    } else if byte == 0x22 {  // "
                        inQuote = false
                    }
                } else if byte == 0x22 {
                    inQuote = true
                } else if byte == 0x3C, index > from, isDescriptorEnd(buffer[index - 1]) {
                    // < after a descriptor number or AT_FDCWD: skip to the closing >.
                    index += 1
                    while index < to, buffer[index] != 0x3E { index += 1 }
                } else {
                    switch byte {
                    case 0x28, 0x5B, 0x7B:  // ( [ {
                        guard visit(index, byte, depth) else { return }
                        depth += 1
                    case 0x29, 0x5D, 0x7D:  // ) ] }
                        guard visit(index, byte, depth) else { return }
                        depth -= 1
                    case 0x2C:  // ,
                        guard visit(index, byte, depth) else { return }
                    default: break
                    }
                }
                index += 1
            }
        }
    }

    /// A byte a descriptor ends with before `-y`'s `<`: a digit, or the `D` of `AT_FDCWD`.
    private static func isDescriptorEnd(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || byte == UInt8(ascii: "D")
    }

    /// The top-level arguments in `range`, split at commas outside quotes, brackets and
    /// descriptor paths.
    func arguments(_ range: Range<Int>) -> [Range<Int>] {
        var parts = [Range<Int>]()
        var start = range.lowerBound
        func trimmed(_ from: Int, _ to: Int) -> Range<Int> {
            var from = from
            while from < to, bytes[from] == 0x20 { from += 1 }
            return from..<to
        }
        Self.scanUnquoted(bytes, from: range.lowerBound, to: range.upperBound) { index, byte, depth in
            if byte == UInt8(ascii: ","), depth == 0 {
                parts.append(trimmed(start, index))
                start = index + 1
            }
            return true
        }
        if start < range.upperBound { parts.append(trimmed(start, range.upperBound)) }
        return parts
    }

    /// Whether an `execve`'s arguments start runc's container init (`["…runc", "init"]`).
    func isRuntimeInit(_ range: Range<Int>) -> Bool {
        let fields = arguments(range)
        guard fields.count > 1, starts(fields[1], "[\"") else { return false }
        let suffix = Array("runc\", \"init\"]".utf8)
        let argv = fields[1]
        return argv.count >= suffix.count && Self.has(bytes, at: argv.upperBound - suffix.count, suffix)
    }

    func starts(_ range: Range<Int>, _ prefix: String) -> Bool {
        let prefix = Array(prefix.utf8)
        return range.count >= prefix.count && Self.has(bytes, at: range.lowerBound, prefix)
    }

    /// Whether `needle` is in `range`, outside quoted strings (a flag, never a path's bytes).
    func contains(_ range: Range<Int>, _ needle: String) -> Bool {
        let needle = Array(needle.utf8)
        var found = false
        var inQuote = false
        var escaped = false
        var index = range.lowerBound
        while index < range.upperBound, !found {
            let byte = bytes[index]
            if inQuote {
                if escaped {
                    escaped = false
                } else if byte == 0x5C {
                    escaped = true
                } else if byte == 0x22 {
                    inQuote = false
                }
            } else if byte == 0x22 {
                inQuote = true
            } else if byte == needle[0], index + needle.count <= range.upperBound, Self.has(bytes, at: index, needle) {
                found = true
            }
            index += 1
        }
        return found
    }

    func leadingNumber(_ range: Range<Int>) -> Int? {
        var value = 0
        var index = range.lowerBound
        while index < range.upperBound, (0x30...0x39).contains(bytes[index]) {
            value = value * 10 + Int(bytes[index] - 0x30)
            index += 1
        }
        return index > range.lowerBound ? value : nil
    }

    /// The pid a `clone` returned, as strace sees it: a child in another PID namespace is
    /// printed `2 /* 13385 in strace's PID NS */` (`--decode-pids=pidns`).
    func childPid(_ range: Range<Int>) -> Int? {
        guard let own = leadingNumber(range) else { return nil }
        guard let comment = Self.find(Array(" /* ".utf8), in: bytes, from: range.lowerBound, to: range.upperBound),
            Self.find(Array(" in strace's PID NS */".utf8), in: bytes, from: comment, to: range.upperBound) != nil
        else { return own }
        return leadingNumber((comment + 4)..<range.upperBound) ?? own
    }

    /// The decoded value of a quoted argument (`"a\"b\342\200\224"`), nil when it is not a
    /// whole string (an address, or a string strace cut short with `...`).
    func string(_ range: Range<Int>) -> String? {
        guard range.count >= 2, bytes[range.lowerBound] == UInt8(ascii: "\""),
            bytes[range.upperBound - 1] == UInt8(ascii: "\"")
        else { return nil }
        return Self.decode(bytes[(range.lowerBound + 1)..<(range.upperBound - 1)])
    }

    /// The host path `-y` prints after a descriptor: `5</tool>` → `/tool`; nil for a descriptor
    /// that is not a path (`3<socket:[7]>`) or none.
    func descriptorPath(_ range: Range<Int>) -> String? {
        var open = range.lowerBound
        while open < range.upperBound, bytes[open] != UInt8(ascii: "<") {
            // A result's descriptor comes first ("3</x>"); anything else before < is no descriptor.
            guard
                (0x30...0x39).contains(bytes[open]) || (0x41...0x5A).contains(bytes[open])
                    || bytes[open] == UInt8(ascii: "_")
            else { return nil }
            open += 1
        }
        guard open + 1 < range.upperBound, bytes[open + 1] == UInt8(ascii: "/") else { return nil }
        var close = open + 1
        while close < range.upperBound, bytes[close] != UInt8(ascii: ">") { close += 1 }
        guard close < range.upperBound else { return nil }
        return Self.decode(bytes[(open + 1)..<close])
    }

    /// The `sun_path` of a Unix socket address (`{sa_family=AF_UNIX, sun_path="/run/x"}`); nil
    /// for an abstract one (`sun_path=@"…"`) or none.
    func socketPath(_ range: Range<Int>) -> String? {
        guard let at = Self.find(Array("sun_path=\"".utf8), in: bytes, from: range.lowerBound, to: range.upperBound)
        else { return nil }
        var close = at + 10
        var escaped = false
        while close < range.upperBound {
            if escaped {
                escaped = false
            } else if bytes[close] == 0x5C {
                escaped = true
            } else if bytes[close] == 0x22 {
                break
            }
            close += 1
        }
        guard close < range.upperBound else { return nil }
        return Self.decode(bytes[(at + 10)..<close])
    }

    /// C escapes as strace prints them: `\\`, `\"`, `\n`, `\t`, `\xHH`, `\ooo`.
    static func decode(_ text: ArraySlice<UInt8>) -> String {
        guard text.contains(UInt8(ascii: "\\")) else { return String(decoding: text, as: UTF8.self) }
        var bytes = [UInt8]()
        var iterator = text
        while let byte = iterator.popFirst() {
            guard byte == UInt8(ascii: "\\"), let next = iterator.popFirst() else {
                bytes.append(byte)
                continue
            }
            switch next {
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "v"): bytes.append(0x0B)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "x"):
                var value: UInt8 = 0
                for _ in 0..<2 {
                    guard let digit = iterator.first, let hex = UInt8(String(UnicodeScalar(digit)), radix: 16)
                    else { break }
                    value = value &* 16 &+ hex
                    iterator.removeFirst()
                }
                bytes.append(value)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var value = next - UInt8(ascii: "0")
                for _ in 0..<2 {
                    guard let digit = iterator.first, (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(digit)
                    else { break }
                    value = value &* 8 &+ (digit - UInt8(ascii: "0"))
                    iterator.removeFirst()
                }
                bytes.append(value)
            default: bytes.append(next)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
