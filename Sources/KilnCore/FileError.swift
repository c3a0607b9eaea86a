#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed system call on a named path, with the operating system's own explanation.
public struct FileError: KilnError, Equatable {
    /// What kiln was doing: "open", "read", "write", "rename", …
    public var operation: String
    /// The path involved.
    public var path: String
    /// The `errno` value.
    public var code: Int32
    /// Why, in words, when the system's explanation for `code` would not say it.
    public var reason: String?

    public init(_ operation: String, path: String, code: Int32 = errno, reason: String? = nil) {
        self.operation = operation
        self.path = path
        self.code = code
        self.reason = reason
    }

    public var description: String {
        "cannot \(operation) '\(path)': \(reason ?? String(cString: strerror(code)))"
    }

    public var category: ErrorCategory { .io }
}
