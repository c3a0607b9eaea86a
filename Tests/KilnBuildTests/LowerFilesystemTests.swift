import Foundation
import KilnBuild
import KilnCore
import KilnLayers
import KilnOCI
import KilnStore
import Testing

/// The states reuse by read set compares, on layer blobs in a real store.
@Suite("The file system below a RUN, and its observations' states")
struct LowerFilesystemTests {
    final class Layers {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-lower-\(UUID().uuidString)").path
        let store: ContentStore

        init() throws { store = try ContentStore(root: root) }
        deinit { try? FileManager.default.removeItem(atPath: root) }

        /// A layer of `entries`, stamped with `epoch`.
        func layer(_ entries: [LayerEntry], epoch: Int64 = 0) throws -> Descriptor {
            let ingest = try store.beginIngest()
            let result = try LayerWriter.write(entries, options: LayerOptions(epoch: epoch), to: ingest)
            _ = try ingest.commit(expected: result.digest)
            return Descriptor(mediaType: .ociLayerGzip, digest: result.digest, size: result.size)
        }

        func layer(_ files: [String: String], links: [String: String] = [:], directories: [String] = []) throws
            -> Descriptor
        {
            var entries = try files.map { path, text in LayerEntry.file(try LayerPath(path), .bytes(Array(text.utf8))) }
            for (path, target) in links {
                entries.append(LayerEntry(path: try LayerPath(path), content: .symlink(target: target)))
            }
            for path in directories { entries.append(.directory(try LayerPath(path))) }
            return try layer(entries)
        }

        func states(_ layers: [Descriptor], _ observations: [Observation]) throws -> [String] {
            var lower = try LowerFilesystem(layers: layers, store: store)
            return try observations.map { try lower.state(of: $0) }
        }
    }

    static let observations: [Observation] = [
        Observation("/tool/protocol/x.py", .entry),
        Observation("/tool/protocol", .listing),
        Observation("/tool", .tree),
        Observation("/opt/link", .lookup),
        Observation("/nope", .entry),
        Observation("/usr/lib/site/pkg.py", .entry),
        Observation("/tool/protocol", .lookup),
    ]

    @Test("a changed file changes its entry and every tree above it; a new name changes the listing; the rest stays")
    func changes() throws {
        let layers = try Layers()
        let base = try layers.layer(["usr/lib/site/pkg.py": "pkg\n"], links: ["opt/link": "/tool/protocol/x.py"])
        let v1 = try layers.layer(["tool/protocol/x.py": "v1\n", "tool/libs/deep/a.py": "a\n"])
        let same = try layers.layer(["tool/protocol/x.py": "v1\n", "tool/libs/deep/a.py": "a\n", "unrelated": "u"])
        let edited = try layers.layer(["tool/protocol/x.py": "v2\n", "tool/libs/deep/a.py": "a\n"])
        let deep = try layers.layer(["tool/protocol/x.py": "v1\n", "tool/libs/deep/a.py": "b\n"])
        let added = try layers.layer([
            "tool/protocol/x.py": "v1\n", "tool/protocol/y.py": "y\n", "tool/libs/deep/a.py": "a\n",
        ])

        let before = try layers.states([base, v1], Self.observations)
        #expect(before[4] == "missing")
        #expect(before[3] == "l 777 0:0 -> /tool/protocol/x.py", "a lookup of a link is the link itself")
        #expect(before[6] == "d 755 0:0")
        #expect(try layers.states([base, same], Self.observations) == before, "the same files in another blob")

        let afterEdit = try layers.states([base, edited], Self.observations)
        #expect(afterEdit[0] != before[0] && afterEdit[2] != before[2])
        #expect(afterEdit[1] == before[1] && afterEdit[3] == before[3] && afterEdit[5] == before[5])

        let afterDeep = try layers.states([base, deep], Self.observations)
        #expect(afterDeep[2] != before[2], "a file deep below a tree changes the tree")
        #expect(afterDeep[0] == before[0] && afterDeep[1] == before[1])

        let afterAdd = try layers.states([base, added], Self.observations)
        #expect(afterAdd[1] != before[1] && afterAdd[0] == before[0] && afterAdd[6] == before[6])
    }

    @Test(
        "an entry shows what stat shows: a directory's link count, hard-link partners, the time, the mode of directories on the way"
    )
    func entries() throws {
        let layers = try Layers()
        let plain = try layers.layer([
            .file(try LayerPath("app/a"), .bytes(Array("same".utf8))),
            .file(try LayerPath("app/b"), .bytes(Array("same".utf8))),
        ])
        let linked = try layers.layer([
            .file(try LayerPath("app/a"), .bytes(Array("same".utf8))),
            LayerEntry(path: try LayerPath("app/b"), content: .hardLink(target: try LayerPath("app/a"))),
        ])
        let withSubdirectory = try layers.layer([
            .file(try LayerPath("app/a"), .bytes(Array("same".utf8))),
            .file(try LayerPath("app/b"), .bytes(Array("same".utf8))),
            .directory(try LayerPath("app/sub")),
        ])
        let later = try layers.layer(
            [
                .file(try LayerPath("app/a"), .bytes(Array("same".utf8))),
                .file(try LayerPath("app/b"), .bytes(Array("same".utf8))),
            ], epoch: 1_700_000_000)
        let locked = try layers.layer([
            .directory(try LayerPath("app"), mode: 0o700),
            .file(try LayerPath("app/a"), .bytes(Array("same".utf8))),
            .file(try LayerPath("app/b"), .bytes(Array("same".utf8))),
        ])
        let observed = [Observation("/app/b", .entry), Observation("/app", .entry), Observation("/app", .lookup)]
        let before = try layers.states([plain], observed)
        #expect(before[0].contains("t=0.0") && !before[0].contains("n="), "\(before[0])")
        #expect(before[1].hasSuffix(" n=2"), "\(before[1])")
        let hardLinked = try layers.states([linked], observed)
        #expect(hardLinked[0] != before[0] && hardLinked[0].contains("n=2 first=/app/a"), "\(hardLinked[0])")
        #expect(try layers.states([withSubdirectory], observed)[1].hasSuffix(" n=3"))
        #expect(try layers.states([withSubdirectory], observed)[2] == before[2], "a lookup does not see link counts")
        #expect(try layers.states([later], observed)[0].contains("t=1700000000.0"))
        #expect(try layers.states([locked], observed)[2] == "d 700 0:0")
    }

