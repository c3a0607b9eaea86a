import Testing

@testable import KilnDockerfile

@Suite("variable expansion")
struct ExpansionTests {
    static let environment = ["NAME": "kiln", "EMPTY": "", "PATH": "/usr/bin", "FILE": "archive.tar.gz"]

    static let cases: [(String, String)] = [
        ("$NAME", "kiln"), ("${NAME}", "kiln"), ("pre-${NAME}-post", "pre-kiln-post"), ("$UNSET", ""),
        ("${UNSET:-fallback}", "fallback"), ("${EMPTY:-fallback}", "fallback"), ("${EMPTY-fallback}", ""),
        ("${UNSET-fallback}", "fallback"), ("${NAME:+alt}", "alt"), ("${EMPTY:+alt}", ""), ("${EMPTY+alt}", "alt"),
        ("${UNSET:-${NAME}}", "kiln"), ("'$NAME'", "$NAME"), ("\"$NAME\"", "kiln"), ("\\$NAME", "$NAME"),
        ("a\\ b", "a b"), ("\"a \\\"b\\\"\"", "a \"b\""), ("$", "$"), ("$1", ""), ("${PATH}:/x", "/usr/bin:/x"),
        ("${FILE%.gz}", "archive.tar"), ("${FILE%%.*}", "archive"), ("${FILE#*.}", "tar.gz"), ("${FILE##*.}", "gz"),
    ]

    @Test("expands like Docker", arguments: cases)
    func expands(_ example: (String, String)) throws {
        let result = try WordExpander().expand(example.0) { Self.environment[$0] }
        #expect(result == example.1)
    }

    @Test("raw mode keeps quotes and escapes (heredoc bodies)")
    func raw() throws {
        let result = try WordExpander(raw: true).expand("echo \"$NAME\" 'x' \\n \\$NAME") { Self.environment[$0] }
        #expect(result == "echo \"kiln\" 'x' \\n $NAME")
    }

    @Test("errors", arguments: ["${UNSET:?needs a value}", "${NAME", "\"open", "${}", "${NAME:=x}"])
    func errors(_ word: String) {
        #expect(throws: WordExpander.Failure.self) { try WordExpander().expand(word) { Self.environment[$0] } }
    }

    @Test("a backtick escape character")
    func backtick() throws {
        #expect(try WordExpander(escape: "`").expand("C:\\dir`$NAME") { Self.environment[$0] } == "C:\\dir$NAME")
    }

    @Test(
        "glob",
        arguments: [
            ("*.py", "a.py", true), ("*.py", "dir/a.py", false), ("a?c", "abc", true), ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false), ("[^a-c]x", "dx", true), ("\\*", "*", true), ("*", ".hidden", true),
            ("a*b*c", "axxbyyc", true),
        ])
    func glob(_ example: (String, String, Bool)) {
        #expect(Glob.matches(Array(example.0), Array(example.1)) == example.2)
    }
}
