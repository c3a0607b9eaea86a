import Foundation
import KilnCore
import KilnProcessors

/// The lane as the runbooks run it without kiln: for each processor, `buildah bud --layers` for
/// its platforms into a manifest list, then `buildah manifest push --all`, one after the other,
/// with buildah's own storage (emptied for the cold and fresh-runner scenarios).
struct BuildahPeer: Sendable {
    struct Target: Sendable {
        var ref: String
        var context: String
        var dockerfile: String
        var platforms: [String]
        var buildArgs: [String: String]
        var destination: String
    }

    let buildah: String
    let targets: [Target]
    let insecure: Bool
    let storage: String

    init(root: String, host: String, owner: String, insecure: Bool, settings: BenchSettings, scratch: String) throws {
        guard let buildah = ChildProcess.find("buildah", path: ProcessInfo.processInfo.environment["PATH"]) else {
            throw BenchError.missingTool("buildah", package: "buildah")
        }
        self.buildah = buildah
        self.insecure = insecure
        storage = scratch + "/buildah"
        let config = try LaneConfig.load(root: root)
        let given = Dictionary(
            settings.buildArgs.map { text in
                let parts = text.split(separator: "=", maxSplits: 1)
                return (
                    String(parts[0]),
                    parts.count > 1 ? String(parts[1]) : ProcessInfo.processInfo.environment[text] ?? ""
                )
            }, uniquingKeysWith: { $1 })
        let wanted = Set(settings.refs.flatMap { $0.split(separator: ",").map(String.init) })
        targets = try Discovery.processors(config).compactMap { processor in
            guard processor.enabled, processor.duplicates.isEmpty,
                wanted.isEmpty || wanted.contains(processor.ref.description)
            else { return nil }
            var platforms = (processor.platforms ?? config.platforms).map(\.description)
            if !settings.platforms.isEmpty {
                platforms = platforms.filter { settings.platforms.contains($0) }
            }
            guard !platforms.isEmpty else { return nil }
            let args = config.buildArgs.merging(processor.buildArgs) { $1 }.merging(given) { $1 }
            let name = "\(processor.ref.namespace)-\(processor.ref.name)"
            return Target(
                ref: processor.ref.description, context: processor.context, dockerfile: processor.dockerfile,
                platforms: platforms, buildArgs: args, destination: "\(host)/\(owner)/\(name):\(processor.ref.version)")
        }
    }

    func run(_ kind: ScenarioResult.Kind, label: String) async throws -> LaneRunner.Outcome {
        if kind == .cold || kind == .freshRunner { FilePaths.remove(storage) }
        let global = ["--storage-driver", "vfs", "--root", storage + "/root", "--runroot", storage + "/run"]
        let tls = insecure ? ["--tls-verify=false"] : []
        var result = ScenarioResult(kind: kind, tool: "buildah", label: label, seconds: 0)
        let started = Elapsed.now()
        for (number, target) in targets.enumerated() {
            let list = "localhost/kiln-bench/p\(number)"
            let begun = Elapsed.now()
            _ = try? await ChildProcess.run(buildah, global + ["manifest", "rm", list])
            var build = global + ["bud", "--layers", "--isolation", "chroot", "--platform"]
            build += [target.platforms.joined(separator: ","), "--manifest", list] + tls
            for (name, value) in target.buildArgs.sorted(by: { $0.key < $1.key }) {
                build += ["--build-arg", "\(name)=\(value)"]
            }
            build += ["-f", target.dockerfile, target.context]
            var outcome = try await ChildProcess.run(buildah, build)
            if outcome.status == 0 {
                outcome = try await ChildProcess.run(
                    buildah, global + ["manifest", "push", "--all"] + tls + [list, "docker://" + target.destination])
            }
            let status = outcome.status == 0 ? "built" : "failed"
            if outcome.status != 0, result.failure == nil {
                result.failure = "\(target.ref): " + String(outcome.output.suffix(1500))
            }
            result.processors.append(
                ProcessorTiming(ref: target.ref, status: status, seconds: Elapsed.seconds(since: begun)))
        }
        result.seconds = Elapsed.seconds(since: started)
        result.built = result.processors.filter { $0.status == "built" }.count
        result.failed = result.processors.count - result.built
        return LaneRunner.Outcome(result: result, platforms: [], repositories: [])
    }
}
