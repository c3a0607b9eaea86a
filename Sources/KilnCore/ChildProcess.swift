import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs another program (buildah) in its own process group, with stdout and stderr merged into
/// one stream handed over line by line. The wait happens on a thread of its own, never on the
/// cooperative pool, so several children can run while kiln's tasks go on. While it runs, the
/// group is registered with `Interruption`, so SIGINT or SIGTERM to kiln stops it too.
public enum ChildProcess {
    public struct Outcome: Sendable {
        /// The exit status, or 128 + the signal that ended it.
        public var status: Int32
        /// Everything it printed, stdout and stderr interleaved.
        public var output: String
    }

    /// Why a program could not be started.
    public struct LaunchError: KilnError {
        public var program: String
        public var code: Int32
        public var description: String { "cannot start \(program): \(String(cString: strerror(code)))" }
        public var category: ErrorCategory { .internal }
    }

    /// Runs `program` with `arguments` and waits for it to end.
    /// - Parameters:
    ///   - environment: the child's environment (`NAME=value`); the parent's when nil.
    ///   - line: called with each line of output as it arrives (without the newline).
    public static func run(
        _ program: String, _ arguments: [String], environment: [String]? = nil,
        line: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws(LaunchError) -> Outcome {
        let result: Result<Outcome, LaunchError> = await withCheckedContinuation { continuation in
            BlockingThread.start {
                continuation.resume(returning: runBlocking(program, arguments, environment: environment, line: line))
            }
        }
        return try result.get()
    }

    /// The blocking part: spawn, read until the pipe closes, reap.
    static func runBlocking(
        _ program: String, _ arguments: [String], environment: [String]?, line: (String) -> Void
    ) -> Result<Outcome, LaunchError> {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { return .failure(LaunchError(program: program, code: errno)) }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        posix_spawn_file_actions_addclose(&actions, writeEnd)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A group of its own (so kiln can stop everything it started), default signal handling
        // and nothing blocked (kiln ignores SIGINT/SIGTERM itself, and a test runner may block them).
        var none = sigset_t()
        sigemptyset(&none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([program] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned: Int32
        if let environment {
            let envp = environment.map { strdup($0) } + [nil]
            defer { envp.forEach { free($0) } }
            spawned = posix_spawn(&pid, program, &actions, &attributes, argv, envp)
        } else {
            spawned = posix_spawn(&pid, program, &actions, &attributes, argv, environ)
        }
        close(writeEnd)
        guard spawned == 0 else {
            close(readEnd)
            return .failure(LaunchError(program: program, code: spawned))
        }
        let registration = Interruption.stopOnInterrupt(processGroup: pid)
        defer { registration.end() }

        var output = [UInt8]()
        var pending = [UInt8]()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = read(readEnd, buffer.baseAddress, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
            output.append(contentsOf: chunk)
            pending.append(contentsOf: chunk)
            while let newline = pending.firstIndex(of: 0x0A) {
                line(String(decoding: pending[..<newline], as: UTF8.self))
                pending.removeSubrange(...newline)
            }
        }
        if !pending.isEmpty { line(String(decoding: pending, as: UTF8.self)) }
        close(readEnd)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        Interruption.holdIfStopping()
        let exit: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return .success(Outcome(status: exit, output: String(decoding: output, as: UTF8.self)))
    }

    /// The first executable named `tool` on `PATH`.
    public static func find(_ tool: String, path: String?) -> String? {
        for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/\(tool)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}

/// A detached thread of its own for one blocking job (a child's pipe and `waitpid`), so it never
/// takes one of the cooperative pool's few threads.
enum BlockingThread {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    static func start(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { context in
            let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        if created == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<Box>.fromOpaque(box).takeRetainedValue().body()
        }
    }
}
