import Foundation
import Testing

@Suite("Streaming keeps memory flat", .serialized)
struct StreamingTests {
    /// Peak resident memory of a command, in KiB, from GNU time's "Maximum resident set size".
    static func peakRSS(_ arguments: [String]) throws -> (kib: Int, result: Tools.Result) {
        let result = try Tools.run(["/usr/bin/time", "-v"] + arguments)
        let line = result.stderr.split(separator: "\n").first { $0.contains("Maximum resident set size") }
        let kib = line.flatMap { Int($0.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)) } ?? -1
        return (kib, result)
    }

    @Test("a layer from a 1 GiB file is made with under 64 MiB peak RSS")
    func oneGiBFile() throws {
        try Tools.require("/usr/bin/time", package: "time")
        let scratch = try Scratch("rss")
        let tree = try scratch.sub("tree")
        // Real (not sparse) data with some structure, so every byte is read, hashed and deflated.
        try Tools.shell(
            "yes 'kiln streams every layer in bounded chunks 0123456789' | head -c 1073741824 > '\(tree)/big.bin'")
        #expect(try Tools.shell("stat -c %s '\(tree)/big.bin'").stdout.hasPrefix("1073741824"))
        let blob = scratch.path + "/big.tar.gz"
        let (kib, result) = try Self.peakRSS([
            Tools.kiln, "layer", "create", "--from", tree, "--level", "1", "-o", blob, "--json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(kib > 0, "GNU time reported no peak RSS: \(result.stderr)")
        #expect(kib < 64 * 1024, "peak RSS was \(kib) KiB")
        let report = try JSONSerialization.jsonObject(with: result.stdoutBytes) as! [String: Any]
        #expect((report["uncompressedSize"] as? Int ?? 0) > 1_073_741_824)
        let tarSum = try Tools.shell("gunzip -c '\(blob)' | sha256sum | cut -d' ' -f1").stdout
        #expect(report["diffID"] as? String == "sha256:" + tarSum.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test("hashing a 1 GiB file with kiln digest stays under 64 MiB peak RSS")
    func digestLargeFile() throws {
        try Tools.require("/usr/bin/time", package: "time")
        let scratch = try Scratch("rss-digest")
        let file = scratch.path + "/big.bin"
        try Tools.shell("head -c 1073741824 /dev/zero > '\(file)'")
        let (kib, result) = try Self.peakRSS([Tools.kiln, "digest", file])
        #expect(result.status == 0)
        #expect(kib > 0 && kib < 64 * 1024, "peak RSS was \(kib) KiB")
        #expect(result.stdout.hasPrefix("sha256:49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14"))
    }
}
