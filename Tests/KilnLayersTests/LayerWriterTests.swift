import Foundation
import KilnCore
import KilnLayers
import Testing

/// Collects a layer's blob in memory, for small test layers.
final class MemorySink: ByteSink {
    var bytes = [UInt8]()
    func write(_ chunk: UnsafeRawBufferPointer) throws(FileError) { bytes.append(contentsOf: chunk) }
}

/// Splits an uncompressed tar into (name, typeflag) pairs by reading ustar headers.
func tarHeaders(_ tar: [UInt8]) -> [(name: String, type: Character)] {
    var result = [(String, Character)]()
    var offset = 0
    while offset + 512 <= tar.count {
        let block = tar[offset..<offset + 512]
        if block.allSatisfy({ $0 == 0 }) { break }
        let name = String(decoding: block.prefix(100).prefix { $0 != 0 }, as: UTF8.self)
        let prefix = String(decoding: block[(offset + 345)..<(offset + 500)].prefix { $0 != 0 }, as: UTF8.self)
        let sizeText = String(decoding: block[(offset + 124)..<(offset + 135)], as: UTF8.self)
        let size =
            Int(sizeText.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\0"))), radix: 8) ?? 0
        let type = Character(UnicodeScalar(tar[offset + 156]))
        result.append((prefix.isEmpty ? name : prefix + "/" + name, type))
        offset += 512 + (size + 511) / 512 * 512
    }
    return result
}

@Suite("Layer writer")
struct LayerWriterTests {
    func entries() throws -> [LayerEntry] {
        [
            .file(try LayerPath("app/bin/run.sh"), .bytes(Array("#!/bin/sh\n".utf8)), mode: 0o755),
            .file(try LayerPath("app/data.txt"), .bytes(Array("data".utf8))),
            LayerEntry(path: try LayerPath("app/link"), content: .symlink(target: "data.txt")),
            LayerEntry(path: try LayerPath("app/copy"), content: .hardLink(target: try LayerPath("app/data.txt"))),
            .directory(try LayerPath("app/empty"), mode: 0o700),
        ]
    }

    func write(_ entries: [LayerEntry], options: LayerOptions = LayerOptions()) throws -> (LayerResult, [UInt8]) {
        let sink = MemorySink()
        let result = try LayerWriter.write(entries, options: options, to: sink)
        return (result, sink.bytes)
    }

    @Test("the order entries are given in does not change a byte")
    func orderIndependent() throws {
        let (first, firstBytes) = try write(try entries())
        let (second, secondBytes) = try write(try entries().reversed())
        #expect(firstBytes == secondBytes)
        #expect(first == second)
        #expect(first.digest == Digest.sha256(of: firstBytes))
        #expect(first.size == Int64(firstBytes.count))
    }

    @Test("the epoch and the compression level change the bytes; the epoch changes the diffID")
    func epochAndLevel() throws {
        let (base, _) = try write(try entries())
        let (later, _) = try write(try entries(), options: LayerOptions(epoch: 1_700_000_000))
        let (smaller, _) = try write(try entries(), options: LayerOptions(compression: .gzip(level: 9)))
        #expect(base.diffID != later.diffID)
        #expect(base.diffID == smaller.diffID)
        #expect(base.digest != smaller.digest)
    }

    @Test("the gzip header has mtime 0 and OS byte 255")
    func gzipHeader() throws {
        let (_, bytes) = try write(try entries())
        #expect(Array(bytes.prefix(4)) == [0x1f, 0x8b, 0x08, 0x00])
        #expect(Array(bytes[4..<8]) == [0, 0, 0, 0])
        #expect(bytes[9] == 0xff)
    }

    @Test("an uncompressed layer's digest is its diffID, and parents come before children")
    func uncompressed() throws {
        let (result, tar) = try write(try entries(), options: LayerOptions(compression: .none))
        #expect(result.digest == result.diffID)
        #expect(result.mediaType.rawValue == "application/vnd.oci.image.layer.v1.tar")
        let headers = tarHeaders(tar)
        #expect(
            headers.map(\.name) == [
                "app/", "app/bin/", "app/bin/run.sh", "app/copy", "app/data.txt", "app/empty/", "app/link",
            ])
        // app/copy sorts before app/data.txt, so it carries the bytes and data.txt links to it.
        #expect(headers.first { $0.name == "app/copy" }?.type == "0")
        #expect(headers.first { $0.name == "app/data.txt" }?.type == "1")
        #expect(tar.count % 512 == 0)
        #expect(tar.suffix(1024).allSatisfy { $0 == 0 })
    }

    @Test("a path given twice is an error naming it")
    func duplicate() throws {
        let path = try LayerPath("x")
        #expect(throws: LayerError.duplicatePath(path)) {
            try write([.file(path, .bytes([1])), .file(path, .bytes([2]))])
        }
    }

    @Test("a file placed inside a non-directory is rejected")
    func notADirectory() throws {
        let file = try LayerPath("x")
        #expect(throws: LayerError.notADirectory(file, child: try LayerPath("x/y"))) {
            try write([.file(file, .bytes([1])), .file(try LayerPath("x/y"), .bytes([2]))])
        }
    }

    @Test("a hard link to nothing in the layer is rejected")
    func danglingHardLink() throws {
        let link = try LayerPath("a")
        #expect(throws: LayerError.hardLinkTarget(link: link, target: try LayerPath("b"))) {
            try write([LayerEntry(path: link, content: .hardLink(target: try LayerPath("b")))])
        }
    }

    @Test("a FIFO given as a file source is refused without blocking, naming the path")
    func fifo() throws {
        let directory = NSTemporaryDirectory() + "kiln-fifo-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fifo = directory + "/pipe"
        #expect(mkfifo(fifo, 0o644) == 0)
        #expect {
            try write([.file(try LayerPath("p"), .file(path: fifo))])
        } throws: { error in
            "\(error)".contains(fifo) && "\(error)".contains("FIFO")
        }
    }

    @Test("extended attributes are written only when given, in a stable order")
    func xattrs() throws {
        var entry = LayerEntry.file(try LayerPath("f"), .bytes([1]))
        let (plain, _) = try write([entry], options: LayerOptions(compression: .none))
        entry.xattrs = ["user.b": Array("2".utf8), "user.a": Array("1".utf8)]
        let (first, tar) = try write([entry], options: LayerOptions(compression: .none))
        let (second, _) = try write([entry], options: LayerOptions(compression: .none))
        #expect(plain.diffID != first.diffID)
        #expect(first == second)
        #expect(String(decoding: tar, as: UTF8.self).contains("SCHILY.xattr.user.a=1"))
    }
}
