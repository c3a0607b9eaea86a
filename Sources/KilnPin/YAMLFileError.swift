import KilnCore

/// A problem in a YAML file kiln reads or pins (`registry.yaml`, `kiln.yaml`). Always names the
/// file, and the line when the problem sits on one.
package struct YAMLFileError: KilnError {
    package var message: String
    package var location: SourceLocation?
    package var category: ErrorCategory

    package init(_ message: String, location: SourceLocation?, category: ErrorCategory = .input) {
        self.message = message
        self.location = location
        self.category = category
    }

    package var description: String {
        guard let location else { return message }
        return "\(location): \(message)"
    }

    package var sourceLocation: SourceLocation? { location }
}
