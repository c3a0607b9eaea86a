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

/// `--json`: one JSON object on stdout for results, and on stderr for errors.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print results (and errors) as JSON for CI.")
    var json = false
}
