import ArgumentParser
import Foundation
import KilnCore

#if canImport(Glibc)
    import Glibc
#endif

/// The process environment as a dictionary.
enum Environment {
    static var current: [String: String] { ProcessInfo.processInfo.environment }
}

/// Writes results to stdout and errors to stderr, as text or JSON.
enum Output {
    static func json(_ value: some Encodable) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let bytes = try? encoder.encode(value) else { return }
        print(OutsideText.jsonWorkflowSafe(String(decoding: bytes, as: UTF8.self)))
    }

    /// A value as one line of JSON text.
    static func jsonText(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// A line to stdout. Whatever outside text it carries (names from the repository, a
    /// registry's or a step's words) starts no workflow command in a CI log
    /// (`OutsideText.workflowSafe`); kiln's own commands go through `command`.
    static func line(_ text: String) {
        print(OutsideText.workflowSafe(text))
    }

    /// Text to stderr as it is (kiln's own progress may hold several lines), workflow-safe.
    static func standardError(_ text: String) {
        FileHandle.standardError.write(Data(OutsideText.workflowSafe(text).utf8))
    }

    /// A line of JSON to stderr (an event, an error), workflow-safe without changing its value.
    static func errorJSON(_ json: String) {
        FileHandle.standardError.write(Data((OutsideText.jsonWorkflowSafe(json) + "\n").utf8))
    }

    /// Workflow commands kiln itself gives (annotations, groups), written as they are: every
    /// outside text in them is already escaped as the command's data.
    static func command(_ text: String, toStandardError: Bool = true) {
        let handle = toStandardError ? FileHandle.standardError : FileHandle.standardOutput
        handle.write(Data(text.utf8))
    }

    /// Writes bytes to stdout unchanged (for `--raw`).
    static func raw(_ bytes: [UInt8]) {
        FileHandle.standardOutput.write(Data(bytes))
    }

    static func errorLine(_ text: String) {
        standardError(text + "\n")
    }

    /// Runs a command body, turning kiln's errors into one line on stderr (a JSON object with
    /// `--json`) and an exit status from the error's category.
    static func reporting(json: Bool, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as KilnError {
            throw exit(for: error, json: json)
        }
    }

    /// `reporting` for async command bodies.
    static func reportingAsync(json: Bool, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as KilnError {
            throw exit(for: error, json: json)
        }
    }

    /// Reports `error` on stderr and gives the exit status its category maps to.
    private static func exit(for error: any KilnError, json: Bool) -> ExitCode {
        report(message: error.description, category: error.category, location: error.sourceLocation, json: json)
        return ExitCode(error.category.rawValue)
    }

    /// An error on stderr: a line of text, or with `--json` an object whose `file` and `line`
    /// say where it is when it is on a line of a file the user wrote.
    static func report(message: String, category: ErrorCategory, location: SourceLocation? = nil, json: Bool) {
        if json {
            struct Failure: Encodable {
                struct Body: Encodable {
                    var category: String
                    var message: String
                    var file: String?
                    var line: Int?
                }
                var error: Body
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let body = Failure.Body(
                category: category.name, message: message, file: location?.file, line: location?.line)
            let bytes = (try? encoder.encode(Failure(error: body))) ?? Data()
            errorJSON(String(decoding: bytes, as: UTF8.self))
        } else {
            errorLine("kiln: error: \(message)")
        }
        if GitHubActions(environment: Environment.current).isActive {
            var properties = [String]()
            if let location {
                properties = ["file=\(GitHubActions.property(location.file))", "line=\(location.line)"]
            }
            let head = properties.isEmpty ? "::error" : "::error " + properties.joined(separator: ",")
            command("\(head)::\(GitHubActions.data(message))\n")
        }
    }
}
