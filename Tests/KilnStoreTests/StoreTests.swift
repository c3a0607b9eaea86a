import Foundation
import KilnCore
import KilnOCI
import KilnStore
import KilnTestSupport
import Testing

@Suite("Content store")
struct StoreTests {
    @Test("blobs are stored under their digest and read back verified")
    func putAndRead() throws {
        let directory = try TemporaryDirectory()
        let store = try ContentStore(root: directory.path)
        let bytes = Array("{\"a\":1}".utf8)
        let descriptor = try store.put(bytes, mediaType: .ociConfig)
        #expect(descriptor.digest == Digest.sha256(of: bytes))
        #expect(store.contains(descriptor.digest))
        #expect(try store.read(descriptor.digest) == bytes)
        #expect(try store.verifiedPath(descriptor.digest).hasSuffix("blobs/sha256/\(descriptor.digest.hex)"))
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path + "/blobs/sha256")
        #expect(names == [descriptor.digest.hex], "no temporary file is left")
    }

    @Test("a corrupted blob is detected, removed and never returned")
    func corruption() throws {
        let directory = try TemporaryDirectory()
        let store = try ContentStore(root: directory.path)
        let descriptor = try store.put(Array(repeating: 7, count: 4096), mediaType: .ociLayer)
        let path = store.blobPath(descriptor.digest)
        chmod(path, 0o644)
        try Data(repeating: 8, count: 4096).write(to: URL(fileURLWithPath: path))
        #expect {
            try store.verifiedPath(descriptor.digest)
        } throws: { error in
            guard case .corruptBlob(let digest, _, _) = error as? StoreError else { return false }
            return digest == descriptor.digest
        }
        #expect(!store.contains(descriptor.digest))
        #expect(throws: StoreError.missingBlob(descriptor.digest)) { try store.read(descriptor.digest) }
    }

    @Test("an ingest with the wrong expected digest stores nothing")
    func expectedDigest() throws {
        let directory = try TemporaryDirectory()
        let store = try ContentStore(root: directory.path)
        let ingest = try store.beginIngest()
        try ingest.write(Array("abc".utf8))
        let wrong = Digest.sha256(of: Array("abd".utf8))
        #expect(throws: StoreError.digestMismatch(expected: wrong, actual: Digest.sha256(of: Array("abc".utf8)))) {
            try ingest.commit(expected: wrong)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/blobs/sha256").isEmpty)
    }

    @Test("verify removes corrupt blobs and stale temporary files, keeping good ones")
    func verify() throws {
        let directory = try TemporaryDirectory()
        let store = try ContentStore(root: directory.path)
        let good = try store.put(Array("good".utf8), mediaType: .ociLayer)
        let bad = try store.put(Array("bad".utf8), mediaType: .ociLayer)
        chmod(store.blobPath(bad.digest), 0o644)
        try Data("tampered".utf8).write(to: URL(fileURLWithPath: store.blobPath(bad.digest)))
        _ = FileManager.default.createFile(
            atPath: directory.path + "/blobs/sha256/.tmp-.ingest-abcdef", contents: Data([1]))
        let report = try store.verify()
        #expect(report.intact == 1)
        #expect(report.removedCorrupt == [bad.digest])
        #expect(report.removedTemporary == 1)
        #expect(store.contains(good.digest))
    }

    struct BuildRecord: Codable, Equatable {
        var index: Digest
        var repository: String
    }

    @Test("key records round-trip and are replaced whole")
    func records() throws {
        let directory = try TemporaryDirectory()
        let store = try ContentStore(root: directory.path)
        let key = Digest.sha256(of: Array("inputs".utf8))
        #expect(try store.record(BuildRecord.self, kind: "builds", key: key) == nil)
        let record = BuildRecord(index: Digest.sha256(of: [1]), repository: "ghcr.io/acme/x")
        try store.setRecord(record, kind: "builds", key: key)
        #expect(try store.record(BuildRecord.self, kind: "builds", key: key) == record)
        #expect(
            FileManager.default.fileExists(atPath: directory.path + "/keys/builds/\(key.hex.prefix(2))/\(key.hex).json")
        )
        #expect(throws: StoreError.invalidKeyKind("Bad/Kind")) {
            try store.setRecord(record, kind: "Bad/Kind", key: key)
        }
    }

    @Test("the default store follows KILN_CACHE_DIR, then XDG_CACHE_HOME, then HOME")
    func defaultRoot() {
        #expect(ContentStore.defaultRoot(environment: ["KILN_CACHE_DIR": "/k", "XDG_CACHE_HOME": "/x"]) == "/k")
        #expect(ContentStore.defaultRoot(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/h"]) == "/x/kiln")
        #expect(ContentStore.defaultRoot(environment: ["HOME": "/h"]) == "/h/.cache/kiln")
    }

    @Test(
        "layout references parse oci:DIR[:TAG]",
        arguments: [
            ("oci:out:v1", "out", "v1"), ("oci:/tmp/a/b", "/tmp/a/b", nil), ("out", "out", nil),
            ("oci:./x:latest", "./x", "latest"),
        ] as [(String, String, String?)])
    func layoutReference(text: String, directory: String, tag: String?) throws {
        let reference = try LayoutReference(parsing: text)
        #expect(reference.directory == directory)
        #expect(reference.tag == tag)
    }

    @Test("an OCI layout gets its marker, blobs and a tagged index entry; re-tagging replaces it")
    func layout() throws {
        let directory = try TemporaryDirectory()
        let store = try ContentStore(root: directory.path + "/store")
        let layer = try store.put(Array("layer".utf8), mediaType: .ociLayer)
        let image = try PlatformImage(
            config: ImageConfig(platform: .linuxAMD64, rootfs: RootFS(diffIDs: [layer.digest])), layers: [layer])
        let layout = try OCILayout(root: directory.path + "/layout")
        try layout.write(.single(image), tag: "v1", layersFrom: store)
        try layout.write(.single(image), tag: "v1", layersFrom: store)
        let index = try layout.index()
        #expect(index.manifests.count == 1)
        #expect(index.manifests[0].annotations?[AnnotationKey.refName] == "v1")
        #expect(index.manifests[0].digest == image.manifest.descriptor.digest)
        for digest in [layer.digest, image.config.descriptor.digest, image.manifest.descriptor.digest] {
            #expect(FileManager.default.fileExists(atPath: layout.blobPath(digest)))
        }
        let marker = try String(contentsOfFile: directory.path + "/layout/oci-layout", encoding: .utf8)
        #expect(marker == #"{"imageLayoutVersion":"1.0.0"}"#)
        #expect(throws: StoreError.self) { try layout.write(.single(image), tag: "bad tag", layersFrom: store) }
    }

    @Test("a layout write stops at a corrupt layer blob: the blob is not copied and the tag not written")
    func layoutRefusesCorruptBlob() throws {
        let directory = try TemporaryDirectory()
        let store = try ContentStore(root: directory.path + "/store")
        let layer = try store.put(Array("layer bytes".utf8), mediaType: .ociLayer)
        chmod(store.blobPath(layer.digest), 0o644)
        try Data("evil bytes!".utf8).write(to: URL(fileURLWithPath: store.blobPath(layer.digest)))
        let image = try PlatformImage(
            config: ImageConfig(platform: .linuxAMD64, rootfs: RootFS(diffIDs: [layer.digest])), layers: [layer])
        let layout = try OCILayout(root: directory.path + "/layout")
        #expect {
            try layout.write(.single(image), tag: "v1", layersFrom: store)
        } throws: { error in
            guard case .corruptBlob(let digest, _, _) = error as? StoreError else { return false }
            return digest == layer.digest
        }
        #expect(!FileManager.default.fileExists(atPath: layout.blobPath(layer.digest)))
        #expect(try layout.index().manifests.isEmpty)
    }
}
