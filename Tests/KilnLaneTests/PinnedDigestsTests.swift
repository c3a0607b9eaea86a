import KilnCore
import KilnOCI
import Testing

@testable import KilnLane

@Suite("Pinned digests: every REPOSITORY@sha256 word a file writes")
struct PinnedDigestsTests {
    static let hex = String(repeating: "ab", count: 32)

    @Test(
        "references are found in YAML, quoted or not, wherever they sit",
        arguments: [
            ("oci: \"ghcr.io/acme/echo@sha256:\(hex)\"", ["ghcr.io/acme/echo@sha256:\(hex)"]),
            ("  amd64: 127.0.0.1:5000/a/b@sha256:\(hex) # pinned", ["127.0.0.1:5000/a/b@sha256:\(hex)"]),
            ("x: 'reg.io/a_b/c-d.e:1@sha256:\(hex)'", ["reg.io/a_b/c-d.e:1@sha256:\(hex)"]),
            ("amd64: sha256:pending", []),
            ("amd64: sha256:\(hex)", []),  // no repository: nothing to look up
            ("a: r/x@sha256:\(hex.dropLast())", []),  // a digest cut short
            ("a: r/x@sha256:\(hex)\nb: r/y@sha256:\(hex)", ["r/x@sha256:\(hex)", "r/y@sha256:\(hex)"]),
        ])
    func references(text: String, expected: [String]) {
        #expect(PinnedDigests.references(in: text) == expected)
    }

    @Test("scanning keeps the repository each pin names, and every digest")
    func scan() throws {
        var pinned = PinnedDigests()
        pinned.scan("oci: ghcr.io/acme/echo@sha256:\(Self.hex)\nold: ghcr.io/acme/other@sha256:\(Self.hex)")
        let echo = try ImageReference(parsing: "ghcr.io/acme/echo:1").repository
        #expect(pinned.byRepository[echo] == [try Digest(sha256Hex: Self.hex)])
        #expect(pinned.byRepository.count == 2 && pinned.all.count == 1)
    }
}
