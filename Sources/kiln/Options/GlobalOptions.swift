import ArgumentParser
import KilnCore
import KilnStore

/// Flags every command that touches the store shares.
struct StoreOptions: ParsableArguments {
    @Option(
        name: .customLong("cache-dir"),
        help: ArgumentHelp(
            "The local store.", discussion: "Default: $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln.",
            valueName: "dir"))
    var cacheDirectory: String?

    func open() throws(StoreError) -> ContentStore {
        try ContentStore(root: cacheDirectory ?? ContentStore.defaultRoot(environment: Environment.current))
    }
}

/// `--json`: one JSON object on stdout for results, and on stderr for errors; `--quiet` and
/// `--progress` for what goes to stderr while a lane runs.
struct OutputOptions: ParsableArguments {
    /// How the lane shows its progress on stderr.
    enum Progress: String, ExpressibleByArgument, CaseIterable {
        /// Redrawn in place on a terminal; one line per step elsewhere (and under CI).
        case auto
        /// Redrawn in place, fitted to the terminal's width.
        case tty
        /// One line per step, as a CI log shows it.
        case plain
    }

    @Flag(help: "Print results (and errors) as JSON for CI.")
    var json = false

    @Flag(name: [.short, .long], help: "Print only errors (and, with --json, the JSON results); no progress.")
    var quiet = false

    @Option(
        help: "Lane progress on stderr: auto (redrawn on a terminal), tty (always redrawn), plain (a line per step).")
    var progress: Progress = .auto
}
