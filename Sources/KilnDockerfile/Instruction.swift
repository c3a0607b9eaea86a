import KilnCore

/// A parsed Dockerfile: directives, the `ARG`s before the first `FROM`, and the stages.
/// Nothing is expanded yet; variables are substituted when a stage is built, because their
/// values depend on build arguments, the platform and the base image's environment.
public struct Dockerfile: Sendable {
    public var file: String
    public var directives: Directives
    public var globalArgs: [Instruction]
    public var stages: [Stage]

    public var escape: Character { directives.escape }

    /// The stage with this name (case-insensitive) or index.
    public func stage(named reference: String) -> Stage? {
        if let index = Int(reference), stages.indices.contains(index) { return stages[index] }
        return stages.first { $0.name == reference.lowercased() }
    }
}

/// One `FROM` and the instructions up to the next.
public struct Stage: Sendable {
    public var index: Int
    /// The `AS` name, lower-cased as BuildKit stores it.
    public var name: String?
    /// The image (or earlier stage) as written, variables not yet expanded.
    public var base: String
    /// `FROM --platform=…`, unexpanded.
    public var platform: String?
    public var from: Instruction
    public var instructions: [Instruction]

    /// The line of the stage's last `RUN`, if any: the point up to which an executor must run it.
    public var lastRun: Instruction? { instructions.last { if case .run = $0.command { true } else { false } } }
}

/// One instruction with where it was written.
public struct Instruction: Sendable {
    public var location: SourceLocation
    /// The instruction as written (continuations joined), for history and messages.
    public var source: String
    public var command: Command

    /// The keyword, upper-cased (`COPY`).
    public var keyword: String { String(source.prefix { !$0.isWhitespace }).uppercased() }
}

/// Exec form (`["a", "b"]`) or shell form (`a b`).
public enum CommandForm: Hashable, Sendable {
    case exec([String])
    case shell(String)
}

/// `KEY=VALUE` as written, before expansion.
public struct KeyValue: Hashable, Sendable {
    public var key: String
    public var value: String
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// `ARG NAME[=default]`.
public struct ArgDefinition: Hashable, Sendable {
    public var name: String
    public var defaultValue: String?
    public init(_ name: String, _ defaultValue: String? = nil) {
        self.name = name
        self.defaultValue = defaultValue
    }
}

/// `COPY` or `ADD` with its flags, unexpanded.
public struct CopyCommand: Hashable, Sendable {
    public var sources: [String]
    public var destination: String
    public var heredocs: [Heredoc] = []
    public var from: String?
    public var chown: String?
    public var chmod: String?
    public var link = false
    public var parents = false
    public var excludes: [String] = []
    /// `ADD --checksum=…` (remote sources only).
    public var checksum: String?
    public var keepGitDir = false

    public init(sources: [String], destination: String) {
        self.sources = sources
        self.destination = destination
    }
}

/// `RUN` with its flags.
public struct RunCommand: Hashable, Sendable {
    public var command: CommandForm
    public var heredocs: [Heredoc] = []
    public var mounts: [String] = []
    public var network: String?
    public var security: String?
}

/// `HEALTHCHECK`, with durations in nanoseconds (zero when not given).
public struct HealthcheckCommand: Hashable, Sendable {
    /// `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", text]`, as Docker stores it.
    public var test: [String]
    public var interval: Int64 = 0
    public var timeout: Int64 = 0
    public var startPeriod: Int64 = 0
    public var startInterval: Int64 = 0
    public var retries = 0
}

public enum Command: Sendable {
    case from
    case arg([ArgDefinition])
    case env([KeyValue])
    case label([KeyValue])
    case copy(CopyCommand)
    case add(CopyCommand)
    case run(RunCommand)
    case workdir(String)
    case user(String)
    case expose([String])
    case entrypoint(CommandForm)
    case cmd(CommandForm)
    case healthcheck(HealthcheckCommand)
    case stopSignal(String)
    case volume([String])
    case shell([String])
    /// The trigger as written after `ONBUILD`.
    case onBuild(String)
    case maintainer(String)
}
