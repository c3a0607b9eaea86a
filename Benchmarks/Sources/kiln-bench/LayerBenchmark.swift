import Foundation

/// Layer creation throughput: `kiln layer create` against `tar -c | gzip -6 | sha256sum` on the
/// same mixed tree, alternating runs.
enum LayerBenchmark {
    static func run() throws {
        let megabytes = Int(option("--size-mib") ?? "256") ?? 256
        let level = option("--level") ?? "6"
        let tree = work + "/tree"
        let inputBytes = try MixedTree.ensure(at: tree, mebibytes: megabytes)
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

        let mib = Double(inputBytes) / 1_048_576
        let kilnMedian = median(kilnSamples.map(\.seconds))
        let peerMedian = median(peerSamples.map(\.seconds))
        let kilnSize = kilnSamples.last!.outputBytes
        let peerSize = peerSamples.last!.outputBytes
        let cpu = shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").output.trimmingCharacters(
            in: .whitespacesAndNewlines)
        print(
            """
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
    }
}
