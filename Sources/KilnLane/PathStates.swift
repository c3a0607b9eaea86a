import KilnCore
import KilnStore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What `lstat` said of each path the run's key memos name, asked once per run. Processors
/// share files (the libraries every Dockerfile copies, the context's `.dockerignore`), so at
/// thousands of processors most of the memos' checks were the same few hundred paths again.
/// A run reads the tree as it was when each path was first looked at, as a single pass would.
final class PathStates: Sendable {
    /// A path's `lstat`: its identity and whether it is a directory.
    struct State: Sendable, Equatable {
        var identity: StatCache.Identity
        var isDirectory: Bool
    }

    private let states = Mutex<[String: State?]>([:])

    /// `path`'s state, nil when nothing is there (or it cannot be read).
    func state(of path: String) -> State? {
        if let known = states.withLock({ $0[path] }) { return known }
        var info = stat()
        let state =
            lstat(path, &info) == 0
            ? State(identity: StatCache.identity(info), isDirectory: FileKind(mode: info.st_mode) == .directory) : nil
        states.withLock { $0[path] = .some(state) }
        return state
    }
}
