import KilnCore

/// A Dockerfile (or `.dockerignore`) that cannot be read as written. The message starts with
/// `FILE:LINE:COLUMN` and says what was expected there.
package struct DockerfileError: KilnError, Equatable {
    package var location: SourceLocation
    package var message: String

    package init(_ message: String, at location: SourceLocation) {
        self.location = location
        self.message = message
    }

    package var description: String { "\(location): \(message)" }
    package var category: ErrorCategory { .input }
    package var sourceLocation: SourceLocation? { location }
}
