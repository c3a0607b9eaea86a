// Layer creation throughput: `kiln layer create` against `tar -c | gzip -6 | sha256sum` on the
// same mixed 256 MiB tree, alternating runs, reporting medians and the ratio.
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
let megabytes = Int(option("--size-mib") ?? "256") ?? 256
let level = option("--level") ?? "6"
let work = option("--work") ?? NSTemporaryDirectory() + "kiln-bench"

guard FileManager.default.isExecutableFile(atPath: kiln) else {
    FileHandle.standardError.write(Data("kiln-bench: no kiln binary at \(kiln); run 'swift build -c release' at the root (make bench does)\n".utf8))
    exit(1)
}

let tree = work + "/tree"
let inputBytes = try MixedTree.ensure(at: tree, mebibytes: megabytes)

struct Sample {
    var seconds: Double
    var outputBytes: Int
}

func time(_ body: () throws -> Int) rethrows -> Sample {
    let start = DispatchTime.now().uptimeNanoseconds
    let bytes = try body()
    return Sample(seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, outputBytes: bytes)
}

func shell(_ script: String) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-o", "pipefail", "-c", script]
    let pipe = Pipe()
    process.standardOutput = pipe
    try! process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

func fileSize(_ path: String) -> Int {
    (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
}

let kilnOut = work + "/kiln.tar.gz"
let peerOut = work + "/peer.tar.gz"
func runKiln() -> Int {
    let result = shell("'\(kiln)' layer create --from '\(tree)' --level \(level) -o '\(kilnOut)' > /dev/null")
    precondition(result.status == 0, "kiln failed")
    return fileSize(kilnOut)
}
func runPeer() -> Int {
    // The same job with standard tools: a name-sorted, owner- and time-normalised tar, gzip at the
    // same level, and a SHA-256 of the compressed stream.
    let result = shell(
        "tar -C '\(tree)' --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=pax -cf - . "
            + "| gzip -\(level) -n | tee '\(peerOut)' | sha256sum > /dev/null")
    precondition(result.status == 0, "peer pipeline failed")
    return fileSize(peerOut)
}

_ = runKiln()  // warm the page cache and both code paths
_ = runPeer()
var kilnSamples = [Sample]()
var peerSamples = [Sample]()
for run in 0..<runs {
    // Alternate which goes first, so drift on a noisy machine hits both equally.
    if run % 2 == 0 {
        kilnSamples.append(time(runKiln))
        peerSamples.append(time(runPeer))
    } else {
        peerSamples.append(time(runPeer))
        kilnSamples.append(time(runKiln))
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

let mib = Double(inputBytes) / 1_048_576
let kilnMedian = median(kilnSamples.map(\.seconds))
let peerMedian = median(peerSamples.map(\.seconds))
let kilnSize = kilnSamples.last!.outputBytes
let peerSize = peerSamples.last!.outputBytes
let cpu = shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").output.trimmingCharacters(in: .whitespacesAndNewlines)
print("""
    ## Layer creation, \(String(format: "%.0f", mib)) MiB mixed tree, gzip level \(level), \(runs) runs each (median)

    machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu)

    | | median s | MiB/s of input | compressed bytes |
    | --- | ---: | ---: | ---: |
    | kiln layer create | \(String(format: "%.2f", kilnMedian)) | \(String(format: "%.1f", mib / kilnMedian)) | \(kilnSize) |
    | tar \\| gzip -\(level) \\| sha256sum | \(String(format: "%.2f", peerMedian)) | \(String(format: "%.1f", mib / peerMedian)) | \(peerSize) |

    throughput ratio kiln / pipeline: \(String(format: "%.2f", peerMedian / kilnMedian))x
    compressed size kiln / gzip: \(String(format: "%.4f", Double(kilnSize) / Double(peerSize))) (\(String(format: "%+.2f", (Double(kilnSize) / Double(peerSize) - 1) * 100))%)
    all kiln runs (s): \(kilnSamples.map { String(format: "%.2f", $0.seconds) }.joined(separator: " "))
    all pipeline runs (s): \(peerSamples.map { String(format: "%.2f", $0.seconds) }.joined(separator: " "))
    """)
