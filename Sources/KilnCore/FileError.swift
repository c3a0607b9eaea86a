#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed system call on a named path, with the operating system's own explanation.
package struct FileError: KilnError, Equatable {
    /// What kiln was doing: "open", "read", "write", "rename", …
    package var operation: String
    /// The path involved.
    package var path: String
    /// The `errno` value.
    package var code: Int32
    /// Why, in words, when the system's explanation for `code` would not say it.
    package var reason: String?

    package init(_ operation: String, path: String, code: Int32 = errno, reason: String? = nil) {
        self.operation = operation
        self.path = path
        self.code = code
        self.reason = reason
    }

    package var description: String {
        "cannot \(operation) '\(path)': \(reason ?? String(cString: strerror(code)))"
    }

    package var category: ErrorCategory { .io }
}
