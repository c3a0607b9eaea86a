import KilnCore

/// Why a build stopped. Input errors name the Dockerfile line they come from.
public struct BuildError: KilnError {
    public var message: String
    public var location: SourceLocation?
    public var category: ErrorCategory
    /// For a `COPY`/`ADD` source that is not in the context: the source as written, so a caller
    /// can look for it elsewhere and say which setting to change.
    public var missingSource: String?

    public init(_ message: String, location: SourceLocation?, category: ErrorCategory) {
        self.message = message
        self.location = location
        self.category = category
    }

    public static func input(_ message: String, location: SourceLocation?) -> BuildError {
        BuildError(message, location: location, category: .input)
    }

    public static func io(_ error: FileError) -> BuildError { BuildError(error.description, location: nil, category: .io) }

    /// Another kiln error, placed at a Dockerfile line when one is known.
    public static func wrapping(_ error: any Error, at location: SourceLocation?) -> BuildError {
        if var error = error as? BuildError {
            if error.location == nil { error.location = location }
            return error
        }
        if let error = error as? any KilnError { return BuildError(error.description, location: location, category: error.category) }
        return BuildError("\(error)", location: location, category: .internal)
    }

    public var description: String {
        guard let location else { return message }
        return "\(location): \(message)"
    }
}
