import KilnCore
import KilnDockerfile
import KilnOCI

/// Docker's build cache made content-addressed: every instruction of a stage gets a key chained
/// from the one before it, so a step's key changes exactly when it, or anything before it,
/// changes. A stage starts from its base image's platform manifest digest (or `scratch` and the
/// platform, or the key of the earlier stage it is built on).
///
/// A step's key covers: the parent key; the instruction as written; the values of the build
/// arguments in scope (as Docker does, `RUN` sees every `ARG` declared before it); for `COPY`
/// and `ADD` the hash list of exactly the context files it reads, after `.dockerignore`; and for
/// `COPY --from` the key of that stage or the digest of that image; and the layer options
/// (`SOURCE_DATE_EPOCH` and the gzip level). Heredoc bodies are part of the instruction. `ENV`, `WORKDIR` and the like need nothing more: they are instructions
/// before, so they are in the parent key.
package enum StepKeys {
    /// `/4`: every step key covers the layer options (`SOURCE_DATE_EPOCH` stamps every file a
    /// layer holds, the gzip level its bytes), which a step's checkpoint was written with.
    package static let format = "kiln-step-key/5"

    /// One instruction and the key of the state after it.
    package struct Step: Sendable {
        package var instruction: Instruction
        package var key: Digest
    }

    static func start(scratch platform: Platform) -> Digest {
        Digest.sha256(of: Array("\(format)\nscratch \(platform)".utf8))
    }

    static func start(base manifest: Digest) -> Digest {
        Digest.sha256(of: Array("\(format)\nbase \(manifest)".utf8))
    }

    static func next(after parent: Digest, _ instruction: Instruction, in builder: StageBuilder, hasher: ContextHasher)
        throws -> Digest
    {
        var text = "\(format)\nparent \(parent.hex)\nlayers \(builder.layerOptions.keyLine)\n"
        text += "instruction \(instruction.source)\n"
        switch instruction.command {
        case .copy(let copy), .add(let copy):
            for heredoc in copy.heredocs { text += "heredoc \(heredoc.name)\n\(heredoc.content)\n" }
            if let from = copy.from {
                let name = try builder.expand(from, instruction)
                if let stage = builder.dockerfile.stage(named: name), let built = builder.stages[stage.index] {
                    text += "from stage \(built.stepKey.hex)\n"
                } else if let image = builder.images[name] {
                    text += "from image \(image.stepKey.hex)\n"
                }
            }
            let items = try builder.contextReads(copy, instruction)
            let digests = try hasher.digests(of: items)
            var seen = Set<String>()
            for item in items where seen.insert(item.path).inserted {
                switch item.kind {
                case .file:
                    text += "file \(item.path) \(String(item.mode, radix: 8)) \(digests[item.path]?.hex ?? "?")\n"
                case .directory: text += "dir \(item.path) \(String(item.mode, radix: 8))\n"
                case .symlink(let target): text += "symlink \(item.path) \(target)\n"
                }
            }
        case .run(let run):
            for heredoc in run.heredocs { text += "heredoc \(heredoc.name)\n\(heredoc.content)\n" }
            // Context files a bind mount shows the step.
            let items = try builder.bindMountReads(run, instruction)
            let digests = try hasher.digests(of: items)
            for item in items {
                switch item.kind {
                case .file: text += "mount file \(item.path) \(digests[item.path]?.hex ?? "?")\n"
                case .directory: text += "mount dir \(item.path)\n"
                case .symlink(let target): text += "mount symlink \(item.path) \(target)\n"
                }
            }
        default: break
        }
        for (name, value) in builder.args.sorted(by: { $0.key < $1.key }) { text += "arg \(name)=\(value)\n" }
        return Digest.sha256(of: Array(text.utf8))
    }
}
