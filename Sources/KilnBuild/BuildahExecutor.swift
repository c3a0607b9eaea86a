import Foundation
import KilnCore
import KilnDockerfile
import KilnLayers
import KilnOCI
import KilnStore
import Synchronization

/// Runs `RUN` steps with buildah (daemonless; `--isolation oci` with runc where it can, see
/// `StepIsolation`). kiln hands it one
/// `RUN` at a time on the image kiln built so far — a plain `RUN` in the stage's working
/// container, whose root kiln unpacks and diffs itself (`WorkingContainer`), any other as a
/// Dockerfile `FROM` that image (with the `ARG`s in scope) through `buildah build` — and keeps
/// only the step's one layer, on its own lower layers, as the step's checkpoint. kiln never
/// becomes a container runtime: buildah runs the step; kiln owns the keys, the cache and the
/// layers.
///
/// Each stage's steps on one platform share buildah storage and a working container of their own
/// (`Session`), in a private folder outside the store (`RuntimeDirectory`): processors run side by side without
/// sharing buildah's image and layer tables, and what buildah keeps of a secret never reaches
/// the store that CI caches. The folder goes when the stage ends, when kiln is interrupted, or at
/// the next run's sweep after a `kill -9`.
package struct BuildahExecutor: Sendable {
    /// Where each stage's private folder (buildah storage, secret files, export) is made.
    package let runtimeRoot: String
    /// How each step is kept apart from this machine (`StepIsolation.resolve`).
    package var isolation = StepIsolation.chroot
    /// Said once, at the first step, when kiln chose chroot isolation by itself.
    package var isolationWarning: String?
    /// Each line buildah prints, for a prefixed live log (secret values already masked).
    package var log: @Sendable (String) -> Void = { _ in }
    /// Secrets for `RUN --mount=type=secret,id=…`; their values never reach a layer, the log,
    /// an error or the step key.
    package var secrets: [Secret] = []
    /// Reuse by read set (`RunReuse`): buildah runs under `strace`, what each step touched is
    /// kept with its checkpoint, and a step whose key missed is rebased when nothing it touched
    /// changed. Off (`--no-reuse-by-reads`, kiln.yaml `reuse-by-reads: false`), steps are
    /// reused by position only. Without `strace` installed, steps run untraced (and say so once).
    package var reusesByReads = true

    /// A build secret: its id and where its value comes from.
    package struct Secret: Sendable, Hashable {
        package enum Source: Sendable, Hashable {
            case environment(String)
            case file(String)
        }
        package var id: String
        package var source: Source

        package init(id: String, source: Source) {
            self.id = id
            self.source = source
        }

        /// Parses Docker's `id=NAME[,env=VAR|,src=FILE]` (an `env` of the id's name by default).
        package init?(parsing text: String) {
            var fields = [String: String]()
            for part in text.split(separator: ",") {
                let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
                guard pair.count == 2 else { return nil }
                fields[pair[0] == "source" ? "src" : pair[0]] = pair[1]
            }
            guard let id = fields["id"], !id.isEmpty,
                fields.keys.allSatisfy({ ["id", "env", "src", "type"].contains($0) })
            else { return nil }
            self.id = id
            if let file = fields["src"] { source = .file(file) } else { source = .environment(fields["env"] ?? id) }
        }

        func value(environment: [String: String]) throws -> [UInt8] {
            switch source {
            case .environment(let name):
                guard let value = environment[name] else {
                    throw BuildError.input(
                        "secret '\(id)' comes from the environment variable \(name), which is not set", location: nil)
                }
                return Array(value.utf8)
            case .file(let path):
                do {
                    return try ReadableFile.readAll(path: path, limit: 1 << 20)
                } catch {
                    throw BuildError.input("secret '\(id)': \(error)", location: nil)
                }
            }
        }
    }

    package init(runtimeRoot: String) { self.runtimeRoot = runtimeRoot }

    /// How many buildah builds ran, and how many `RUN` steps they ran (for reports and tests).
    package final class Counters: Sendable {
        private let counts = Mutex(
            (
                runs: 0, steps: 0, reused: Set<Digest>(), checkpoints: [NewCheckpoint](),
                decisions: [RunDecision]()
            ))
        package init() {}
        func addReused(_ key: Digest) { counts.withLock { _ = $0.reused.insert(key) } }
        func decided(_ decision: RunDecision) { counts.withLock { $0.decisions.append(decision) } }
        /// The step at `location` on `platform` took `seconds` (reused or run).
        func took(_ seconds: Double, at location: SourceLocation, platform: Platform) {
            counts.withLock { counts in
                guard
                    let index = counts.decisions.lastIndex(where: { $0.location == location && $0.platform == platform }
                    )
                else { return }
                counts.decisions[index].seconds = seconds
            }
        }
        /// `RUN` steps reused by their read set (no container ran).
        package var reused: Int { counts.withLock { $0.reused.count } }
        /// Why each `RUN` that had no checkpoint ran or was reused.
        package var decisions: [RunDecision] { counts.withLock { $0.decisions } }
        func add(steps: Int) {
            counts.withLock {
                $0.runs += 1
                $0.steps += steps
            }
        }
        func recorded(_ checkpoint: NewCheckpoint) { counts.withLock { $0.checkpoints.append(checkpoint) } }
        package var runs: Int { counts.withLock { $0.runs } }
        package var steps: Int { counts.withLock { $0.steps } }
        package var checkpoints: [NewCheckpoint] { counts.withLock { $0.checkpoints } }
    }

    struct Segment {
        var instructions: [Instruction]
        /// `ARG`s declared before the segment, with their values (declared again at its top).
        var args: [String: String]
        var escape: Character
    }

    /// What a `RUN` is, beyond its segment: its positional key, and for reuse by read set its
    /// identity and whether it is traced (a step with only `RUN` layers below it in its stage
    /// never is: its key covers everything it can see).
    struct Step: Sendable {
        var key: Digest
        var identity: Digest
        var traced: Bool
    }

    /// buildah storage that one stage's `RUN` steps share on one platform: the layers loaded for
    /// one step are there for the next, so each step loads only the layers kiln added since (vfs
    /// copies the whole tree for every layer it loads). A private folder outside the store,
    /// removed when the stage is done, when kiln is interrupted, or by the next run's sweep.
    package final class Session: Sendable {
        let folder: ScratchDirectory
        /// The working container plain steps run in, between steps (`workingContainer`).
        let container = Mutex<WorkingContainer?>(nil)

        init(runtimeRoot: String) throws(BuildError) {
            do {
                try RuntimeDirectory.prepare(runtimeRoot)
                ScratchDirectory.sweep(runtimeRoot)
                folder = try ScratchDirectory(in: runtimeRoot, prefix: "run")
            } catch {
                throw BuildError.io(error)
            }
        }

        var storageArguments: [String] {
            ["--storage-driver", "vfs", "--root", folder.path + "/storage", "--runroot", folder.path + "/run"]
        }

        /// Removes the storage (several copies of the image's tree, with vfs) in the background:
        /// the build goes on meanwhile, and kiln waits for it before it exits.
        func remove() { folder.removeInBackground() }
    }

    /// A new session for a stage's steps.
    func session() throws(BuildError) -> Session { try Session(runtimeRoot: runtimeRoot) }

    /// The tools a step runs with: buildah, and strace when the step is traced (its log to
    /// `traceFile`).
    struct Tools: Sendable {
        var isolation: StepIsolation
        var buildah: String
        var strace: String?
        var traceFile: String
    }

    /// Runs the segment's `RUN` on top of `start` for `platform` in `session`, and records the
    /// result under the step's key.
    func run(
        _ segment: Segment, from start: ImageState, platform: Platform, contextRoot: String, step: Step,
        session: Session, store: ContentStore, layerOptions: LayerOptions, counters: Counters
    ) async throws -> BaseImage {
        let key = step.key
        let environment = ProcessInfo.processInfo.environment
        guard let buildah = ChildProcess.find("buildah", path: environment["PATH"]) else {
            throw BuildError.input(
                "RUN steps go to buildah, which is not installed (apt-get install buildah)",
                location: segment.instructions.last?.location)
        }
        // This step's own files (Dockerfile, secrets, trace, export), gone when it ends.
        let scratch: ScratchDirectory
        do {
            scratch = try ScratchDirectory(in: session.folder.path, prefix: "step")
        } catch {
            throw BuildError.io(error)
        }
        defer { scratch.remove() }

        // Secret values are masked in everything buildah prints.
        let secretValues = try secrets.map { try $0.value(environment: environment) }
        let secretTexts = secretValues.map {
            String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }.filter { !$0.isEmpty }
        let mask = { @Sendable (line: String) -> String in
            secretTexts.reduce(line) { $0.replacingOccurrences(of: $1, with: "****") }
        }
        let log = self.log
        let prefix = "[\(platform)] "
        let lineLog = { @Sendable (line: String) in log(prefix + mask(line)) }
        // Traced: strace writes the log to a file of the step's folder, stopping only for the
        // calls the parser reads.
        var tools = Tools(isolation: isolation, buildah: buildah, strace: nil, traceFile: scratch.path + "/trace")
        if reusesByReads && step.traced {
            if let found = ChildProcess.find("strace", path: environment["PATH"]) {
                if let problem = await Self.tracingProblem(found, scratch: scratch.path) {
                    Self.warnUntraced(log, "strace cannot trace here (\(problem))")
                } else {
                    tools.strace = found
                }
            } else {
                Self.warnUntraced(log, "strace is not installed (apt-get install strace)")
            }
        }
        if let isolationWarning { Self.warnOnce(Self.isolationWarned, log, "kiln: " + isolationWarning) }
        counters.add(steps: 1)
        let image: PlatformImage
        do {
            if let command = Self.directCommand(segment, config: start.config), Self.canUseWorkingContainer {
                // A plain RUN, in the stage's working container: the lower layers are unpacked once,
                // and strace watches only the step.
                image = try await runInWorkingContainer(
                    command, segment: segment, start: start, session: session, tools: tools, store: store,
                    layerOptions: layerOptions, log: lineLog)
            } else {
                image = try await runWithBuild(
                    segment, from: start, platform: platform, contextRoot: contextRoot, key: key, scratch: scratch,
                    session: session, tools: tools, secretValues: secretValues, store: store,
                    layerOptions: layerOptions, log: lineLog)
            }
        } catch let error as BuildError {
            guard case .runFailed(let exit, let output) = error.problem else { throw error }
            throw BuildError(.runFailed(exit: exit, output: mask(output)), location: error.location)
        }
        let stored = try store.put(image.manifest.bytes, mediaType: image.manifest.descriptor.mediaType)
        let manifest = image.manifest.value
        var reads: Descriptor?
        if tools.strace != nil {
            if let keep = environment["KILN_KEEP_TRACES"], !keep.isEmpty {
                // A debugging aid: the raw strace log of each traced step, named by its key.
                let kept = FilePaths.join(keep, "\(key.hex).strace")
                try? FilePaths.makeDirectories(keep)
                try? FileManager.default.removeItem(atPath: kept)
                try? FileManager.default.copyItem(atPath: tools.traceFile, toPath: kept)
            }
            let (lower, traceFile) = (start.layers, tools.traceFile)
            let launch = Self.launch(segment, config: start.config)
            let recorded = try await BlockingWork.run { () -> RunReads? in
                let trace = RunTrace(log: try ReadableFile.readAll(path: traceFile, limit: 8 << 30))
                // The step's own layer: the last (the image has exactly one new layer).
                guard trace.processes > 0, let layer = manifest.layers.last else { return nil }
                return try RunReads.record(
                    trace, layer: layer, lower: lower, identity: step.identity, launch: launch, store: store)
            }
            if let recorded {
                reads = try store.put(try CanonicalJSON.encode(recorded), mediaType: RunTrace.mediaType)
                if let reason = recorded.unmodelled {
                    log(prefix + "kiln: this step will not be reused by what it read: \(reason)")
                }
                if let identity = recorded.identity { try RunExecution.record(identity, key: key, store: store) }
            } else {
                log(prefix + "kiln: the trace of this RUN shows none of its processes; it is reused by position only")
            }
        }
        try store.setRecord(Checkpoint(manifest: stored, reads: reads), kind: "checkpoint", key: key)
        return try Checkpoint.load(stored, key: key, store: store)
    }

    /// Any other step (a `RUN` with mounts, heredocs, network or security options, or kiln not
    /// running as root): the start image loaded into the session's storage (only the layers it
    /// does not hold yet), a Dockerfile `FROM` it built by `buildah build`, and the result taken
    /// back. buildah exports it uncompressed (no time spent re-compressing the lower layers,
    /// which kiln has as they were); kiln keeps only the step's own layer, compressed itself, on
    /// its own lower layers, so a RUN image shares its base's blobs and the same tar gives the
    /// same blob everywhere.
    private func runWithBuild(
        _ segment: Segment, from start: ImageState, platform: Platform, contextRoot: String, key: Digest,
        scratch: ScratchDirectory, session: Session, tools: Tools, secretValues: [[UInt8]], store: ContentStore,
        layerOptions: LayerOptions, log: @escaping @Sendable (String) -> Void
    ) async throws -> PlatformImage {
        let base = session.storageArguments
        let buildah = tools.buildah
        // buildah names an image it pulls from a layout after the layout's path, and refuses a
        // name with capitals: the path is given relative to the step's folder, so it is
        // `start` wherever the runtime folder is.
        let layout = scratch.path + "/start"
        let startImage = try PlatformImage(config: start.config, layers: start.layers)
        try OCILayout(root: layout).write(.single(startImage), tag: "start", layersFrom: store)
        let pulled = try await Self.run(
            buildah, base + ["pull", "--quiet", "oci:start:start"], directory: scratch.path)
        guard pulled.status == 0, let imageID = pulled.output.split(separator: "\n").last.map(String.init) else {
            throw BuildError(.executor("buildah could not load the checkpoint image: \(Self.tail(pulled.output))"))
        }
        FilePaths.removeTree(layout)
        // While a traced step runs, the indexes its read set needs of the layers below it are
        // made (once per store), on the other core.
        let lowerLayers = start.layers
        let warming =
            tools.strace == nil
            ? nil
            : Task {
                _ = try? await BlockingWork.run { try LowerFilesystem.prepare(layers: lowerLayers, store: store) }
            }
        defer { warming?.cancel() }

        let tag = "localhost/kiln-step:\(key.hex.prefix(32))"
        let dockerfile = scratch.path + "/Dockerfile"
        try AtomicFileWriter.write(Array(try Self.dockerfile(segment, from: imageID).utf8), to: dockerfile)
        var arguments =
            base + [
                "build"
            ] + isolation.buildahArguments + [
                "--platform", "\(platform)", "--timestamp", "\(layerOptions.epoch)",
                "--format", "docker", "--pull=never", "--layers=false", "-f", dockerfile, "-t", tag,
            ]
        for (name, value) in segment.args.sorted(by: { $0.key < $1.key }) {
            arguments += ["--build-arg", "\(name)=\(value)"]
        }
        // Secrets go to buildah as files only it reads (0600, in the step's folder).
        for (number, (secret, value)) in zip(secrets, secretValues).enumerated() {
            let file = scratch.path + "/secret-\(number)"
            try AtomicFileWriter.write(value, to: file, permissions: 0o600)
            arguments += ["--secret", "id=\(secret.id),src=\(file)"]
        }
        arguments.append(contextRoot)
        let built = try await Self.runStep(arguments, tools: tools, log: log)
        guard built.status == 0 else {
            let code =
                Self.exitCode(in: built.output).map { "exit code \($0)" } ?? "buildah exit status \(built.status)"
            throw Self.runFailure(built, segment: segment, code: code)
        }
        let output = scratch.path + "/out"
        let pushed = try await Self.run(
            buildah, base + ["push", "--quiet", "--disable-compression", "--format", "v2s2", tag, "dir:\(output)"])
        guard pushed.status == 0 else {
            throw BuildError(.executor("buildah could not export the step's image: \(Self.tail(pushed.output))"))
        }
        let image = try Self.checkpointImage(
            exportedAt: output, start: start, instruction: segment.instructions.last, store: store,
            layerOptions: layerOptions)
        await warming?.value
        return image
    }

    /// The failure of a step that exited with an error, at the `RUN` its output names.
    static func runFailure(_ built: (status: Int32, output: String), segment: Segment, code: String) -> BuildError {
        let failing =
            segment.instructions.last { instruction in
                if case .run = instruction.command {
                    built.output.contains(String(instruction.source.prefix(40)))
                } else {
                    false
                }
            } ?? segment.instructions.last
        return BuildError(.runFailed(exit: code, output: tail(built.output)), location: failing?.location)
    }

    /// The checkpoint image from buildah's uncompressed export at `folder` of the image after a
    /// step on `start`: `start`'s layers plus the step's layer (compressed by kiln), with the
    /// config and history entry `stepImage` gives (buildah's own entry named the scratch image
    /// it ran on, which differs on every run, and buildah's version label is not kept).
    static func checkpointImage(
        exportedAt folder: String, start: ImageState, instruction: Instruction?, store: ContentStore,
        layerOptions: LayerOptions
    ) throws -> PlatformImage {
        let manifest = try CanonicalJSON.decode(
            ImageManifest.self, from: try ReadableFile.readAll(path: folder + "/manifest.json", limit: 4 << 20),
            what: "buildah's manifest")
        let exported = try CanonicalJSON.decode(
            ImageConfig.self,
            from: try ReadableFile.readAll(path: folder + "/" + manifest.config.digest.hex, limit: 16 << 20),
            what: "buildah's image config")
        guard manifest.layers.count == start.layers.count + 1, let tar = manifest.layers.last,
            exported.rootfs.diffIDs.count == manifest.layers.count
        else {
            throw BuildError(
                .executor(
                    "buildah's image has \(manifest.layers.count) layers on \(start.layers.count): a RUN step adds exactly one"
                ))
        }
        // The runtime's mount stubs buildah's layer carries are left out, as from a working
        // container's (`ContainerChanges.removeMountStubs`).
        let tarPath = folder + "/" + tar.digest.hex
        var lower = ImageFilesystem()
        for layer in start.layers {
            try lower.apply(layerBlob: store.blobPath(layer.digest), index: store.memberIndexPath(layer.digest))
        }
        let dropping = ContainerChanges.stubMembers(of: try TarFilter.members(tarAt: tarPath), lower: lower)
        let ingest = try store.beginIngest()
        let layer = try LayerWriter.compress(tarAt: tarPath, options: layerOptions, to: ingest, dropping: dropping)
        guard !dropping.isEmpty || layer.diffID == exported.rootfs.diffIDs.last else {
            throw BuildError(.executor("buildah's exported layer does not match its image config's diff ID"))
        }
        _ = try ingest.commit(expected: layer.digest)
        return try stepImage(
            start: start, layer: layer, instruction: instruction, epoch: layerOptions.epoch, store: store)
    }

    /// What buildah is asked to run the segment's `RUN` with, for the replay: the working
    /// directory, an exec form's program, the `PATH` it is looked up in, and secret files.
    static func launch(_ segment: Segment, config: ImageConfig) -> RunReads.Launch {
        let runtime = config.config
        let path =
            (runtime?.env ?? []).last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) }
            ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        var launch = RunReads.Launch(workingDirectory: runtime?.workingDir ?? "", program: nil, path: path)
        guard let instruction = segment.instructions.last, case .run(let run) = instruction.command else {
            return launch
        }
        if case .exec(let arguments) = run.command { launch.program = arguments.first }
        for mount in run.mounts {
            let fields = RunCommand.mountFields(mount)
            guard fields["type"] == "secret" else { continue }
            let target = fields["target"] ?? fields["dst"] ?? fields["destination"]
            if let target {
                launch.mountedFiles.append(StepReplay.normal(target))
            } else if let id = fields["id"] ?? fields["source"] ?? fields["src"] {
                launch.mountedFiles.append("/run/secrets/" + id)
            }
        }
        return launch
    }

    /// The argument vector for a segment that is one `RUN` without mounts or security options (a
    /// `--network` of `default`, `host` or `none` is the working container's), as buildah's build
    /// would run it: the shell form through the image's `SHELL` (`/bin/sh -c` by default). Nil
    /// when the step needs buildah's build.
    ///
    /// Heredocs go to the shell as BuildKit gives them: `RUN <<EOF` alone runs its body as the
    /// script; any other shell-form `RUN` gets its heredoc bodies after the command line, each
    /// closed by its delimiter, for the shell to read. A body starting with `#!` (an interpreter
    /// of its own) is left to buildah's build.
    static func directCommand(_ segment: Segment, config: ImageConfig) -> [String]? {
        guard segment.instructions.count == 1, case .run(let run) = segment.instructions[0].command,
            run.mounts.isEmpty, run.security == nil, [nil, "default", "host", "none"].contains(run.network)
        else { return nil }
        let shell = config.config?.shell ?? ["/bin/sh", "-c"]
        switch run.command {
        case .exec(let arguments):
            return arguments.isEmpty || !run.heredocs.isEmpty ? nil : arguments
        case .shell(let text):
            guard !run.heredocs.isEmpty else { return shell + [text] }
            if run.heredocs.count == 1, let only = run.heredocs.first,
                Self.isOnlyHeredoc(text.trimmingCharacters(in: .whitespaces), only)
            {
                return only.content.hasPrefix("#!") ? nil : shell + [only.content]
            }
            var script = text + "\n"
            for heredoc in run.heredocs {
                script += heredoc.content + heredoc.name + "\n"
            }
            return shell + [script]
        }
    }

    /// Whether a shell-form `RUN` is nothing but the opener of `heredoc` (`<<EOF`, `<<-"EOF"`, …).
    static func isOnlyHeredoc(_ text: String, _ heredoc: Heredoc) -> Bool {
        let name = heredoc.name
        let dash = heredoc.stripsTabs ? "-" : ""
        return ["<<\(dash)\(name)", "<<\(dash)\"\(name)\"", "<<\(dash)'\(name)'"].contains(text)
    }

    /// Runs buildah with `arguments` for a step, under strace when the step is traced. The step's
    /// processes live in a PID namespace of their own: runc's with OCI isolation, and with chroot
    /// isolation (as root, where `unshare` is installed) buildah runs as the first process of one
    /// with its own `/proc`. When the step's main process ends, the kernel kills whatever the step
    /// left running, traced or not, as BuildKit's runtime does. So a background process never
    /// writes into the root after the step's layer is taken, and a traced step waits for no more
    /// than an untraced one.
    static func runStep(_ arguments: [String], tools: Tools, log: @escaping @Sendable (String) -> Void)
        async throws -> (status: Int32, output: String)
    {
        var command = [tools.buildah] + arguments
        if tools.isolation == .chroot, let unshare = namespaceTool {
            command = [unshare, "--pid", "--fork", "--kill-child", "--mount-proc"] + command
        }
        if let strace = tools.strace { command = [strace] + straceArguments(output: tools.traceFile) + command }
        var attempt = 1
        while true {
            let outcome = try await run(command[0], Array(command.dropFirst()), log: log)
            if outcome.status != 0, case .oci = tools.isolation, let refusal = containerRefusal(outcome.output) {
                throw BuildError(
                    .executor(
                        "runc could not start the step's container (\(refusal)); --isolation chroot runs steps "
                            + "without namespaces of their own, where a step can reach this machine"))
            }
            guard outcome.status != 0, attempt < 3, let failure = runtimeStartFailure(outcome.output) else {
                return outcome
            }
            log("kiln: buildah's runtime did not start (\(failure)); the step had not begun: trying again")
            attempt += 1
        }
    }

    /// Why runc could not make a step's container, from buildah's output; nil when it did (a
    /// step whose command is missing fails as the step, not as the runtime).
    package static func containerRefusal(_ output: String) -> String? {
        output.split(separator: "\n").first { line in
            line.contains("runc create failed") && !line.contains("unable to start container process: exec:")
        }.map { line in
            String(line[(line.range(of: "runc create failed")?.lowerBound ?? line.startIndex)...])
                .trimmingCharacters(in: CharacterSet(charactersIn: "\" \n"))
        }
    }

    /// The message of a failure of buildah's chroot runtime before it starts the step's first
    /// process, which trying again gets past: its re-exec seals a memfd copy of itself, and the
    /// kernel refuses the seal (`EBUSY`) while it still holds a transient reference to a page.
    static func runtimeStartFailure(_ output: String) -> String? {
        output.split(separator: "\n").first { $0.contains("sealing memfd copy") }.map(String.init)
    }

    /// `unshare`, when kiln can give each step a PID namespace (it runs as root and util-linux's
    /// `unshare` is installed).
    static let namespaceTool: String? = {
        guard geteuid() == 0 else { return nil }
        return ChildProcess.find("unshare", path: ProcessInfo.processInfo.environment["PATH"])
    }()

    /// `strace` watching a buildah run: every process (`-f`), descriptors with their paths
    /// (`-y`), the pids `clone` returns in the step's PID namespace translated to strace's
    /// (`--decode-pids=pidns`), whole strings, and only the calls `RunTrace` reads, filtered in the kernel
    /// (`--seccomp-bpf`) so the others never stop the step.
    static func straceArguments(output: String) -> [String] {
        [
            "-f", "-qq", "-y", "--decode-pids=pidns", "-s", "65535", "--seccomp-bpf", "-e",
            "trace=" + RunTrace.tracedCalls, "-o", output,
        ]
    }

    private static let untracedWarned = Mutex(false)
    private static let isolationWarned = Mutex(false)

    static func warnUntraced(_ log: @Sendable (String) -> Void, _ reason: String) {
        warnOnce(untracedWarned, log, "kiln: \(reason): RUN steps are reused by position only")
    }

    /// Logs `message` the first time `flag` is seen unset in this process.
    private static func warnOnce(_ flag: borrowing Mutex<Bool>, _ log: @Sendable (String) -> Void, _ message: String) {
        let first = flag.withLock { warned in
            defer { warned = true }
            return !warned
        }
        if first { log(message) }
    }

    /// Whether strace works on this machine, found once per process by tracing `true` with the
    /// step's options: where ptrace is not allowed (a container without CAP_SYS_PTRACE) a traced
    /// step would fail, so steps run untraced instead. Nil when it works, else why not.
    static func tracingProblem(_ strace: String, scratch: String) async -> String? {
        if let known = tracingProbe.withLock({ $0 }) { return known.isEmpty ? nil : known }
        let output = scratch + "/probe.strace"
        let probe = try? await ChildProcess.run(strace, straceArguments(output: output) + ["true"], line: { _ in })
        var problem = ""
        if let probe, probe.status != 0 {
            problem = tail(probe.output, lines: 1)
        } else if probe == nil {
            problem = "it did not start"
        }
        unlink(output)
        tracingProbe.withLock { $0 = problem }
        return problem.isEmpty ? nil : problem
    }

    private static let tracingProbe = Mutex<String?>(nil)

    /// The Dockerfile buildah builds for a segment: `FROM` the start image, the `ARG`s in scope
    /// declared again, then the segment's instructions as written (heredoc bodies included).
    static func dockerfile(_ segment: Segment, from imageID: String) throws -> String {
        var text = segment.escape == "\\" ? "" : "# escape=\(segment.escape)\n"
        text += "FROM \(imageID)\n"
        for name in segment.args.keys.sorted() { text += "ARG \(name)\n" }
        for instruction in segment.instructions {
            text += instruction.source + "\n"
            if case .run(let run) = instruction.command {
                for heredoc in run.heredocs {
                    text += heredoc.content + (heredoc.content.hasSuffix("\n") ? "" : "\n") + heredoc.name + "\n"
                }
            }
        }
        return text
    }

    /// A `RUN` checkpoint: the image after a step, recorded under the step's key.
    package struct Checkpoint: Codable {
        var manifest: Descriptor
        /// What the step touched (`RunTrace.stored`), when it ran traced.
        var reads: Descriptor?

        /// The record of `key`, when there is one.
        package static func recorded(_ key: Digest, store: ContentStore) -> (manifest: Descriptor, reads: Descriptor?)?
        {
            guard let record = try? store.record(Checkpoint.self, kind: "checkpoint", key: key) else { return nil }
            return (record.manifest, record.reads)
        }

        /// The checkpoint recorded under `key`, when its manifest and config are in the store
        /// (its layers may be left in the registry: `RemoteLayers`).
        package static func find(_ key: Digest, store: ContentStore) -> BaseImage? {
            guard let record = try? store.record(Checkpoint.self, kind: "checkpoint", key: key) else { return nil }
            return try? load(record.manifest, key: key, store: store)
        }

        /// Records the manifest `descriptor` (in the store with its config and layers) as the
        /// checkpoint of `key`, and returns it as an image to build on.
        package static func record(_ descriptor: Descriptor, reads: Descriptor? = nil, key: Digest, store: ContentStore)
            throws -> BaseImage
        {
            try store.setRecord(Checkpoint(manifest: descriptor, reads: reads), kind: "checkpoint", key: key)
            return try load(descriptor, key: key, store: store)
        }

        static func load(_ descriptor: Descriptor, key: Digest, store: ContentStore) throws -> BaseImage {
            let manifest = try CanonicalJSON.decode(
                ImageManifest.self, from: try store.readBlob(descriptor.digest, limit: 4 << 20),
                what: "checkpoint \(key.short)")
            let config = try CanonicalJSON.decode(
                ImageConfig.self, from: try store.readBlob(manifest.config.digest, limit: 16 << 20),
                what: "checkpoint config")
            return BaseImage(pinned: nil, config: config, layers: manifest.layers, manifestDescriptor: descriptor)
        }
    }

    // MARK: - Processes

    /// Runs a tool (off the cooperative pool), handing each line of its output to `log`.
    static func run(
        _ tool: String, _ arguments: [String], directory: String? = nil,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> (status: Int32, output: String) {
        do {
            let outcome = try await ChildProcess.run(
                tool, arguments, environment: StepIsolation.toolEnvironment(), directory: directory, line: log)
            return (outcome.status, outcome.output)
        } catch {
            throw BuildError(.executor(error.description))
        }
    }

    static func tail(_ output: String, lines: Int = 15) -> String {
        output.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// The exit code buildah reports for a failed `RUN` ("exit status N").
    static func exitCode(in output: String) -> Int? {
        guard let range = output.range(of: "exit status ", options: .backwards) else { return nil }
        return Int(output[range.upperBound...].prefix { $0.isNumber })
    }
}
