import KilnOCI

/// What one `RUN` step touched inside the image, read from an `strace -f -y` log of buildah.
///
/// The log mixes buildah's own work on the host with the step's. The step's processes are the
/// children (not threads) that a `buildah-chroot-exec` re-exec starts after its `chroot(ROOT)`,
/// and everything they start; paths they name are paths inside the image, and the host paths
/// `-y` prints for descriptors lose the `ROOT` prefix. Everything else (buildah, its
/// `chrootuser-open` and `buildah-copier` helpers, the chroot-exec process itself) is left out.
///
/// Each touch is kept with how it depends on the file system below the step: `.entry` (opened,
/// executed, stat'ed, checked with `access`, its link read, created, changed or removed: its
/// state), `.listing` (`getdents`: the names in the directory) or `.tree` (renamed or removed as
/// a directory: everything below it). Paths under the pseudo file systems and the files buildah
/// mounts over the image (`/etc/hosts`, `/etc/resolv.conf`, …) are not the image's and are
/// dropped. Under QEMU the same calls appear, with the emulator's own probes among them.
package struct RunTrace: Sendable, Equatable {
    /// How a step depends on a path.
    package enum Access: String, Sendable, Codable, Comparable {
        case entry
        case listing
        case tree

        package static func < (a: Access, b: Access) -> Bool { a.rawValue < b.rawValue }
    }

    /// One path the step touched, absolute inside the image, as the step named it (symlinks not
    /// resolved: whoever checks it resolves it in the image it checks).
    package struct Touch: Sendable, Hashable, Comparable, Codable {
        package var path: String
        package var access: Access

        package init(path: String, access: Access) {
            self.path = path
            self.access = access
        }

        package static func < (a: Touch, b: Touch) -> Bool {
            (a.path.utf8.lexicographicallyPrecedes(b.path.utf8)) || (a.path == b.path && a.access < b.access)
        }
    }

    /// Sorted, each (path, access) once.
    package var touches: [Touch]
    /// How many step processes the log showed (0 means the log did not show the step at all).
    package var processes: Int

    /// The stored form's media type, and its format line.
    package static let mediaType = MediaType("application/vnd.kiln.run-reads.v1+json")
    package static let format = "kiln-run-reads/1"

    /// Paths that are not the image's while a step runs: pseudo file systems and what buildah
    /// mounts over the image.
    package static let notTheImage = [
        "/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run/.containerenv",
        "/run/secrets",
    ]

    /// Reads the log `text`. `ignoring` adds paths (with everything below them) that are not the
    /// image's for this step, such as the targets of `RUN --mount`.
    package init(parsing text: String, ignoring extra: [String] = []) {
        let lines = StraceLine.join(text)
        // Pass 1: the process tree, and each chroot-exec's root.
        var parent = [Int: Int]()
        var threads = Set<Int>()
        var chrootExec = [Int: String]()  // pid → root, once chrooted
        var execPids = Set<Int>()
        for line in lines {
            switch line.call {
            case "clone", "clone3", "fork", "vfork":
                guard let child = Int(line.result.prefix { $0.isNumber }), child > 0 else { continue }
                parent[child] = line.pid
                if line.arguments.contains("CLONE_THREAD") { threads.insert(child) }
            case "execve", "execveat":
                if line.arguments.contains("[\"buildah-chroot-exec\"") { execPids.insert(line.pid) }
            case "chroot":
                if execPids.contains(line.pid), line.result.hasPrefix("0"),
                    let root = StraceLine.strings(in: line.arguments).first
                {
                    chrootExec[line.pid] = root
                }
            default: break
            }
        }
        // A step process: a non-thread child of a chrooted chroot-exec, or anything below one.
        var rootOf = [Int: String]()
        func root(of pid: Int) -> String? {
            if let known = rootOf[pid] { return known }
            var current = pid
            var chain = [Int]()
            while let up = parent[current] {
                chain.append(current)
                if let root = chrootExec[up] {
                    // The chroot-exec's own threads are buildah's, not the step's.
                    guard let first = chain.last, !threads.contains(first) else { return nil }
                    for member in chain { rootOf[member] = root }
                    return root
                }
                current = up
                if chain.count > 4096 { return nil }
            }
            return nil
        }
        var cwd = [Int: String]()
        var seen = Set<Touch>()
        var processes = Set<Int>()
        let ignored = Self.notTheImage + extra
        func add(_ path: String, _ access: Access) {
            let normal = RunTrace.normalize(path)
            for prefix in ignored where normal == prefix || normal.hasPrefix(prefix + "/") { return }
            seen.insert(Touch(path: normal, access: access))
        }
        for line in lines {
            // The chroot-exec's working directory, once it is inside the root, is where the
            // step's first process starts.
            if chrootExec[line.pid] != nil, line.call == "chroot" { cwd[line.pid] = "/" }
            if chrootExec[line.pid] != nil, line.call == "chdir", cwd[line.pid] != nil,
                let target = StraceLine.strings(in: line.arguments).first
            {
                let base = cwd[line.pid] ?? "/"
                cwd[line.pid] = RunTrace.normalize(target.hasPrefix("/") ? target : base + "/" + target)
            }
            guard let root = root(of: line.pid) else { continue }
            processes.insert(line.pid)
            if cwd[line.pid] == nil, let up = parent[line.pid] { cwd[line.pid] = cwd[up] ?? "/" }
            let here = cwd[line.pid] ?? "/"
            let failed = line.result.hasPrefix("-1")
            let arguments = StraceLine.arguments(line.arguments)
            /// An image path from a host path `-y` printed, nil when it is not below the root.
            func inside(_ host: String) -> String? {
                if host == root { return "/" }
                guard host.hasPrefix(root + "/") else { return nil }
                return String(host.dropFirst(root.count))
            }
            /// The directory a descriptor argument (`AT_FDCWD</x>`, `5</x>`) stands for.
            func directory(_ argument: Substring) -> String? {
                if let host = StraceLine.descriptorPath(argument) {
                    let path = inside(host)
                    if argument.hasPrefix("AT_FDCWD"), let path { cwd[line.pid] = path }
                    return path
                }
                return argument.hasPrefix("AT_FDCWD") ? here : nil
            }
            func path(_ index: Int, at dirfd: Int? = nil) -> String? {
                guard index < arguments.count, let name = StraceLine.string(arguments[index]) else { return nil }
                if name.hasPrefix("/") { return name }
                let base: String?
                if let dirfd {
                    guard dirfd < arguments.count else { return nil }
                    base = directory(arguments[dirfd])
                } else {
                    base = here
                }
                guard let base else { return nil }
                return name.isEmpty ? base : base + "/" + name
            }
            let call = line.call
            switch call {
            case "chdir":
                if !failed, let target = path(0) { cwd[line.pid] = RunTrace.normalize(target) }
                if let target = path(0) { add(target, .entry) }
            case "fchdir":
                if let first = arguments.first, let host = StraceLine.descriptorPath(first),
                    let target = inside(host)
                {
                    cwd[line.pid] = target
                }
            case "getdents64", "getdents":
                if let first = arguments.first, let host = StraceLine.descriptorPath(first),
                    let target = inside(host)
                {
                    add(target, .listing)
                }
            case "rename", "link":
                if let from = path(0) { add(from, call == "rename" ? .tree : .entry) }
                if let to = path(1) { add(to, .entry) }
            case "renameat", "renameat2", "linkat":
                if let from = path(1, at: 0) { add(from, call == "linkat" ? .entry : .tree) }
                if let to = path(3, at: 2) { add(to, .entry) }
            case "symlink":
                if let to = path(1) { add(to, .entry) }
            case "symlinkat":
                if let to = path(2, at: 1) { add(to, .entry) }
            case "rmdir":
                if let target = path(0) { add(target, .tree) }
            case "unlinkat":
                let removesDirectory = arguments.count > 2 && arguments[2].contains("AT_REMOVEDIR")
                if let target = path(1, at: 0) { add(target, removesDirectory ? .tree : .entry) }
            default:
                // An empty path with a descriptor (`fstatat(5</x>, "", AT_EMPTY_PATH)`) is the
                // descriptor's own file.
                if let position = Self.pathArgument[call], let target = path(position.path, at: position.dirfd) {
                    add(target, .entry)
                }
            }
        }
        touches = seen.sorted()
        self.processes = processes.count
    }

    /// Where the path (and its directory descriptor, for the `*at` calls) is among a call's
    /// arguments.
    static let pathArgument: [String: (path: Int, dirfd: Int?)] = {
        var table = [String: (path: Int, dirfd: Int?)]()
        for call in [
            "open", "creat", "execve", "stat", "lstat", "stat64", "lstat64", "access", "readlink", "mkdir",
            "unlink", "chmod", "chown", "lchown", "truncate", "utime", "utimes", "mknod", "getxattr",
            "lgetxattr", "listxattr", "llistxattr", "setxattr", "lsetxattr", "removexattr", "lremovexattr",
            "statfs",
        ] {
            table[call] = (0, nil)
        }
        for call in [
            "openat", "openat2", "execveat", "newfstatat", "fstatat64", "statx", "faccessat", "faccessat2",
            "readlinkat", "mkdirat", "fchmodat", "fchmodat2", "fchownat", "utimensat", "futimesat", "mknodat",
            "name_to_handle_at",
        ] {
            table[call] = (1, 0)
        }
        return table
    }()

    /// `a//b/./c/` → `/a/b/c`; `..` is kept (it can only be resolved against the image).
    static func normalize(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        return "/" + parts.joined(separator: "/")
    }
}

