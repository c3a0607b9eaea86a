import Foundation
import KilnCore
import KilnOCI
import KilnProcessors
import KilnTestSupport
import Testing

typealias Tree = TemporaryDirectory

struct ProcessorRefTests {
    @Test(
        "ns/name@ver parses; other shapes do not",
        arguments: [
            ("llm/litellm@1", "llm", "litellm", "1"), ("a.b/c_d@2.0", "a.b", "c_d", "2.0"),
            ("team/x/y@v3", "team/x", "y", "v3"),
        ])
    func parses(_ text: String, _ namespace: String, _ name: String, _ version: String) throws {
        let ref = try #require(ProcessorRef(parsing: text))
        #expect(ref.namespace == namespace && ref.name == name && ref.version == version && ref.description == text)
    }

    @Test(
        "malformed refs are refused", arguments: ["litellm@1", "llm/litellm", "llm/@1", "llm/litellm@", "llm lite/x@1"])
    func refuses(_ text: String) {
        #expect(ProcessorRef(parsing: text) == nil)
    }
}

struct LaneConfigTests {
    @Test("the repository template fills in the ref and the settings, lower-cased")
    func template() throws {
        var config = LaneConfig(root: "/src/Theory")
        config.owner = "Acme"
        let ref = try #require(ProcessorRef(parsing: "llm/litellm@1"))
        #expect(try config.repository(for: ref) == "ghcr.io/acme/llm-litellm")
        config.repositoryTemplate = "{registry}/{owner}/{repo}/{ns}_{name}"
        #expect(try config.repository(for: ref) == "ghcr.io/acme/theory/llm_litellm")
    }

    @Test("a template needing an unset owner says how to set it")
    func missingOwner() throws {
        let config = LaneConfig(root: "/src/theory")
        let ref = try #require(ProcessorRef(parsing: "llm/litellm@1"))
        #expect { try config.repository(for: ref) } throws: {
            "\($0)".contains("needs {owner}") && "\($0)".contains("--owner")
        }
    }

    @Test("kiln.yaml is read, and an unknown key names its line")
    func load() throws {
        let tree = try Tree()
        try tree.write(
            "kiln.yaml", "registry: 127.0.0.1:5000\nowner: acme\nplatforms: [linux/amd64]\npin: oci\njobs: 3\n")
        let config = try LaneConfig.load(root: tree.path)
        #expect(config.registry == "127.0.0.1:5000" && config.owner == "acme" && config.pin == .oci && config.jobs == 3)
        #expect(config.platforms == [.linuxAMD64])
        try tree.write("kiln.yaml", "owner: acme\nplatform: [linux/amd64]\n")
        #expect { try LaneConfig.load(root: tree.path) } throws: {
            "\($0)".contains("kiln.yaml:2: unknown key 'platform'")
        }
    }
}

struct DiscoveryTests {
    @Test("both layouts are found, other YAML is not, and a disabled processor is still listed")
    func discovers() throws {
        let tree = try Tree()
        try tree.write(
            "tools/llm/litellm/1/registry.yaml", "ref: llm/litellm@1\nbuild:\n  context: .\n  dockerfile: Dockerfile\n")
        try tree.write("tools/llm/litellm/1/Dockerfile", "FROM scratch\n")
        try tree.write(
            "code/apps/core/processors/text_echo/registry.yaml",
            "ref: text/echo@2\nenabled: false\nbuild: {dockerfile: Dockerfile, platforms: [amd64]}\n")
        try tree.write("code/apps/core/processors/text_echo/Dockerfile", "FROM scratch\n")
        try tree.write("docs/registry.yaml", "not: a processor\n")
        let processors = try Discovery.processors(LaneConfig(root: tree.path))
        #expect(processors.map(\.ref.description) == ["llm/litellm@1", "text/echo@2"])
        #expect(
            processors[0].context == tree.path
                && processors[0].dockerfile == tree.path + "/tools/llm/litellm/1/Dockerfile")
        #expect(processors[1].enabled == false && processors[1].platforms == [.linuxAMD64])
    }

    @Test("hundreds of processors are read on every core, in ref order; of two broken files, the first is named")
    func manyProcessors() throws {
        let tree = try Tree()
        for number in 0..<300 {
            let folder = "tools/many/p\(String(number + 1000))/1"
            try tree.write(
                "\(folder)/registry.yaml", "ref: many/p\(number + 1000)@1\nbuild: {dockerfile: Dockerfile}\n")
            try tree.write("\(folder)/Dockerfile", "FROM scratch\n")
        }
        let processors = try Discovery.processors(LaneConfig(root: tree.path))
        #expect(processors.map(\.ref.description) == (0..<300).map { "many/p\($0 + 1000)@1" })
        #expect(processors.allSatisfy { $0.dockerfile == tree.path + "/" + $0.displayPath.dropLast(13) + "Dockerfile" })
        try tree.write("tools/many/p1250/1/registry.yaml", "ref: broken\nbuild: {}\n")
        try tree.write("tools/many/p1040/1/registry.yaml", "ref: many/x@1\nbuild: {dockerfile: Gone}\n")
        for _ in 0..<3 {
            #expect { try Discovery.processors(LaneConfig(root: tree.path)) } throws: { error in
                "\(error)".contains("tools/many/p1040/1/registry.yaml:2: 'build.dockerfile' names 'Gone'")
            }
        }
    }

    @Test("keys other tools keep under build: (port) are left alone")
    func otherKeys() throws {
        let tree = try Tree()
        try tree.write(
            "tools/a/b/1/registry.yaml", "ref: a/b@1\nbuild: {context: ., dockerfile: Dockerfile, port: 8000}\n")
        try tree.write("tools/a/b/1/Dockerfile", "FROM scratch\n")
        #expect(try Discovery.processors(LaneConfig(root: tree.path)).count == 1)
    }

    @Test(
        "a registry.yaml with a problem names the file, the line and the key",
        arguments: [
            ("build:\n  context: .\n", "registry.yaml:1: 'ref' is missing"),
            ("ref: litellm\nbuild: {}\n", "registry.yaml:1: 'ref' must read NAMESPACE/NAME@VERSION"),
            ("ref: a/b@1\nbuild:\n  dockerfile: Nope\n", "registry.yaml:3: 'build.dockerfile' names 'Nope'"),
            ("ref: a/b@1\nbuild:\n  context: missing\n", "registry.yaml:3: 'build.context' names 'missing'"),
            ("ref: a/b@1\n", "registry.yaml:1: 'build' is missing"),
            ("ref: a/b@1\nbuild: {}\nenabled: maybe\n", "registry.yaml:3: 'enabled' must be true or false"),
            ("ref: [a\n", "registry.yaml:"),
            (
                "ref: a/b@1\nbuild:\n  context: .\n  dockerfle: Other\n",
                "registry.yaml:4: 'build.dockerfle' is not a key kiln reads; did you mean 'build.dockerfile'?"
            ),
            ("ref: a/b@1\nbuild: {contex: ., port: 8000}\n", "registry.yaml:2: 'build.contex' is not a key kiln reads"),
        ])
    func errors(_ text: String, _ expected: String) throws {
        let tree = try Tree()
        try tree.write("tools/a/b/1/registry.yaml", text)
        try tree.write("tools/a/b/1/Dockerfile", "FROM scratch\n")
        #expect { try Discovery.processors(LaneConfig(root: tree.path)) } throws: { error in
            "\(error)".contains("tools/a/b/1/" + expected)
        }
    }
}
