import Foundation
import KilnCore
import KilnLayers
import KilnTestSupport
import Testing

/// gzip in parallel blocks: the same bytes whatever the thread count and however the input is
/// fed, and a stream gzip itself reads back.
@Suite("Parallel gzip")
struct ParallelGzipTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var size: Int
        var testDescription: String { "\(size) bytes" }
    }

    static let block = ParallelGzip.blockSize
    static let cases = [0, 1, block - 1, block, block + 1, 5 * block + 17].map(Case.init)

    /// Text that compresses (repeats from far back, across block cuts) mixed with noise.
    static func input(_ size: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8]()
        bytes.reserveCapacity(size)
        var line = 0
        while bytes.count < size {
            line += 1
            bytes += Array("line \(line % 977) of a layer, \(line % 3 == 0 ? "again" : "once")\n".utf8)
            if line % 50 == 0 { for _ in 0..<64 { bytes.append(UInt8.random(in: 0...255, using: &generator)) } }
        }
        return Array(bytes.prefix(size))
    }

    static func gzip(_ input: [UInt8], threads: Int, chunk: Int, level: Int32 = 6) throws -> [UInt8] {
        let compressor = try ParallelGzip(level: level, threads: threads)
        var output = [UInt8]()
        var offset = 0
        repeat {
            let end = min(offset + chunk, input.count)
            try input[offset..<end].withUnsafeBytes { bytes in try compressor.compress(bytes) { output += $0 } }
            offset = end
        } while offset < input.count
        try compressor.finish { output += $0 }
        return output
    }

    @Test(
        "the same bytes for 1, 2 and 7 threads and for 1-byte, odd and 1 MiB chunks; gzip -dc gives the input back",
        arguments: cases)
    func deterministic(_ example: Case) throws {
        let input = Self.input(example.size)
        let reference = try Self.gzip(input, threads: 1, chunk: 1 << 20)
        for (threads, chunk) in [(2, 1 << 20), (7, 4099), (2, 1)] where chunk > 1 || example.size <= 2 * Self.block {
            #expect(
                try Self.gzip(input, threads: threads, chunk: chunk) == reference,
                "\(threads) threads, \(chunk)-byte chunks")
        }
        let scratch = try TemporaryDirectory("pgzip")
        let file = scratch.path + "/in.gz"
        try Data(reference).write(to: URL(fileURLWithPath: file))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gzip", "-dc", file]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let decompressed = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "gzip -dc refused the stream (apt-get install gzip)")
        #expect(Array(decompressed) == input)
        #expect(Array(reference.prefix(10)) == [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255], "kiln's fixed header")
    }

    @Test("within 1% of one zlib stream's size at level 6")
    func size() throws {
        let input = Self.input(4 << 20)
        let parallel = try Self.gzip(input, threads: 2, chunk: 1 << 20)
        let scratch = try TemporaryDirectory("pgzip-size")
        try Data(input).write(to: URL(fileURLWithPath: scratch.path + "/in"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gzip", "-6", "-n", "-c", scratch.path + "/in"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let single = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(Double(parallel.count) <= Double(single.count) * 1.01, "\(parallel.count) vs gzip's \(single.count)")
    }
}