/// One system call line of an `strace -f` log, with `<unfinished ...>` / `<... resumed>` halves
/// joined.
struct StraceLine {
    var pid: Int
    var call: String
    /// The text between the call's parentheses.
    var arguments: Substring
    /// The text after ` = `.
    var result: Substring

    static func join(_ text: String) -> [StraceLine] {
        var pending = [Int: String]()
        var lines = [StraceLine]()
        for raw in text.split(separator: "\n") {
            guard let space = raw.firstIndex(of: " "), let pid = Int(raw[..<space]) else { continue }
            // strace pads the pid column ("812  openat(…"), so the call starts after any spaces.
            var body = String(raw[raw.index(after: space)...].drop { $0 == " " })
            if body.hasPrefix("<... ") {
                guard let head = pending.removeValue(forKey: pid),
                    let resumed = body.range(of: " resumed>")
                else { continue }
                body = head + body[resumed.upperBound...]
            } else if body.hasSuffix(" <unfinished ...>") {
                pending[pid] = String(body.dropLast(" <unfinished ...>".count))
                continue
            }
            if let line = parse(pid: pid, body) { lines.append(line) }
        }
        return lines
    }

    static func parse(pid: Int, _ body: String) -> StraceLine? {
        guard let open = body.firstIndex(of: "("), body.first?.isLetter == true else { return nil }
        let call = String(body[..<open])
        guard call.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
        // The arguments end at the first ")" outside quotes and brackets.
        var close: String.Index?
        scanUnquoted(body[body.index(after: open)...], brackets: ("([{", ")]}")) { index, character, depth in
            guard character == ")", depth == 0 else { return true }
            close = index
            return false
        }
        guard let close else { return nil }
        let rest = body[body.index(after: close)...]
        guard let equals = rest.range(of: "= ") else { return nil }
        return StraceLine(
            pid: pid, call: call, arguments: body[body.index(after: open)..<close], result: rest[equals.upperBound...])
    }

