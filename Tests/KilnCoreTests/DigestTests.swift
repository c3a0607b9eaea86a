import KilnCore
import KilnTestSupport
import Testing

@Suite("Digest")
struct DigestTests {
    @Test("parses the canonical sha256 form and prints it back")
    func roundTrip() throws {
        let text = "sha256:" + String(repeating: "ab", count: 32)
        let digest = try Digest(parsing: text)
        #expect(digest.description == text)
        #expect(digest.hex.count == 64)
        #expect(digest.short == "abababababab")
    }

    struct BadDigest: Sendable, CustomTestStringConvertible {
        var text: String
        var reasonContains: String
        var testDescription: String { text }
    }

    @Test(
        "rejects anything but sha256 with 64 lower-case hex characters",
        arguments: [
            BadDigest(text: "", reasonContains: "expected 'sha256:'"),
            BadDigest(text: String(repeating: "a", count: 64), reasonContains: "expected 'sha256:'"),
            BadDigest(text: "sha512:" + String(repeating: "a", count: 128), reasonContains: "unsupported algorithm"),
            BadDigest(text: "SHA256:" + String(repeating: "a", count: 64), reasonContains: "unsupported algorithm"),
            BadDigest(text: "sha256:" + String(repeating: "A", count: 64), reasonContains: "lower-case"),
            BadDigest(text: "sha256:" + String(repeating: "a", count: 63), reasonContains: "found 63"),
            BadDigest(text: "sha256:" + String(repeating: "a", count: 65), reasonContains: "found 65"),
            BadDigest(text: "sha256:" + String(repeating: "g", count: 64), reasonContains: "lower-case"),
            BadDigest(text: "sha256: " + String(repeating: "a", count: 63), reasonContains: "lower-case"),
        ])
    func rejects(_ bad: BadDigest) {
        #expect {
            try Digest(parsing: bad.text)
        } throws: { error in
            "\(error)".contains(bad.reasonContains) && "\(error)".contains("not a valid digest")
        }
    }

    @Test("hashes known vectors (FIPS 180-2)")
    func knownVectors() {
        #expect(
            Digest.sha256(of: Array("abc".utf8)).hex
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.sha256(of: [UInt8]()).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("streaming gives the same digest whatever the chunk size", arguments: [1, 7, 4096, 1 << 20])
    func chunking(chunkSize: Int) {
        var bytes = [UInt8]()
        for index in 0..<300_000 { bytes.append(UInt8(truncatingIfNeeded: index &* 31 &+ index >> 7)) }
        let whole = Digest.sha256(of: bytes)
        let hasher = SHA256Hasher()
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + chunkSize, bytes.count)
            hasher.update(bytes[offset..<end])
            offset = end
        }
        #expect(hasher.finalize() == whole)
    }

    @Test("hashes a file from disk and reports its size")
    func fileDigest() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/data"
        let bytes = Array(repeating: UInt8(0x61), count: 3 << 20)
        try AtomicFileWriter.write(bytes, to: path)
        let (digest, size) = try Digest.sha256(ofFileAt: path)
        #expect(size == Int64(bytes.count))
        #expect(digest == Digest.sha256(of: bytes))
    }

    @Test("names the path when a file cannot be hashed")
    func missingFile() {
        #expect {
            try Digest.sha256(ofFileAt: "/nonexistent/kiln-test-file")
        } throws: { error in
            "\(error)".contains("/nonexistent/kiln-test-file")
        }
    }

    @Test("JSON decoding rejects a malformed digest")
    func codable() throws {
        let good = #""sha256:\#(String(repeating: "0", count: 64))""#
        let decoded = try JSONDecoderShim.decode(Digest.self, good)
        #expect(decoded.hex == String(repeating: "0", count: 64))
        #expect(throws: (any Error).self) { try JSONDecoderShim.decode(Digest.self, #""sha256:xyz""#) }
    }
}