    @Test("a listing holds each name with its kind, and no two listings of other names collide")
    func listings() throws {
        let layers = try Layers()
        let files = try layers.layer(["app/x": "1", "app/y": "2"])
        let directory = try layers.layer(["app/y": "2"], directories: ["app/x"])
        let joined = try layers.layer(["app/x\ny": "1"])
        let apart = try layers.layer(["app/x": "1", "app/y": "1"])
        let listing = [Observation("/app", .listing)]
        #expect(try layers.states([files], listing) != layers.states([directory], listing), "x became a directory")
        #expect(try layers.states([joined], listing) != layers.states([apart], listing), "'x\\ny' is not x and y")
        #expect(try layers.states([files], [Observation("/app/x", .listing)]) == ["not a directory: f 644 0:0"])
    }

    @Test("a name with a newline or a carriage return keeps its content digest in the store's index")
    func oddNames() throws {
        let layers = try Layers()
        let v1 = try layers.layer(["app/a\nb": "v1", "app/c\r": "v1"])
        let v2 = try layers.layer(["app/a\nb": "v2", "app/c\r": "v2"])
        let observed = [Observation("/app/a\nb", .entry), Observation("/app/c\r", .entry)]
        let before = try layers.states([v1], observed)
        let after = try layers.states([v2], observed)
        #expect(before[0] != after[0] && before[1] != after[1])
        // From the index kept in the store, the second time.
        #expect(try layers.states([v1], observed) == before)
    }

    @Test("the paths that changed below a step: each path of the layers two file systems do not share, by state")
    func changedBelow() throws {
        let layers = try Layers()
        let base = try layers.layer(["usr/lib/site/pkg.py": "pkg\n"])
        let v1 = try layers.layer(["tool/protocol/x.py": "v1\n", "tool/libs/a.py": "a\n"])
        let edited = try layers.layer(["tool/protocol/x.py": "v2\n", "tool/libs/a.py": "a\n"])
        let added = try layers.layer([
            "tool/protocol/x.py": "v1\n", "tool/protocol/y.py": "y\n", "tool/libs/a.py": "a\n",
        ])
        let both = try layers.layer(["tool/protocol/x.py": "v2\n", "tool/libs/a.py": "b\n"])
        func count(_ now: [Descriptor]) throws -> Int? {
            try RunReuse.changedBelow(from: [base.digest, v1.digest], to: now, store: layers.store)
        }
        #expect(try count([base, v1]) == 0)
        #expect(try count([base, edited]) == 1, "one file's content")
        #expect(try count([base, added]) == 1, "one new file; the same bytes elsewhere are no change")
        #expect(try count([base, both]) == 2)
        let withoutBase = try count([v1])
        #expect(withoutBase == 4, "the base's file and its three directories: \(String(describing: withoutBase))")
        let gone = Digest.sha256(of: Array("not in the store".utf8))
        #expect(try RunReuse.changedBelow(from: [gone], to: [base], store: layers.store) == nil)
    }

    @Test("counts in the words read with thousands grouped")
    func grouped() {
        #expect(RunDecision.grouped(0) == "0")
        #expect(RunDecision.grouped(999) == "999")
        #expect(RunDecision.grouped(3883) == "3,883")
        #expect(RunDecision.grouped(1_000_000) == "1,000,000")
    }

    @Test(
        "what executing a file opens: a #! line's interpreter, an ELF's loader, nothing for data",
        arguments: [
            ("#!/bin/sh -e\necho", FileSummary.Interpreter.script("/bin/sh")),
            ("#! /usr/bin/env python3\n", .script("/usr/bin/env")),
            ("#!\n", .none),
            ("plain text", .none),
        ])
    func interpreters(text: String, expected: FileSummary.Interpreter) {
        #expect(FileSummary.interpreter(ofPrefix: Array(text.utf8)) == expected)
    }

    @Test("the dynamic loader of this test's own ELF executable is its PT_INTERP")
    func elfLoader() throws {
        let bytes = try ReadableFile.readAll(path: "/bin/ls", limit: 64 << 20)
        let interpreter = FileSummary.interpreter(ofPrefix: Array(bytes.prefix(FileSummary.prefixLength)))
        guard case .loader(let path) = interpreter else {
            Issue.record("no loader: \(interpreter)")
            return
        }
        #expect(path.hasPrefix("/lib") && path.contains("ld-linux"), "\(path)")
    }
}
