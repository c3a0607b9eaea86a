import Foundation
import KilnBuild
import KilnCore
import KilnLayers
import KilnOCI
import KilnStore
import Testing

/// The states reuse by read set compares, on layer blobs in a real store.
@Suite("The file system below a RUN, and its paths' states")
struct LowerFilesystemTests {
    final class Layers {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-lower-\(UUID().uuidString)").path
        let store: ContentStore

        init() throws { store = try ContentStore(root: root) }
        deinit { try? FileManager.default.removeItem(atPath: root) }

        func layer(_ files: [String: String], links: [String: String] = [:]) throws -> Descriptor {
            var entries = try files.map { path, text in LayerEntry.file(try LayerPath(path), .bytes(Array(text.utf8))) }
            for (path, target) in links {
                entries.append(LayerEntry(path: try LayerPath(path), content: .symlink(target: target)))
            }
            let ingest = try store.beginIngest()
            let result = try LayerWriter.write(entries, options: LayerOptions(), to: ingest)
            _ = try ingest.commit(expected: result.digest)
            return Descriptor(mediaType: .ociLayerGzip, digest: result.digest, size: result.size)
        }

        func states(_ layers: [Descriptor], _ touches: [RunTrace.Touch]) throws -> [String] {
            var lower = try LowerFilesystem(layers: layers, store: store)
            return try touches.map { try lower.state(of: $0) }
        }
    }

    static let touches: [RunTrace.Touch] = [
        .init(path: "/tool/protocol/x.py", access: .entry),
        .init(path: "/tool/protocol", access: .listing),
        .init(path: "/tool", access: .tree),
        .init(path: "/opt/link", access: .entry),
        .init(path: "/nope", access: .entry),
        .init(path: "/usr/lib/site/pkg.py", access: .entry),
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

        let before = try layers.states([base, v1], Self.touches)
        #expect(before[4] == "missing")
        #expect(before[3].hasPrefix("link /tool/protocol/x.py → /tool/protocol/x.py: file 644 0:0 "))
        #expect(try layers.states([base, same], Self.touches) == before, "the same files in another blob")

        let afterEdit = try layers.states([base, edited], Self.touches)
        #expect(afterEdit[0] != before[0] && afterEdit[2] != before[2] && afterEdit[3] != before[3])
        #expect(afterEdit[1] == before[1] && afterEdit[5] == before[5], "the names and the other files stay")

        let afterDeep = try layers.states([base, deep], Self.touches)
        #expect(afterDeep[2] != before[2], "a file deep below a tree changes the tree")
        #expect(afterDeep[0] == before[0] && afterDeep[1] == before[1])

        let afterAdd = try layers.states([base, added], Self.touches)
        #expect(afterAdd[1] != before[1] && afterAdd[0] == before[0])
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
}
