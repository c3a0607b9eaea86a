import KilnCore

/// A problem in a YAML file kiln reads or pins (`registry.yaml`, `kiln.yaml`). Always names the
/// file, and the line when the problem sits on one.
public struct YAMLFileError: KilnError {
    public var message: String
    public var location: SourceLocation?
    public var category: ErrorCategory

    public init(_ message: String, location: SourceLocation?, category: ErrorCategory = .input) {
        self.message = message
        self.location = location
        self.category = category
    }

    public var description: String {
        guard let location else { return message }
        return "\(location): \(message)"
    }
}
