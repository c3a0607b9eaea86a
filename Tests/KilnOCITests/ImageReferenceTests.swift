import KilnCore
import KilnOCI
import Testing

@Suite("Image references")
struct ImageReferenceTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var text: String
        var registry: String
        var path: String
        var tag: String?
        var digest: String? = nil
        var testDescription: String { text }
    }

    static let zeros = "sha256:" + String(repeating: "0", count: 64)

    @Test(
        "references parse as Docker parses them",
        arguments: [
            Case(text: "alpine", registry: "docker.io", path: "library/alpine", tag: "latest"),
            Case(text: "python:3.11-slim", registry: "docker.io", path: "library/python", tag: "3.11-slim"),
            Case(text: "acme/app", registry: "docker.io", path: "acme/app", tag: "latest"),
            Case(text: "docker.io/alpine:3", registry: "docker.io", path: "library/alpine", tag: "3"),
            Case(text: "index.docker.io/acme/app", registry: "docker.io", path: "acme/app", tag: "latest"),
            Case(
                text: "ghcr.io/acme/theory/llm-litellm:v1", registry: "ghcr.io", path: "acme/theory/llm-litellm",
                tag: "v1"),
            Case(text: "localhost/app", registry: "localhost", path: "app", tag: "latest"),
            Case(text: "localhost:5000/a/b:c", registry: "localhost:5000", path: "a/b", tag: "c"),
            Case(text: "127.0.0.1:5000/app", registry: "127.0.0.1:5000", path: "app", tag: "latest"),
            Case(text: "[::1]:5000/app:x", registry: "[::1]:5000", path: "app", tag: "x"),
            Case(
                text: "registry.example.com/a_b/c__d/e--f.g:T_1.2-3", registry: "registry.example.com",
                path: "a_b/c__d/e--f.g", tag: "T_1.2-3"),
            Case(text: "ghcr.io/acme/app@\(zeros)", registry: "ghcr.io", path: "acme/app", tag: nil, digest: zeros),
            Case(text: "ghcr.io/acme/app:v1@\(zeros)", registry: "ghcr.io", path: "acme/app", tag: "v1", digest: zeros),
        ])
    func parses(_ item: Case) throws {
        let reference = try ImageReference(parsing: item.text)
        #expect(reference.repository.registry == item.registry)
        #expect(reference.repository.path == item.path)
        #expect(reference.tag == item.tag)
        #expect(reference.digest?.description == item.digest)
        #expect(try ImageReference(parsing: reference.description) == reference, "printing and parsing again is stable")
    }

    @Test(
        "malformed references say what is wrong",
        arguments: [
            ("", "empty"), ("Alpine", "lower case"), ("ghcr.io/Acme/app", "lower case"), ("a//b", "empty component"),
            ("app:-x", "not a valid tag"), ("app:" + String(repeating: "x", count: 129), "not a valid tag"),
            ("app@sha256:abc", "not a valid digest"), ("host:port/app", "is not a valid port"),
            ("host:70000/app", "valid port"),
            ("a/b_-c", "not a valid path component"), ("-host.com/a", "not a valid registry host"),
            ("[::1/app", "host"),
        ])
    func rejects(text: String, reasonContains: String) {
        #expect {
            try ImageReference(parsing: text)
        } throws: { error in
            "\(error)".contains(reasonContains) && "\(error)".contains("is not a valid image reference")
        }
    }

    @Test("Docker Hub's API host differs from its name; pins drop the tag")
    func endpointsAndPins() throws {
        let hub = try ImageReference(parsing: "alpine:3")
        #expect(hub.repository.endpointHost == "registry-1.docker.io")
        let digest = try Digest(parsing: Self.zeros)
        #expect(hub.pinned(to: digest).description == "docker.io/library/alpine@\(Self.zeros)")
        #expect(hub.manifestReference == "3")
        #expect(hub.pinned(to: digest).manifestReference == Self.zeros)
    }
}
