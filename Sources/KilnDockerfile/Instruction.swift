import KilnCore

/// A parsed Dockerfile: directives, the `ARG`s before the first `FROM`, and the stages.
/// Nothing is expanded yet; variables are substituted when a stage is built, because their
/// values depend on build arguments, the platform and the base image's environment.
package struct Dockerfile: Sendable {
    package var file: String
    package var directives: Directives
    package var globalArgs: [Instruction]
    package var stages: [Stage]

    package var escape: Character { directives.escape }

    /// The stage with this name (case-insensitive) or index.
    package func stage(named reference: String) -> Stage? {
        if let index = Int(reference), stages.indices.contains(index) { return stages[index] }
        return stages.first { $0.name == reference.lowercased() }
    }
}

/// One `FROM` and the instructions up to the next.
package struct Stage: Sendable {
    package var index: Int
    /// The `AS` name, lower-cased as BuildKit stores it.
    package var name: String?
    /// The image (or earlier stage) as written, variables not yet expanded.
    package var base: String
    /// `FROM --platform=…`, unexpanded.
    package var platform: String?
    package var from: Instruction
    package var instructions: [Instruction]

    /// The line of the stage's last `RUN`, if any: the point up to which an executor must run it.
    package var lastRun: Instruction? { instructions.last { if case .run = $0.command { true } else { false } } }
}

/// One instruction with where it was written.
package struct Instruction: Sendable {
    package var location: SourceLocation
    /// The instruction as written (continuations joined), for history and messages.
    package var source: String
    package var command: Command

    /// The keyword, upper-cased (`COPY`).
    package var keyword: String { String(source.prefix { !$0.isWhitespace }).uppercased() }
}

/// Exec form (`["a", "b"]`) or shell form (`a b`).
package enum CommandForm: Hashable, Sendable {
    case exec([String])
    case shell(String)
}

/// `KEY=VALUE` as written, before expansion.
package struct KeyValue: Hashable, Sendable {
    package var key: String
    package var value: String
    package init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// `ARG NAME[=default]`.
package struct ArgDefinition: Hashable, Sendable {
    package var name: String
    package var defaultValue: String?
    package init(_ name: String, _ defaultValue: String? = nil) {
        self.name = name
        self.defaultValue = defaultValue
    }
}

/// `COPY` or `ADD` with its flags, unexpanded.
package struct CopyCommand: Hashable, Sendable {
    package var sources: [String]
    package var destination: String
    package var heredocs: [Heredoc] = []
    package var from: String?
    package var chown: String?
    package var chmod: String?
    package var link = false
    package var parents = false
    package var excludes: [String] = []
    /// `ADD --checksum=…` (remote sources only).
    package var checksum: String?
    package var keepGitDir = false

    package init(sources: [String], destination: String) {
        self.sources = sources
        self.destination = destination
    }
}

/// `RUN` with its flags.
package struct RunCommand: Hashable, Sendable {
    package var command: CommandForm
    package var heredocs: [Heredoc] = []
    package var mounts: [String] = []

    /// A `--mount` value's `key=value` fields (`type=bind,source=x,target=/y`); a bare key
    /// (`readonly`) maps to "true".
    package static func mountFields(_ mount: String) -> [String: String] {
        var fields = [String: String]()
        for part in mount.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
            fields[pair[0]] = pair.count == 2 ? pair[1] : "true"
        }
        return fields
    }
    package var network: String?
    package var security: String?
}

/// `HEALTHCHECK`, with durations in nanoseconds (zero when not given).
package struct HealthcheckCommand: Hashable, Sendable {
    /// `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", text]`, as Docker stores it.
    package var test: [String]
    package var interval: Int64 = 0
    package var timeout: Int64 = 0
    package var startPeriod: Int64 = 0
    package var startInterval: Int64 = 0
    package var retries = 0
}

package enum Command: Sendable {
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
