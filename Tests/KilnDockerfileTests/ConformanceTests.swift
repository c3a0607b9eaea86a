import Foundation
import Testing

@testable import KilnDockerfile

/// kiln held to BuildKit's and moby's own test data (`Conformance/`, see its README): the parser
/// test files, the word-expansion and field-splitting tables, the lexer cases, and the
/// `.dockerignore` matcher cases.
@Suite("BuildKit's and moby's own test data")
struct ConformanceTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path + "/Conformance"

    static func text(_ path: String) -> String {
        (try? String(contentsOfFile: folder + "/" + path, encoding: .utf8)) ?? ""
    }

    static func json(_ path: String) -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: folder + "/" + path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [] }
        return object["cases"] as? [[String: Any]] ?? []
    }

    // MARK: - Parser test files

    static func testFiles(_ kind: String) -> [String] {
        let directory = folder + "/buildkit/parser/" + kind
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    @Test("the data is there (a fresh clone holds it)")
    func dataPresent() {
        #expect(Self.testFiles("testfiles").count >= 30)
        #expect(Self.testFiles("testfiles-negative").count >= 4)
        #expect(Self.envVarCases.count >= 200)
        #expect(Self.lexCases.count >= 50)
        #expect(Self.wordCases.count >= 20)
        #expect(Self.ignoreCases.count >= 140)
    }

    /// The test files BuildKit's parser reads but its build refuses, and why: kiln refuses them
    /// too, before any work.
    static let refusedByTheBuild: [String: String] = [
        "flags": "COPY --user and --doit are no flags of COPY (unknown flag)",
        "health": "a HEALTHCHECK without arguments, and CONNECT is no HEALTHCHECK type",
        "jeztah-invalid-json-json-inside-string": "a CMD before any FROM (no build stage)",
        "jeztah-invalid-json-json-inside-string-double": "a CMD before any FROM (no build stage)",
        "jeztah-invalid-json-single-quotes": "a CMD before any FROM (no build stage)",
        "jeztah-invalid-json-unterminated-bracket": "a CMD before any FROM (no build stage)",
        "jeztah-invalid-json-unterminated-string": "a CMD before any FROM (no build stage)",
        "json": "a CMD before any FROM (no build stage)",
    ]

    @Test(
        "every Dockerfile BuildKit's build accepts is accepted, and those only its parser accepts are refused",
        arguments: testFiles("testfiles"))
    func accepted(_ name: String) {
        let text = Self.text("buildkit/parser/testfiles/\(name)/Dockerfile")
        if let reason = Self.refusedByTheBuild[name] {
            #expect(throws: DockerfileError.self, "\(name): \(reason)") { _ = try Dockerfile(parsing: text) }
        } else {
            #expect(throws: Never.self, "\(name)") { _ = try Dockerfile(parsing: text) }
        }
    }

    @Test("a \\\\ at the end of a line ends it (BuildKit's trailing-backslash test file)")
    func trailingBackslash() throws {
        let file = try Dockerfile(parsing: Self.text("buildkit/parser/testfiles/trailing-backslash/Dockerfile"))
        let values = file.stages.flatMap(\.instructions).compactMap { instruction -> String? in
            guard case .env(let pairs) = instruction.command else { return nil }
            return pairs.map { "\($0.key)=\((try? WordExpander().expand($0.value) { _ in nil }) ?? "?")" }.joined()
        }
        #expect(
            values == [
                "A=path", "B=another\\path", "C=trailing\\backslash\\", "D=This should not be appended to C",
                "E=helloworld", "F=hello world", "G=hello world",
            ], "\(values)")
    }

    @Test("every Dockerfile BuildKit's parser refuses is refused", arguments: testFiles("testfiles-negative"))
    func refused(_ name: String) {
        let text = Self.text("buildkit/parser/testfiles-negative/\(name)/Dockerfile")
        #expect(throws: DockerfileError.self, "\(name)") { _ = try Dockerfile(parsing: text) }
    }

    // MARK: - Word expansion

    /// One row of a table: what goes in, with what around it, and what comes out (nil: an error).
    struct Row: Sendable, CustomTestStringConvertible {
        var id: String
        var word: String
        var environment: [String: String]
        var expected: String?
        var testDescription: String { "\(id): \(word.debugDescription) → \(expected?.debugDescription ?? "error")" }
    }

    /// `envVarTest`'s `A` and `U` lines (`W` is Windows only), in the environment BuildKit's test
    /// sets.
    static let envVarCases: [Row] = {
        let environment = ["PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""]
        var rows = [Row]()
        for (number, line) in text("buildkit/shell/envVarTest").split(separator: "\n", omittingEmptySubsequences: false)
            .enumerated()
        {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { continue }
            let fields = line.split(separator: "|", omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let platform = fields[0].trimmingCharacters(in: .whitespaces)
            guard platform == "A" || platform == "U" else { continue }
            let expected = fields[2].trimmingCharacters(in: .whitespaces)
            rows.append(
                Row(
                    id: "envVarTest:\(number + 1)", word: fields[1].trimmingCharacters(in: .whitespaces),
                    environment: environment, expected: expected == "error" ? nil : expected))
        }
        return rows
    }()

    static let lexCases: [Row] = json("buildkit/shell/lex-cases.json").compactMap { item in
        guard let id = item["id"] as? String, let word = item["word"] as? String else { return nil }
        let error = item["error"] as? Bool ?? false
        return Row(
            id: id, word: word, environment: item["env"] as? [String: String] ?? [:],
            expected: error ? nil : item["expected"] as? String)
    }

    static func expand(_ row: Row) -> String? {
        try? WordExpander().expand(row.word) { row.environment[$0] }
    }

    @Test("envVarTest: every A and U line expands as BuildKit's shell lexer does", arguments: envVarCases)
    func envVar(_ row: Row) {
        #expect(Self.expand(row) == row.expected)
    }

    @Test("lex_test.go: every case expands as BuildKit's shell lexer does", arguments: lexCases)
    func lex(_ row: Row) {
        #expect(Self.expand(row) == row.expected)
    }

    /// `wordsTest`: `ENV name=value` lines set the environment for the rows after them; a row is
    /// `word | fields joined by commas` (or `error`).
    static let wordCases: [Row] = {
        var environment = [String: String]()
        var rows = [Row]()
        for (number, line) in text("buildkit/shell/wordsTest").split(separator: "\n", omittingEmptySubsequences: false)
            .enumerated()
        {
            if line.hasPrefix("#") || line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            if line.hasPrefix("ENV ") {
                let setting = line.dropFirst(4)
                guard let equals = setting.firstIndex(of: "=") else { continue }
                environment[String(setting[..<equals])] = String(setting[setting.index(after: equals)...])
                continue
            }
            guard let bar = line.range(of: " | ") else { continue }
            let expected = String(line[bar.upperBound...])
            rows.append(
                Row(
                    id: "wordsTest:\(number + 1)", word: String(line[..<bar.lowerBound]), environment: environment,
                    expected: expected == "error" ? nil : expected))
        }
        return rows
    }()

    @Test("wordsTest: expanded words split into fields as BuildKit splits them", arguments: wordCases)
    func fields(_ row: Row) {
        let fields = try? WordExpander().fields(row.word) { row.environment[$0] }
        #expect(fields?.joined(separator: ",") == row.expected)
    }

    // MARK: - .dockerignore

    struct IgnoreRow: Sendable, CustomTestStringConvertible {
        var id: String
        var text: String
        var path: String
        /// Excluded (true), kept (false), or nil: the patterns are refused.
        var excluded: Bool?
        var testDescription: String {
            "\(id): \(text.debugDescription) \(path) → \(excluded.map(String.init) ?? "error")"
        }
    }

    static let ignoreCases: [IgnoreRow] = json("patternmatcher/dockerignore-cases.json").compactMap { item in
        guard let id = item["id"] as? String, let path = item["path"] as? String else { return nil }
        let text = (item["dockerignore"] as? String) ?? (item["patterns"] as? [String] ?? []).joined(separator: "\n")
        let error = item["error"] as? Bool ?? false
        return IgnoreRow(id: id, text: text, path: path, excluded: error ? nil : item["match"] as? Bool)
    }

    @Test(
        "moby's matcher tables: every path excluded or kept as moby decides, malformed patterns refused",
        arguments: ignoreCases)
    func ignore(_ row: IgnoreRow) {
        let rules = try? DockerIgnore(validating: row.text)
        guard let expected = row.excluded else {
            #expect(rules == nil, "the patterns must be refused")
            return
        }
        #expect(rules?.excludes(row.path) == expected)
    }
}
