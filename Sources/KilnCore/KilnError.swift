/// Every error kiln throws conforms to this: a one-sentence, actionable `description` naming the
/// file, registry or digest involved, and a category the command line maps to an exit status.
package protocol KilnError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is, for exit codes and `--json` output.
    var category: ErrorCategory { get }
    /// Where in a file the user wrote the failure is (a Dockerfile or registry.yaml line), for
    /// `--json` fields and CI annotations; nil when it is in no file.
    var sourceLocation: SourceLocation? { get }
}

extension KilnError {
    package var sourceLocation: SourceLocation? { nil }
}

/// Broad kinds of failure. The raw value is the process exit status the CLI uses.
package enum ErrorCategory: Int32, Sendable, CaseIterable {
    /// The user asked for something that cannot be done as written (bad flag, bad file content).
    case input = 2
    /// Reading or writing local files failed.
    case io = 3
    /// Bytes did not match their digest.
    case integrity = 4
    /// A registry or the network failed.
    case network = 5
    /// A bug in kiln.
    case `internal` = 70

    /// A short lower-case name used in JSON output.
    package var name: String {
        switch self {
        case .input: "input"
        case .io: "io"
        case .integrity: "integrity"
        case .network: "network"
        case .internal: "internal"
        }
    }
}

/// A position in a text file that a user wrote, for messages such as `Dockerfile:12:5: …`.
package struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    package var file: String
    package var line: Int
    package var column: Int?

    package init(file: String, line: Int, column: Int? = nil) {
        self.file = file
        self.line = line
        self.column = column
    }

    package var description: String {
        if let column { "\(file):\(line):\(column)" } else { "\(file):\(line)" }
    }
}
