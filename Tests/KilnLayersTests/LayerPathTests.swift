import Testing

@testable import KilnLayers

@Suite("Layer paths and ordering")
struct LayerPathTests {
    @Test(
        "paths are normalised lexically",
        arguments: [
            ("app", "app"), ("app/", "app"), ("./app//lib/./x", "app/lib/x"), ("a/b/../c", "a/c"), ("a/./../b", "b"),
        ])
    func normalises(input: String, expected: String) throws {
        #expect(try LayerPath(input).description == expected)
    }

    @Test(
        "absolute, empty, root and escaping paths are rejected",
        arguments: [
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

struct MemberIndexTests {
    @Test(
        "a member index reads back the members it was written from, times, attributes, devices and any name included; a damaged or older one is refused"
    )
    func roundTrip() throws {
        var members = [
            TarMember(path: "etc", kind: .directory, mode: 0o755, uid: 0, gid: 0),
            TarMember(path: "etc/passwd", kind: .regularFile(size: 120), mode: 0o644, uid: 0, gid: 0),
            TarMember(path: "bin/sh", kind: .symlink(target: "busybox"), mode: 0o777, uid: 0, gid: 0),
            TarMember(path: "bin/ls", kind: .hardLink(target: "bin/busybox"), mode: 0o755, uid: 1000, gid: 1001),
            TarMember(path: "dev/null", kind: .other, mode: 0o666, uid: 0, gid: 0),
            TarMember(path: "dir with space/ü", kind: .regularFile(size: 0), mode: 0o600, uid: 0, gid: 0),
            TarMember(path: "a\tb\nc\rd\\e", kind: .symlink(target: "x\ny"), mode: 0o777, uid: 0, gid: 0),
        ]
        members[1].modifiedSeconds = 1_700_000_000
        members[1].modifiedNanoseconds = 123_456_789
        members[1].xattrDigest = String(repeating: "ab", count: 32)
        members[4].special = "c 1:3"
        let text = MemberIndex.render(members)
        #expect(MemberIndex.parse(Array(text.utf8)) == members)
        #expect(MemberIndex.parse(Array(text.dropLast(3).utf8)) == nil)
        let older = text.replacingOccurrences(of: "kiln-member-index 2", with: "kiln-member-index 1")
        #expect(MemberIndex.parse(Array(older.utf8)) == nil)
    }
}
