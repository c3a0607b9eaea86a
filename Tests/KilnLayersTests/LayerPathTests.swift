import KilnLayers
import Testing

@Suite("Layer paths and ordering")
struct LayerPathTests {
    @Test("paths are normalised lexically", arguments: [
        ("app", "app"), ("app/", "app"), ("./app//lib/./x", "app/lib/x"), ("a/b/../c", "a/c"), ("a/./../b", "b"),
    ])
    func normalises(input: String, expected: String) throws {
        #expect(try LayerPath(input).description == expected)
    }

    @Test("absolute, empty, root and escaping paths are rejected", arguments: [
        "/etc/passwd", "", ".", "a/..", "../x", "a/../../x", "./..",
    ])
    func rejects(input: String) {
        #expect {
            try LayerPath(input)
        } throws: { error in
            guard case .invalidPath(let path, _) = error as? LayerError else { return false }
            return path == input
        }
    }

    @Test("order is by UTF-8 bytes, so parents precede children and '-' precedes '/'")
    func byteOrder() throws {
        let paths = try ["a/b", "a-b", "a", "é", "e\u{301}", "Z", "a.b"].map { try LayerPath($0) }
        #expect(paths.sorted().map(\.description) == ["Z", "a", "a-b", "a.b", "a/b", "e\u{301}", "é"])
        #expect(try LayerPath("é") != LayerPath("e\u{301}"), "names differing in Unicode normalisation stay distinct")
    }

    @Test("ancestors are listed outermost first")
    func ancestors() throws {
        #expect(try LayerPath("a/b/c").ancestors.map(\.description) == ["a", "a/b"])
        #expect(try LayerPath("a").ancestors.isEmpty)
    }
}
