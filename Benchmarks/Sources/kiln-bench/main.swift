// Benchmarks kiln against peer tools run side by side in the same run, reporting medians and
// ratios. Modes:
//   kiln-bench layers   layer creation vs `tar -c | gzip -6 | sha256sum` (default)
//   kiln-bench push     push to a loopback registry vs `skopeo copy`, and no-op re-pushes
//   kiln-bench lane     the build-and-pin lane on 24 processors vs `buildah bud --layers` + push
//   kiln-bench run      RUN steps from checkpoints vs `buildah bud --layers` + push
//   kiln-bench reads    a real pip install reused by what it read after a code edit, and the
//                       cold build's tracing cost, vs `buildah bud --layers` + push (both platforms)
//   kiln-bench scale    `kiln bench --synthetic N` at 24, 240 and 2,400 processors against the targets
import Foundation

let arguments = CommandLine.arguments
func option(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path
let kiln = option("--kiln") ?? root + "/.build/release/kiln"
let runs = Int(option("--runs") ?? "5") ?? 5
let work = option("--work") ?? NSTemporaryDirectory() + "kiln-bench"

guard FileManager.default.isExecutableFile(atPath: kiln) else {
    FileHandle.standardError.write(
        Data("kiln-bench: no kiln binary at \(kiln); run 'swift build -c release' at the root (make bench does)\n".utf8)
    )
    exit(1)
}

switch arguments.dropFirst().first {
case "push": try PushBenchmark.run()
case "lane": try LaneBenchmark.run()
case "run": try RunBenchmark.run()
case "reads": try ReadsBenchmark.run()
case "scale": try ScaleBenchmark.run()
default: try LayerBenchmark.run()
}
