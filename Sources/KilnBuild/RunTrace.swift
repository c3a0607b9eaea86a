import KilnOCI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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
        self.init(log: Array(text.utf8), ignoring: extra)
    }

    /// Reads the log's bytes (as `strace -o` wrote them).
    package init(log bytes: [UInt8], ignoring extra: [String] = []) {
        let log = StraceLog(bytes)
        let lines = log.lines
        // Pass 1: the process tree, and each chroot-exec's root.
        var parent = [Int: Int]()
        var threads = Set<Int>()
        var chrootExec = [Int: String]()  // pid → root, once chrooted
        var execPids = Set<Int>()
        for line in lines {
            switch line.call {
            case .clone:
                guard let child = log.leadingNumber(line.result), child > 0 else { continue }
                parent[child] = line.pid
                if log.contains(line.arguments, "CLONE_THREAD") { threads.insert(child) }
            case .execve:
                if log.contains(line.arguments, "[\"buildah-chroot-exec\"") { execPids.insert(line.pid) }
            case .chroot:
                if execPids.contains(line.pid), log.starts(line.result, "0"),
                    let first = log.arguments(line.arguments).first, let root = log.string(first)
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
                    // The chroot-exec's own threads are buildah's, not the step's.
                    if let first = chain.last, !threads.contains(first) { found = root }
                    break
                }
                current = up
                if chain.count > 4096 { break }
            }
            rootOf[pid] = .some(found)
            return found
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
            if chrootExec[line.pid] != nil {
                if line.call == .chroot { cwd[line.pid] = "/" }
                if line.call == .chdir, let base = cwd[line.pid], let first = log.arguments(line.arguments).first,
                    let target = log.string(first)
                {
                    cwd[line.pid] = RunTrace.normalize(target.hasPrefix("/") ? target : base + "/" + target)
                }
                continue
            }
            guard line.call != .other, let root = root(of: line.pid) else { continue }
            processes.insert(line.pid)
            if cwd[line.pid] == nil, let up = parent[line.pid] { cwd[line.pid] = cwd[up] ?? "/" }
            let here = cwd[line.pid] ?? "/"
            let failed = log.starts(line.result, "-1")
            let arguments = log.arguments(line.arguments)
            /// An image path from a host path `-y` printed, nil when it is not below the root.
            func inside(_ host: String) -> String? {
                if host == root { return "/" }
                guard host.hasPrefix(root + "/") else { return nil }
                return String(host.dropFirst(root.count))
            }
            func descriptor(_ index: Int) -> String? {
                guard index < arguments.count, let host = log.descriptorPath(arguments[index]) else { return nil }
                return inside(host)
            }
            /// The directory a descriptor argument (`AT_FDCWD</x>`, `5</x>`) stands for.
            func directory(_ index: Int) -> String? {
                guard index < arguments.count else { return nil }
                let atCWD = log.starts(arguments[index], "AT_FDCWD")
                if let host = log.descriptorPath(arguments[index]) {
                    let path = inside(host)
                    if atCWD, let path { cwd[line.pid] = path }
                    return path
                }
                return atCWD ? here : nil
            }
            func path(_ index: Int, at dirfd: Int? = nil) -> String? {
                guard index < arguments.count, let name = log.string(arguments[index]) else { return nil }
                if name.hasPrefix("/") { return name }
                guard let base = dirfd.map(directory) ?? here else { return nil }
                return name.isEmpty ? base : base + "/" + name
            }
            switch line.call {
            case .chdir:
                if let target = path(0) {
                    if !failed { cwd[line.pid] = RunTrace.normalize(target) }
                    add(target, .entry)
                }
            case .fchdir:
                if let target = descriptor(0) { cwd[line.pid] = target }
            case .getdents:
                if let target = descriptor(0) { add(target, .listing) }
            case .rename, .link:
                if let from = path(0) { add(from, line.call == .rename ? .tree : .entry) }
                if let to = path(1) { add(to, .entry) }
            case .renameat, .linkat:
                if let from = path(1, at: 0) { add(from, line.call == .linkat ? .entry : .tree) }
                if let to = path(3, at: 2) { add(to, .entry) }
            case .symlink:
                if let to = path(1) { add(to, .entry) }
            case .symlinkat:
                if let to = path(2, at: 1) { add(to, .entry) }
            case .rmdir:
                if let target = path(0) { add(target, .tree) }
            case .unlinkat:
                let removesDirectory = arguments.count > 2 && log.contains(arguments[2], "AT_REMOVEDIR")
                if let target = path(1, at: 0) { add(target, removesDirectory ? .tree : .entry) }
            case .pathAt(let position, let dirfd):
                // An empty path with a descriptor (`fstatat(5</x>, "", AT_EMPTY_PATH)`) is the
                // descriptor's own file.
                if let target = path(position, at: dirfd) { add(target, .entry) }
            case .execve:
                if let target = path(line.callName == "execveat" ? 1 : 0, at: line.callName == "execveat" ? 0 : nil) {
                    add(target, .entry)
                }
            case .clone, .chroot, .other: break
            }
        }
        touches = seen.sorted()
        self.processes = processes.count
    }

    /// Where the path (and its directory descriptor, for the `*at` calls) is among a call's
    /// arguments. Extended attributes and timestamps are left out: states do not compare them,
    /// what a step sets is in its layer, and buildah's own copying and diffing calls them for every
    /// file of the image (a third of a traced install's stops).
    static let pathArgument: [String: (path: Int, dirfd: Int?)] = {
        var table = [String: (path: Int, dirfd: Int?)]()
        for call in [
            "open", "creat", "execve", "stat", "lstat", "stat64", "lstat64", "access", "readlink", "mkdir",
            "unlink", "chmod", "chown", "lchown", "truncate", "mknod", "statfs",
        ] {
            table[call] = (0, nil)
        }
        for call in [
            "openat", "openat2", "execveat", "newfstatat", "fstatat64", "statx", "faccessat", "faccessat2",
            "readlinkat", "mkdirat", "fchmodat", "fchmodat2", "fchownat", "mknodat", "name_to_handle_at",
        ] {
            table[call] = (1, 0)
        }
        return table
    }()

    /// The system calls strace stops for (`-e trace=`): exactly the ones the parser reads, each
    /// marked `?` so a name the architecture lacks (`open` on arm64) is skipped, not an error.
    static var tracedCalls: String {
        StraceLog.Call.byName.keys.sorted().map { "?" + $0 }.joined(separator: ",")
    }

    /// `a//b/./c/` → `/a/b/c`; `..` is kept (it can only be resolved against the image).
    package static func normalize(_ path: String) -> String {
        // Most paths are normal already: absolute, no empty or "." component, no trailing "/".
        if path == "/" { return path }
        if path.utf8.first == 0x2F {
            var length = 0
            var firstIsDot = false
            var clean = true
            for byte in path.utf8.dropFirst() {
                if byte == 0x2F {
                    if length == 0 || (length == 1 && firstIsDot) { clean = false }
                    length = 0
                } else {
                    if length == 0 { firstIsDot = byte == 0x2E }
                    length += 1
                }
            }
            if length == 0 || (length == 1 && firstIsDot) { clean = false }
            if clean { return path }
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        return "/" + parts.joined(separator: "/")
    }
}

