import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What kiln undoes when it is told to stop (SIGINT, SIGTERM): child process groups it started
/// (buildah) are stopped, and temporary files and scratch folders it registered (secrets, buildah
/// storage, half-written blobs) are removed before the process exits with 128 + the signal.
///
/// A `kill -9` leaves them behind; every temporary name carries the owner's process id, so the
/// next run (`ScratchDirectory.sweep`) and `kiln store verify` remove those of dead processes.
package enum Interruption {
    private struct State {
        var paths = [Int: String]()
        var groups = [Int: pid_t]()
        var next = 0
        var installed = false
        var stopping = false
        var sources = [any DispatchSourceSignal]()
    }

    private static let state = Mutex(State())

    /// A registration, to be ended with `end()` once the path is gone (or committed) or the
    /// process has exited.
    package struct Registration: Sendable {
        let id: Int
        let isPath: Bool

        package func end() {
            Interruption.state.withLock { state in
                if isPath { state.paths[id] = nil } else { state.groups[id] = nil }
            }
        }
    }

    /// Removes `path` (a file or a whole tree) if kiln is interrupted before `end()`.
    package static func removeOnInterrupt(_ path: String) -> Registration {
        state.withLock { state in
            state.next += 1
            state.paths[state.next] = path
            return Registration(id: state.next, isPath: true)
        }
    }

    /// Stops the process group `group` if kiln is interrupted before `end()`.
    package static func stopOnInterrupt(processGroup group: pid_t) -> Registration {
        state.withLock { state in
            state.next += 1
            state.groups[state.next] = group
            return Registration(id: state.next, isPath: false)
        }
    }

    /// Installs the SIGINT and SIGTERM handlers (once; later calls do nothing).
    package static func install() {
        state.withLock { state in
            guard !state.installed else { return }
            state.installed = true
            // A parent may have started kiln with these blocked (test runners do); blocked,
            // they would stay pending and kiln would never clean up.
            var unblock = sigset_t()
            sigemptyset(&unblock)
            sigaddset(&unblock, SIGINT)
            sigaddset(&unblock, SIGTERM)
            pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
            for number in [SIGINT, SIGTERM] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { stop(signal: number) }
                source.resume()
                state.sources.append(source)
            }
        }
    }

    /// Stops the registered process groups (SIGTERM, then SIGKILL after a grace period), removes
    /// the registered paths, and exits with 128 + `signal`.
    static func stop(signal number: Int32) -> Never {
        let groups = state.withLock { state in
            state.stopping = true
            return Array(state.groups.values)
        }
        for group in groups { kill(-group, SIGTERM) }
        var waited = 0
        // A second for the groups to go on SIGTERM (buildah removes its mounts), then SIGKILL:
        // a cancelled CI job must end promptly.
        while waited < 10, groups.contains(where: { kill(-$0, 0) == 0 }) {
            reapChildren()
            usleep(100_000)
            waited += 1
        }
        for group in groups { kill(-group, SIGKILL) }
        reapChildren()
        let paths = state.withLock { state in Array(state.paths.values) }
        // Deepest first, so a file registered inside a registered folder goes before it.
        for path in paths.sorted(by: { $0.count > $1.count }) { FilePaths.removeTree(path) }
        let message = "kiln: stopped by signal \(number); removed \(paths.count) temporary path(s)\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        _exit(128 + number)
    }

    /// Called by a thread whose child just ended: while kiln is stopping, it never returns, so
    /// the work waiting on that child does not go on (and write) while the handler cleans up.
    static func holdIfStopping() {
        while state.withLock({ $0.stopping }) { pause() }
    }

    private static func reapChildren() {
        var status: Int32 = 0
        while waitpid(-1, &status, WNOHANG) > 0 {}
    }
}
