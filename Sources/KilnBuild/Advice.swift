import KilnCore
import KilnDockerfile

/// Suggestions about step order, for `kiln plan`. kiln never reorders a Dockerfile itself: a
/// `RUN` may need files in ways no tool can see. It points out the common costly shape — code
/// that changes often, copied before an expensive `RUN` that does not mention it — so a code
/// change does not re-run an install.
package enum Advice {
    package struct Item: Sendable, Hashable, CustomStringConvertible {
        package var location: SourceLocation
        package var message: String
        package var description: String { "\(location): \(message)" }
    }

    /// Files that describe dependencies: copying them before an install is the right order.
    static let manifests = [
        "requirements", "constraints", "pyproject.toml", "setup.py", "setup.cfg", "poetry.lock", "pipfile",
        "package.json",
        "package-lock.json", "yarn.lock", "pnpm-lock", "go.mod", "go.sum", "cargo.toml", "cargo.lock", "gemfile",
        "composer.",
        "pom.xml", "build.gradle", ".npmrc", "apt", "packages.txt",
    ]

    /// Words that mark a `RUN` as expensive: package managers and builds.
    static let expensive = [
        "pip", "apt-get", "apt ", "apk ", "dnf ", "yum ", "npm ", "yarn ", "pnpm ", "poetry ", "uv ", "conda ",
        "cargo ", "go build",
        "go mod", "make", "mvn ", "gradle", "bundle ", "composer ", "gem install", "curl ", "wget ",
    ]

    package static func advise(_ dockerfile: Dockerfile) -> [Item] {
        var result = [Item]()
        for stage in dockerfile.stages {
            let instructions = stage.instructions
            for (index, instruction) in instructions.enumerated() {
                guard case .copy(let copy) = instruction.command, copy.from == nil, copy.heredocs.isEmpty else {
                    continue
                }
                let sources = copy.sources.map { $0.lowercased() }
                if sources.contains(where: { source in manifests.contains { source.contains($0) } }) { continue }
                let destination =
                    copy.destination.hasSuffix("/") ? String(copy.destination.dropLast()) : copy.destination
                let names =
                    [destination]
                    + copy.sources.map { FilePaths.lastComponent(of: "/" + $0).replacingOccurrences(of: "*", with: "") }
                for run in instructions[(index + 1)...] {
                    guard case .run(let command) = run.command else { continue }
                    let text: String
                    switch command.command {
                    case .shell(let shell): text = shell
                    case .exec(let words): text = words.joined(separator: " ")
                    }
                    let lowered = text.lowercased() + " "
                    guard expensive.contains(where: { lowered.contains($0) }) else { continue }
                    let mentioned = names.contains { name in
                        !name.isEmpty && name != "/" && name != "." && text.contains(name)
                    }
                    if !mentioned {
                        result.append(
                            Item(
                                location: instruction.location,
                                message:
                                    "\(instruction.keyword) \(copy.sources.joined(separator: " ")) comes before line \(run.location.line) "
                                    + "(\(String(run.source.prefix(50)))\(run.source.count > 50 ? "…" : "")), which does not mention \(destination); "
                                    + "if that RUN does not need these files, move the \(instruction.keyword) after it, so a change to them "
                                    + "does not run it again"))
                    }
                    break
                }
            }
        }
        return result
    }
}