/// An `strace -f -y` log as bytes, cut into system call lines (`<unfinished ...>` and
/// `<... resumed>` halves joined), read without making a string of every line: a dependency
/// install logs hundreds of megabytes.
struct StraceLog {
    /// The calls `RunTrace` reads, by what it takes from them.
    enum Call: Equatable {
        case clone, execve, chroot, chdir, fchdir, getdents
        case rename, link, renameat, linkat, symlink, symlinkat, rmdir, unlinkat
        /// A call whose argument `path` is a path, relative to the descriptor argument `dirfd`.
        case pathAt(path: Int, dirfd: Int?)
        case other

        static let byName: [String: Call] = {
            var table = [String: Call]()
            for (name, position) in RunTrace.pathArgument {
                table[name] = .pathAt(path: position.path, dirfd: position.dirfd)
            }
            for name in ["clone", "clone3", "fork", "vfork"] { table[name] = .clone }
            for name in ["execve", "execveat"] { table[name] = .execve }
            for name in ["getdents", "getdents64"] { table[name] = .getdents }
            for (name, call) in [
                ("chroot", Call.chroot), ("chdir", .chdir), ("fchdir", .fchdir), ("rename", .rename), ("link", .link),
                ("renameat", .renameat), ("renameat2", .renameat), ("linkat", .linkat), ("symlink", .symlink),
                ("symlinkat", .symlinkat), ("rmdir", .rmdir), ("unlinkat", .unlinkat),
            ] {
                table[name] = call
            }
            return table
        }()
    }

    struct Line {
        var pid: Int
        var call: Call
        var callName: String
        /// The bytes between the call's parentheses.
        var arguments: Range<Int>
        /// The bytes after ` = `.
        var result: Range<Int>
    }

    /// The log, with joined halves appended at its end (ranges point into it).
    private(set) var bytes: [UInt8]
    private(set) var lines: [Line] = []