    /// The top-level arguments, split at commas outside quotes and brackets.
    static func arguments(_ text: Substring) -> [Substring] {
        var parts = [Substring]()
        var start = text.startIndex
        scanUnquoted(text, brackets: ("([{<", ")]}>")) { index, character, depth in
            if character == ",", depth == 0 {
                parts.append(text[start..<index].drop { $0 == " " })
                start = text.index(after: index)
            }
            return true
        }
        if start < text.endIndex { parts.append(text[start...].drop { $0 == " " }) }
        return parts
    }

    /// Calls `visit` with each character of `text` outside double quotes (escapes honoured) and
    /// the bracket depth before it, until `visit` returns false.
    static func scanUnquoted(
        _ text: Substring, brackets: (open: String, close: String), _ visit: (String.Index, Character, Int) -> Bool
    ) {
        var inQuote = false
        var escaped = false
        var depth = 0
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if inQuote {
                if escaped {
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == "\"" {
                    inQuote = false
                }
            } else if character == "\"" {
                inQuote = true
            } else {
                guard visit(index, character, depth) else { return }
                if brackets.open.contains(character) {
                    depth += 1
                } else if brackets.close.contains(character) {
                    depth -= 1
                }
            }
            index = text.index(after: index)
        }
    }

    /// The decoded value of a quoted argument (`"a\"b\342\200\224"`), nil when it is not a
    /// whole string (an address, or a string strace cut short with `...`).
    static func string(_ argument: Substring) -> String? {
        guard argument.first == "\"", argument.last == "\"", argument.count >= 2 else { return nil }
        return decode(argument.dropFirst().dropLast())
    }

    /// Every quoted string in `text`, decoded.
    static func strings(in text: Substring) -> [String] {
        arguments(text).compactMap { string($0) }
    }

    /// The host path `-y` prints after a descriptor: `5</tool>` → `/tool`.
    static func descriptorPath(_ argument: Substring) -> String? {
        guard let open = argument.firstIndex(of: "<"), argument.last == ">" else { return nil }
        let inner = argument[argument.index(after: open)..<argument.index(before: argument.endIndex)]
        guard inner.first == "/" else { return nil }
        return decode(inner)
    }

    /// C escapes as strace prints them: `\\`, `\"`, `\n`, `\t`, `\xHH`, `\ooo`.
    static func decode(_ text: Substring) -> String {
        var bytes = [UInt8]()
        var iterator = Array(text.utf8)[...]
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
