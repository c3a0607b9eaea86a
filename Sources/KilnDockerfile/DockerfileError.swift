import KilnCore

/// A Dockerfile (or `.dockerignore`) that cannot be read as written. The message starts with
/// `FILE:LINE:COLUMN` and says what was expected there.
public struct DockerfileError: KilnError, Equatable {
    public var location: SourceLocation
    public var message: String

    public init(_ message: String, at location: SourceLocation) {
        self.location = location
        self.message = message
    }

    public var description: String { "\(location): \(message)" }
    public var category: ErrorCategory { .input }
}
