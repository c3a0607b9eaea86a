import Foundation
import KilnCore
import KilnOCI
import Testing

@Suite("OCI model")
struct ModelTests {
    static let zero = try! Digest(sha256Hex: String(repeating: "0", count: 64))

    @Test("canonical JSON sorts keys, has no whitespace and does not escape slashes")
    func canonical() throws {
        let manifest = ImageManifest(
            config: Descriptor(mediaType: .ociConfig, digest: Self.zero, size: 2),
            layers: [Descriptor(mediaType: .ociLayerGzip, digest: Self.zero, size: 10)],
            annotations: ["z": "1", "a": "x/y"])
        let text = String(decoding: try CanonicalJSON.encode(manifest), as: UTF8.self)
        #expect(!text.contains(" ") && !text.contains("\n"))
        #expect(!text.contains("\\/"))
        #expect(text.hasPrefix(#"{"annotations":{"a":"x/y","z":"1"},"config":{"digest":"#))
        #expect(text.contains(#""mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}"#))
    }

    @Test("encoding the same value twice gives the same digest")
    func stableDigest() throws {
        var config = ContainerConfig()
        config.env = ["PATH=/usr/bin", "B=2"]
        config.exposedPorts = ["8000/tcp": EmptyObject(), "9000/tcp": EmptyObject()]
        config.labels = ["b": "2", "a": "1"]
        let image = ImageConfig(platform: .linuxARM64, created: "1970-01-01T00:00:00Z", config: config)
        let first = try Encoded(image, mediaType: .ociConfig)
        let second = try Encoded(image, mediaType: .ociConfig)
        #expect(first.bytes == second.bytes)
        #expect(first.descriptor.digest == Digest.sha256(of: first.bytes))
        #expect(String(decoding: first.bytes, as: UTF8.self).contains(#""ExposedPorts":{"8000/tcp":{},"9000/tcp":{}}"#))
    }

    @Test("a Docker manifest list with unknown fields decodes, and its arm64 entry is found")
    func dockerList() throws {
        let json = """
            {"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
             "somethingNew":{"x":1},
             "manifests":[
              {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":1,"digest":"\(Self.zero)",
               "platform":{"architecture":"amd64","os":"linux"}},
              {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":2,"digest":"\(Self.zero)",
               "platform":{"architecture":"arm64","os":"linux","variant":"v8","features":["x"]}}]}
            """
        let index = try CanonicalJSON.decode(ImageIndex.self, from: Array(json.utf8), what: "list")
        #expect(index.mediaType == .dockerManifestList)
        #expect(index.mediaType?.isIndex == true)
        #expect(index.manifest(for: .linuxARM64)?.size == 2)
        #expect(index.manifest(for: .linuxAMD64)?.size == 1)
        #expect(index.manifest(for: Platform(os: "linux", architecture: "s390x")) == nil)
    }

    @Test("a Docker image config keeps Healthcheck, Volumes and null fields decode")
    func dockerConfig() throws {
        let json = """
            {"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z","docker_version":"24",
             "config":{"Env":["A=1"],"Cmd":null,"Entrypoint":["/bin/sh"],"WorkingDir":"/tool","User":"app",
               "Volumes":{"/data":{}},"StopSignal":"SIGTERM","Labels":{"k":"v"},
               "Healthcheck":{"Test":["CMD-SHELL","curl -f localhost"],"Interval":10000000000,"Retries":5}},
             "rootfs":{"type":"layers","diff_ids":["\(Self.zero)"]},
             "history":[{"created_by":"RUN x","empty_layer":true}]}
            """
        let config = try CanonicalJSON.decode(ImageConfig.self, from: Array(json.utf8), what: "config")
        #expect(config.config?.cmd == nil)
        #expect(config.config?.healthcheck?.retries == 5)
        #expect(config.config?.healthcheck?.interval == 10_000_000_000)
        #expect(config.config?.volumes?["/data"] != nil)
        #expect(config.rootfs.diffIDs == [Self.zero])
        #expect(config.history?.first?.emptyLayer == true)
        let reencoded = String(decoding: try CanonicalJSON.encode(config), as: UTF8.self)
        #expect(
            reencoded.contains(
                #""Healthcheck":{"Interval":10000000000,"Retries":5,"Test":["CMD-SHELL","curl -f localhost"]}"#))
        #expect(reencoded.contains(#""diff_ids":["# + "\"\(Self.zero)\"]"))
    }

    @Test("a bad digest inside a manifest is a decoding error naming the field")
    func badNestedDigest() {
        let json = #"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:nope","size":1},"layers":[]}"#
        #expect {
            try CanonicalJSON.decode(ImageManifest.self, from: Array(json.utf8), what: "manifest.json")
        } throws: { error in
            "\(error)".contains("manifest.json") && "\(error)".contains("config.digest")
        }
    }

    struct PlatformCase: Sendable {
        var text: String
        var expected: Platform?
    }

    @Test(
        "platform flags parse as BuildKit writes them",
        arguments: [
            PlatformCase(text: "linux/amd64", expected: .linuxAMD64),
            PlatformCase(text: "linux/arm64", expected: .linuxARM64),
            PlatformCase(text: "linux/arm64/v8", expected: .linuxARM64),
            PlatformCase(text: "linux/arm/v7", expected: Platform(os: "linux", architecture: "arm", variant: "v7")),
            PlatformCase(text: "linux/x86_64", expected: .linuxAMD64),
            PlatformCase(text: "linux", expected: nil),
            PlatformCase(text: "linux//v7", expected: nil),
            PlatformCase(text: "linux/amd64/v1/x", expected: nil),
        ])
    func platforms(_ item: PlatformCase) throws {
        if let expected = item.expected {
            #expect(try Platform(parsing: item.text) == expected)
        } else {
            #expect(throws: PlatformError.invalid(item.text)) { try Platform(parsing: item.text) }
        }
    }

    @Test("media types from Content-Type ignore parameters")
    func contentType() {
        #expect(MediaType(contentType: "application/vnd.oci.image.index.v1+json; charset=utf-8") == .ociIndex)
        #expect(MediaType.dockerLayerGzip.isGzipLayer)
        #expect(MediaType.dockerManifest.isImageManifest)
    }

    @Test("a multi-platform bundle is an index listing each manifest with its platform")
    func bundle() throws {
        let layer = Descriptor(mediaType: .ociLayerGzip, digest: Self.zero, size: 3)
        let images = try [Platform.linuxAMD64, .linuxARM64].map {
            try PlatformImage(config: ImageConfig(platform: $0, rootfs: RootFS(diffIDs: [Self.zero])), layers: [layer])
        }
        let bundle = try ImageBundle(images: images)
        guard case .multiPlatform(let index, _) = bundle else {
            Issue.record("two platforms must make an index")
            return
        }
        #expect(index.value.manifests.map(\.platform) == [.linuxAMD64, .linuxARM64])
        #expect(bundle.root.mediaType == .ociIndex)
        #expect(try ImageBundle(images: [images[0]]).root.digest == images[0].manifest.descriptor.digest)
    }
}
