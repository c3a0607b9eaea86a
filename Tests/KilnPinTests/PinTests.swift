import Foundation
import KilnPin
import Testing

/// Golden files: each folder under `Golden/` has `before.yaml`, the pins to apply (`pins.txt`,
/// `key.path=value` per line) and the exact bytes expected (`after.yaml`). Set
/// `KILN_UPDATE_GOLDEN=1` to rewrite the expected files after a deliberate change, then review
/// the diff.
struct GoldenPinTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static var cases: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
    }

    static func edits(_ name: String) throws -> [PinEdit] {
        let text = try String(contentsOf: folder.appendingPathComponent("\(name)/pins.txt"), encoding: .utf8)
        return text.split(separator: "\n").map { line in
            let parts = line.split(separator: "=", maxSplits: 1)
            return PinEdit(path: parts[0].split(separator: ".").map(String.init), value: String(parts[1]))
        }
    }

    @Test("the golden folder has cases")
    func hasCases() {
        #expect(Self.cases.count >= 7)
    }

    @Test("pinning gives the expected bytes, and pinning again changes nothing", arguments: cases)
    func golden(_ name: String) throws {
        let before = try String(contentsOf: Self.folder.appendingPathComponent("\(name)/before.yaml"), encoding: .utf8)
        let edits = try Self.edits(name)
        let after = try YAMLPins.apply(edits, to: before, file: "\(name)/before.yaml")
        let expectedURL = Self.folder.appendingPathComponent("\(name)/after.yaml")
        if ProcessInfo.processInfo.environment["KILN_UPDATE_GOLDEN"] == "1" {
            try after.write(to: expectedURL, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: expectedURL, encoding: .utf8)
        #expect(Array(after.utf8) == Array(expected.utf8), "\(name): got\n\(after)")
        for edit in edits {
            #expect(try YAMLPins.value(at: edit.path, in: after, file: name) == edit.value)
        }
        #expect(try YAMLPins.apply(edits, to: after, file: name) == after)
    }
}

struct PinEditTests {
    @Test("a file pinned by root (sudo -E on a runner) keeps its owner and mode")
    func keepsOwner() throws {
        try #require(geteuid() == 0, "this test runs as root, as the test suite does (it changes a file's owner)")
        let folder = "/tmp/kiln-pin-owner-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/registry.yaml"
        try "image:\n  oci: x\n".write(toFile: file, atomically: false, encoding: .utf8)
        #expect(chown(file, 1000, 1001) == 0 && chmod(file, 0o640) == 0)
        let changed = try YAMLPins.write(
            [PinEdit(path: ["image", "oci"], value: "ghcr.io/a/b@sha256:aa")], toFileAt: file,
            displayPath: "registry.yaml")
        #expect(changed)
        var info = stat()
        #expect(stat(file, &info) == 0)
        #expect(info.st_uid == 1000 && info.st_gid == 1001 && info.st_mode & 0o7777 == 0o640)
    }

    @Test("an unchanged pin returns the very same text")
    func unchanged() throws {
        let text = "image:\n  oci: 'ghcr.io/a/b@sha256:aa'   # keep\n"
        #expect(
            try YAMLPins.apply(
                [PinEdit(path: ["image", "oci"], value: "ghcr.io/a/b@sha256:aa")], to: text, file: "r.yaml") == text)
    }

    @Test(
        "a dropped platform's pin is taken out with its line and comment, every other byte kept",
        arguments: [
            (
                "image:\n  platforms:\n    amd64: r@sha256:aa\n    arm64: r@sha256:bb  # old\nref: x@1\n",
                "image:\n  platforms:\n    amd64: r@sha256:aa\nref: x@1\n"
            ),
            (
                "image:\r\n  platforms:\r\n    arm64: 'r@sha256:bb'\r\n    amd64: r@sha256:aa\r\n",
                "image:\r\n  platforms:\r\n    amd64: r@sha256:aa\r\n"
            ),
            ("image:\n  platforms:\n    amd64: a\n    arm64: b", "image:\n  platforms:\n    amd64: a\n"),
            ("image:\n  platforms:\n    amd64: a\n", "image:\n  platforms:\n    amd64: a\n"),
            ("ref: x@1\n", "ref: x@1\n"),
        ])
    func removal(before: String, after: String) throws {
        let edit = PinEdit.removal(["image", "platforms", "arm64"])
        #expect(try YAMLPins.apply([edit], to: before, file: "r.yaml") == after)
    }

    @Test("a pin inside a flow mapping is not taken apart: the error names the key and its line")
    func removalInFlow() throws {
        let text = "image:\n  platforms: {amd64: a, arm64: b}\n"
        #expect {
            try YAMLPins.apply([PinEdit.removal(["image", "platforms", "arm64"])], to: text, file: "r.yaml")
        } throws: { error in
            "\(error)".contains("r.yaml:2") && "\(error)".contains("image.platforms.arm64")
        }
    }

    @Test("a value YAML would read as another type is quoted")
    func quoting() throws {
        let after = try YAMLPins.apply(
            [PinEdit(path: ["image", "oci"], value: "true")], to: "image:\n  oci: x\n", file: "r.yaml")
        #expect(after == "image:\n  oci: \"true\"\n")
        #expect(try YAMLPins.value(at: ["image", "oci"], in: after, file: "r.yaml") == "true")
    }

    @Test("a key that holds a list cannot be pinned, and the error names file, line and key")
    func wrongShape() {
        let text = "ref: a/b@1\nimage:\n  - x\n"
        #expect {
            try YAMLPins.apply(
                [PinEdit(path: ["image", "platforms", "amd64"], value: "r@sha256:aa")], to: text,
                file: "tools/a/registry.yaml")
        } throws: { error in
            "\(error)".hasPrefix("tools/a/registry.yaml:3:") && "\(error)".contains("'image' must be a mapping")
        }
    }

    @Test("malformed YAML is reported with the file and line")
    func malformed() {
        #expect {
            try YAMLPins.apply(
                [PinEdit(path: ["image", "oci"], value: "r@sha256:aa")], to: "ref: a\nimage: [x\nbuild: 1\n",
                file: "bad.yaml")
        } throws: { error in
            "\(error)".hasPrefix("bad.yaml:") && "\(error)".contains("not valid YAML")
        }
    }
}

/// The pins a processor keeps from discovery answer as the file parsed again would.
struct PinSnapshotTests {
    static let documents = [
        "ref: a/b@1\nimage:\n  platforms:\n    amd64: r@sha256:1\n    arm64: \"r@sha256:2\"\n",
        "ref: a/b@1\nimage:\n  oci: r@sha256:3\n",
        "image:\n  platforms:\n    amd64: ~\n    arm64: ''\n    riscv64: r@sha256:4\n  oci: null\n",
        "image:\n  platforms: pending\n",
        "image: {platforms: {amd64: x}, oci: y}\n",
        "ref: a/b@1\n",
        "",
    ]
    static let paths: [[String]] = [
        ["image", "platforms"], ["image", "oci"], ["image", "platforms", "amd64"], ["image", "platforms", "arm64"],
        ["image", "platforms", "arm"],
    ]

    @Test("each pin path reads the same from the snapshot as from the parsed file", arguments: documents)
    func agrees(_ text: String) throws {
        let parsed = try YAMLPins.Parsed(text, file: "registry.yaml")
        let snapshot = PinSnapshot(parsed)
        for path in Self.paths {
            #expect(snapshot.value(at: path) == parsed.value(at: path), "\(path) in \(text)")
            #expect(snapshot.contains(path) == parsed.contains(path), "\(path) in \(text)")
        }
    }
}