    init(_ log: [UInt8]) {
        bytes = log
        let end = log.count
        var pending = [Int: [UInt8]]()
        var start = 0
        let unfinished = Array(" <unfinished ...>".utf8)
        let resumedMark = Array(" resumed>".utf8)
        while start < end {
            let stop = log.withUnsafeBufferPointer { buffer -> Int in
                guard let found = memchr(buffer.baseAddress! + start, 0x0A, end - start) else { return end }
                return buffer.baseAddress!.distance(to: found.assumingMemoryBound(to: UInt8.self))
            }
            defer { start = stop + 1 }
            var index = start
            var pid = 0
            while index < stop, log[index] >= 0x30, log[index] <= 0x39 {
                pid = pid * 10 + Int(log[index] - 0x30)
                index += 1
            }
            guard index > start, index < stop, log[index] == 0x20 else { continue }
            // strace pads the pid column ("812  openat(…"), so the call starts after any spaces.
            while index < stop, log[index] == 0x20 { index += 1 }
            if Self.has(log, at: index, Array("<... ".utf8)) {
                guard var head = pending.removeValue(forKey: pid),
                    let mark = Self.find(resumedMark, in: log, from: index, to: stop)
                else { continue }
                head += log[(mark + resumedMark.count)..<stop]
                let from = bytes.count
                bytes += head
                if let line = Self.parse(bytes, pid: pid, from: from, to: bytes.count) { lines.append(line) }
            } else if stop - index >= unfinished.count, Self.has(log, at: stop - unfinished.count, unfinished) {
                pending[pid] = Array(log[index..<(stop - unfinished.count)])
            } else if let line = Self.parse(log, pid: pid, from: index, to: stop) {
                lines.append(line)
            }
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

    /// `name(arguments) = result`, or nil for anything else (signals, exits).
    static func parse(_ bytes: [UInt8], pid: Int, from: Int, to: Int) -> Line? {
        var open = from
        while open < to, isNameByte(bytes[open]) { open += 1 }
        guard open > from, open < to, bytes[open] == UInt8(ascii: "("), isLetter(bytes[from]) else { return nil }
        let name = String(decoding: bytes[from..<open], as: UTF8.self)
        let call = Call.byName[name] ?? .other
        // The arguments end at the first ")" outside quotes and brackets.
        var close: Int?
        scanUnquoted(bytes, from: open + 1, to: to, angles: false) { index, byte, depth in
            guard byte == UInt8(ascii: ")"), depth == 0 else { return true }
            close = index
            return false
        }
        guard let close, let equals = find(Array("= ".utf8), in: bytes, from: close, to: to) else { return nil }
        return Line(pid: pid, call: call, callName: name, arguments: (open + 1)..<close, result: (equals + 2)..<to)
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (0x61...0x7A).contains(byte) || (0x41...0x5A).contains(byte)
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        isLetter(byte) || (0x30...0x39).contains(byte) || byte == UInt8(ascii: "_")
    }

    /// Calls `visit` with each bracket and comma in `from..<to` outside double quotes (escapes
    /// honoured) and the bracket depth before it, until `visit` returns false. `angles`: `<…>`
    /// (a descriptor's path) nests too.
    static func scanUnquoted(
        _ bytes: [UInt8], from: Int, to: Int, angles: Bool, _ visit: (Int, UInt8, Int) -> Bool
    ) {
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
                } else {
                    // Only brackets and the bytes callers look for are visited.
                    switch byte {
                    case 0x28, 0x5B, 0x7B:  // ( [ {
                        guard visit(index, byte, depth) else { return }
                        depth += 1
                    case 0x29, 0x5D, 0x7D:  // ) ] }
                        guard visit(index, byte, depth) else { return }
                        depth -= 1
                    case 0x3C where angles:  // <
                        depth += 1
                    case 0x3E where angles:  // >
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

    /// The top-level arguments in `range`, split at commas outside quotes and brackets.
    func arguments(_ range: Range<Int>) -> [Range<Int>] {
        var parts = [Range<Int>]()
        var start = range.lowerBound
        func trimmed(_ from: Int, _ to: Int) -> Range<Int> {
            var from = from
            while from < to, bytes[from] == 0x20 { from += 1 }
            return from..<to
        }
        Self.scanUnquoted(bytes, from: range.lowerBound, to: range.upperBound, angles: true) {
            index, byte, depth in
            if byte == UInt8(ascii: ","), depth == 0 {
                parts.append(trimmed(start, index))
                start = index + 1
            }
            return true
        }
        if start < range.upperBound { parts.append(trimmed(start, range.upperBound)) }
        return parts
    }

    func starts(_ range: Range<Int>, _ prefix: String) -> Bool {
        let prefix = Array(prefix.utf8)
        return range.count >= prefix.count && Self.has(bytes, at: range.lowerBound, prefix)
    }

    func contains(_ range: Range<Int>, _ needle: String) -> Bool {
        Self.find(Array(needle.utf8), in: bytes, from: range.lowerBound, to: range.upperBound) != nil
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

    /// The decoded value of a quoted argument (`"a\"b\342\200\224"`), nil when it is not a
    /// whole string (an address, or a string strace cut short with `...`).
    func string(_ range: Range<Int>) -> String? {
        guard range.count >= 2, bytes[range.lowerBound] == UInt8(ascii: "\""),
            bytes[range.upperBound - 1] == UInt8(ascii: "\"")
        else { return nil }
        return Self.decode(bytes[(range.lowerBound + 1)..<(range.upperBound - 1)])
    }

    /// The host path `-y` prints after a descriptor: `5</tool>` → `/tool`.
    func descriptorPath(_ range: Range<Int>) -> String? {
        guard range.count > 2, bytes[range.upperBound - 1] == UInt8(ascii: ">") else { return nil }
        var open = range.lowerBound
        while open < range.upperBound, bytes[open] != UInt8(ascii: "<") { open += 1 }
        guard open + 1 < range.upperBound - 1, bytes[open + 1] == UInt8(ascii: "/") else { return nil }
        return Self.decode(bytes[(open + 1)..<(range.upperBound - 1)])
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
