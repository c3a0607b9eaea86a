import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs another program (buildah) in its own process group, with stdout and stderr merged into
/// one stream handed over line by line. The wait happens on a thread of its own, never on the
/// cooperative pool, so several children can run while kiln's tasks go on. While it runs, the
/// group is registered with `Interruption`, so SIGINT or SIGTERM to kiln stops it too.
package enum ChildProcess {
    package struct Outcome: Sendable {
        /// The exit status, or 128 + the signal that ended it.
        package var status: Int32
        /// The end of what it printed (stdout and stderr interleaved), at most `tailLimit` bytes:
        /// a chatty build keeps memory flat, and errors quote its last lines.
        package var output: String
        /// It ran past its timeout and was stopped.
        package var timedOut = false
        /// Peak resident memory of the child (or of the largest child it waited for), in bytes.
        package var peakMemory: Int64 = 0
    }

    /// How much of a child's output is kept for `Outcome.output`.
    package static let tailLimit = 256 << 10

    /// Why a program could not be started.
    package struct LaunchError: KilnError {
        package var program: String
        package var code: Int32
        package var description: String { "cannot start \(program): \(String(cString: strerror(code)))" }
        package var category: ErrorCategory { .internal }
    }

    /// Runs `program` with `arguments` and waits for it to end. Cancelling the task, or the
    /// `timeout` passing, stops the child's whole process group (SIGTERM, then SIGKILL).
    /// - Parameters:
    ///   - environment: the child's environment (`NAME=value`); the parent's when nil.
    ///   - timeout: seconds it may run; unlimited when nil.
    ///   - standardOutput: a file that gets the child's standard output (created or truncated);
    ///     only its standard error then reaches `line` and the outcome.
    ///   - directory: the child's working directory; the parent's when nil.
    ///   - line: called with each line of output as it arrives (without the newline).
    package static func run(
        _ program: String, _ arguments: [String], environment: [String]? = nil, timeout: Double? = nil,
        standardOutput: String? = nil, directory: String? = nil, line: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws(LaunchError) -> Outcome {
        let child = try spawn(
            program, arguments, environment: environment, standardOutput: standardOutput, directory: directory)
        let timer = timeout.map { seconds in
            let source = DispatchSource.makeTimerSource(queue: .global())
            source.schedule(deadline: .now() + seconds)
            source.setEventHandler { child.stop(timedOut: true) }
            source.resume()
            return source
        }
        defer { timer?.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                BlockingThread.start { continuation.resume(returning: child.wait(line: line)) }
            }
        } onCancel: {
            child.stop(timedOut: false)
        }
    }

    /// A started child: its group, the read end of its output, and whether kiln stopped it.
    final class Child: Sendable {
        let pid: pid_t
        let output: Int32
        let registration: Interruption.Registration
        private let stopped = Mutex((requested: false, timedOut: false))
        /// Set once `waitpid` reaped it: its group id may then belong to someone else.
        private let reaped = Mutex(false)

        init(pid: pid_t, output: Int32) {
            self.pid = pid
            self.output = output
            registration = Interruption.stopOnInterrupt(processGroup: pid)
        }

        /// Stops the whole group: SIGTERM now, SIGKILL two seconds later if it is still there.
        func stop(timedOut: Bool) {
            let first = stopped.withLock { state in
                defer { state = (true, state.timedOut || timedOut) }
                return !state.requested
            }
            guard first else { return }
            if reaped.withLock({ $0 }) { return }
            kill(-pid, SIGTERM)
            DispatchQueue.global().asyncAfter(deadline: .now() + 2) { [self] in
                if !reaped.withLock({ $0 }) { kill(-pid, SIGKILL) }
            }
        }

        /// Reads the output to its end (keeping the tail), then reaps the child.
        func wait(line: (String) -> Void) -> Outcome {
            defer { registration.end() }
            var tail = [UInt8]()
            var pending = [UInt8]()
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
            defer { buffer.deallocate() }
            while true {
                let count = read(output, buffer.baseAddress, buffer.count)
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
                tail.append(contentsOf: chunk)
                if tail.count > 2 * ChildProcess.tailLimit { tail.removeFirst(tail.count - ChildProcess.tailLimit) }
                pending.append(contentsOf: chunk)
                var start = pending.startIndex
                while let newline = pending[start...].firstIndex(of: 0x0A) {
                    line(String(decoding: pending[start..<newline], as: UTF8.self))
                    start = newline + 1
                }
                pending.removeSubrange(..<start)
                if pending.count > ChildProcess.tailLimit {
                    // One endless line: hand it over in pieces rather than hold it all.
                    line(String(decoding: pending, as: UTF8.self))
                    pending.removeAll()
                }
            }
            if !pending.isEmpty { line(String(decoding: pending, as: UTF8.self)) }
            close(output)
            var status: Int32 = 0
            var usage = rusage()
            while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
            reaped.withLock { $0 = true }
            Interruption.holdIfStopping()
            let exit: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            if tail.count > ChildProcess.tailLimit { tail.removeFirst(tail.count - ChildProcess.tailLimit) }
            var outcome = Outcome(status: exit, output: String(decoding: tail, as: UTF8.self))
            outcome.timedOut = stopped.withLock { $0.timedOut }
            outcome.peakMemory = Int64(usage.ru_maxrss) * 1024
            return outcome
        }
    }

    /// Starts the child in a process group of its own, stdout (unless sent to `standardOutput`)
    /// and stderr on one pipe.
    static func spawn(
        _ program: String, _ arguments: [String], environment: [String]?, standardOutput: String? = nil,
        directory: String? = nil
    ) throws(LaunchError) -> Child {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw LaunchError(program: program, code: errno) }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let standardOutput {
            posix_spawn_file_actions_addopen(&actions, 1, standardOutput, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        } else {
            posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        }
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        posix_spawn_file_actions_addclose(&actions, writeEnd)
        if let directory {
            guard let addChdir = Self.addChdir, addChdir(&actions, directory) == 0 else {
                throw LaunchError(program: program, code: ENOSYS)
            }
        }

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
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([program] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned: Int32
        if let environment {
            let envp = environment.map { strdup($0) } + [nil]
            defer { for pointer in envp { free(pointer) } }
            spawned = posix_spawn(&pid, program, &actions, &attributes, argv, envp)
        } else {
            spawned = posix_spawn(&pid, program, &actions, &attributes, argv, environ)
        }
        close(writeEnd)
        guard spawned == 0 else {
            close(readEnd)
            throw LaunchError(program: program, code: spawned)
        }
        return Child(pid: pid, output: readEnd)
    }

    /// glibc's `posix_spawn_file_actions_addchdir_np` (2.29 and later), which Swift's Glibc
    /// module does not declare.
    private typealias AddChdir =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let addChdir: AddChdir? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addchdir_np") else { return nil }
        return unsafeBitCast(symbol, to: AddChdir.self)
    }()

    /// The first executable named `tool` on `PATH`.
    package static func find(_ tool: String, path: String?) -> String? {
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
        let created = pthread_create(
            &thread, nil,
            { context in
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
