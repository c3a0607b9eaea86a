import KilnBuild
import KilnCore
import KilnDockerfile
import KilnOCI
import KilnProcessors
import KilnStore
import Synchronization

/// A processor's keys as last computed, with what they were computed from (`keys/key-memo/…`):
/// the lane's index, as git's index is for `git status`. When every path the keying looked at
/// still `lstat`s the same, the settings are the same and each base still resolves to the same
/// digest, the keys are the same, and an unchanged processor costs a few `lstat`s instead of a
/// Dockerfile parse, a context walk and the stat cache.
///
/// What a keying pass looks at, each path recorded with its `lstat` (size, mtime, ctime, inode):
/// the Dockerfile, the ignore file (or the absence of each candidate), every context item the
/// build reads and every directory listed (an added file could be a new source). A memo is
/// written only when all of them changed more than two seconds before the keying began, so an
/// edit made during the pass, or in the same clock tick as an earlier one, can never hide behind
/// it. A directory only passed through on the way to a source must stay the same directory (by
/// inode, checked again after the pass): one swapped for another, or for a symlink, could lead
/// elsewhere, while an entry added beside the path (a pin written next to the Dockerfile) does
/// not matter.
struct KeyMemo: Codable {
    /// Bump when what a keying pass looks at changes, so older memos are not trusted.
    static let format = "kiln-key-memo/2"

    /// The SHA-256 of everything besides files and bases that decides the keys (`fingerprint`).
    var fingerprint: String
    /// One line per path looked at: `SIZE MTIME CTIME INODE PATH` as `lstat` gave them (times in
    /// nanoseconds); `d INODE PATH` for a directory only passed through, which must stay that
    /// directory; `- PATH` for a path that must stay absent. One string, split into lines and
    /// fields: decoding thousands of JSON numbers one by one was most of checking a memo.
    var paths: String
    /// Each base image the keys pinned, as the Dockerfile asked for it.
    var bases: [BaseRequests.Request]
    /// Each platform's key, in the processor's platform order.
    var keys: [String]
    /// The key of every `RUN` step of the build, over its platforms, each once (none without a
    /// `RUN`): where the lane's checkpoint homes come from while the memo holds, so building one
    /// changed processor does not key every other processor's steps. Nil when not known (the
    /// step keys could not be computed); the homes then key the processor's steps in full.
    var runSteps: [String]?
    /// The index last pushed for these keys, when one was: the next run's lookup is one `HEAD`
    /// of it, with no record read and no index made.
    var published: Published?

    struct Published: Codable {
        var repository: String
        var index: Digest
        /// Each platform's manifest, in the processor's platform order.
        var manifests: [Descriptor]

        init(
            repository: Repository, index: Digest, found: [Platform: Descriptor],
            keys: [(platform: Platform, key: Digest)]
        ) {
            self.repository = repository.description
            self.index = index
            // Made once every platform was found or built: one manifest per key.
            self.manifests = keys.compactMap { found[$0.platform] }
        }
    }
}

/// A memo a full keying pass made, written once the processor is done (with the index it was
/// published as, if it was).
final class PendingMemo: Sendable {
    private let memo = Mutex<KeyMemo?>(nil)

    func set(_ memo: KeyMemo) { self.memo.withLock { $0 = memo } }
    func take() -> KeyMemo? {
        memo.withLock { memo in
            defer { memo = nil }
            return memo
        }
    }
}

/// The base images a keying pass asked for and what each resolved to.
final class BaseRequests: Sendable {
    struct Request: Codable, Hashable {
        /// As asked for (after build-arg substitution).
        var reference: String
        var platform: String
        /// `PinnedBase.description`: what the key recorded.
        var pinned: String
    }

    private let requests = Mutex<Set<Request>>([])

    var all: [Request] {
        requests.withLock { $0 }.sorted { ($0.reference, $0.platform) < ($1.reference, $1.platform) }
    }

    func add(_ request: Request) { _ = requests.withLock { $0.insert(request) } }
}

/// A base image source that writes down what it was asked for, for the key memo.
struct RecordingBaseImages: BaseImageSource {
    let source: RegistryBaseImages
    let requests: BaseRequests

    func image(_ reference: ImageReference, platform: Platform) async throws -> BaseImage {
        let image = try await source.image(reference, platform: platform)
        requests.add(
            BaseRequests.Request(
                reference: reference.description, platform: platform.description,
                pinned: image.pinned?.description ?? ""))
        return image
    }
}

extension Lane {
    /// Where a processor's memo lives: one per ref and platform set.
    static func memoSlot(_ processor: Processor, _ platforms: [Platform]) -> Digest {
        Digest.sha256(of: Array("\(processor.ref) \(platforms.map(\.description).joined(separator: ","))".utf8))
    }

    /// Everything that decides a processor's keys besides the files and the bases' digests: the
    /// formats, this kiln binary, where the Dockerfile and context are, the build args, the labels
    /// and annotations, the layer settings, whether `RUN` can run, and which files are processors'
    /// (hidden from every context).
    func keyFingerprint(_ processor: Processor, platforms: [Platform]) -> String {
        let lines =
            [KeyMemo.format, InputKey.format, KilnVersion.current, binaryIdentity]
            + KeyInputs(processor, platforms: platforms, lane: self).fingerprintLines
        return Digest.sha256(of: Array(lines.joined(separator: "\n").utf8)).hex
    }

    /// A memo found still right, and its keys.
    struct Memoized {
        var memo: KeyMemo
        var keys: [(platform: Platform, key: Digest)]
    }

    /// The keys a processor's memo holds, when it is still right; nil sends the processor through
    /// a full keying pass.
    func memoizedKeys(_ processor: Processor, platforms: [Platform]) async -> Memoized? {
        guard
            let memo = try? store.record(KeyMemo.self, kind: "key-memo", key: Self.memoSlot(processor, platforms)),
            memo.keys.count == platforms.count,
            memo.fingerprint == keyFingerprint(processor, platforms: platforms)
        else { return nil }
        for line in memo.paths.utf8.split(separator: UInt8(ascii: "\n")) {
            switch Self.entry(line) {
            case .identity(let path, let numbers)?:
                guard let state = pathStates.state(of: path), Self.numbers(state.identity) == numbers else {
                    return nil
                }
            case .directory(let path, let inode)?:
                guard let state = pathStates.state(of: path), state.isDirectory, state.identity.inode == inode else {
                    return nil
                }
            case .absent(let path)?:
                guard pathStates.state(of: path) == nil else { return nil }
            case nil:
                return nil
            }
        }
        let source = RegistryBaseImages(
            client: client, store: store, downloadsLayers: false, resolutions: resolutions,
            sources: settings.baseSources)
        for base in memo.bases {
            guard let reference = try? ImageReference(parsing: base.reference),
                let platform = try? Platform(parsing: base.platform),
                let image = try? await source.image(reference, platform: platform),
                image.pinned?.description ?? "" == base.pinned
            else { return nil }
        }
        var keys = [(platform: Platform, key: Digest)]()
        for (platform, hex) in zip(platforms, memo.keys) {
            guard let key = try? Digest(sha256Hex: hex) else { return nil }
            keys.append((platform, key))
        }
        return Memoized(memo: memo, keys: keys)
    }

    /// The platform manifests and the index of a memo's last push, once the registry is found
    /// to still have them (`confirmPushed`); nil when the memo has none for this repository, or
    /// the registry lost one of them.
    func publishedHits(
        _ memoized: Memoized, keys: [(platform: Platform, key: Digest)], repository: Repository, version: String,
        confirming: Bool, heads: HeadAnswers
    ) async throws -> PushedIndex? {
        guard confirming, let published = memoized.memo.published,
            published.repository == repository.description, published.manifests.count == keys.count
        else { return nil }
        var found = [Platform: Descriptor]()
        for ((platform, _), manifest) in zip(keys, published.manifests) { found[platform] = manifest }
        return try await confirmPushed(
            published.index, found: found, repository: repository, version: version, heads: heads)
    }

    /// Writes a processor's memo. Losing one only costs the next run a full keying pass: no fsync
    /// (a file a crash cut short does not decode), which at thousands of processors was seconds
    /// of a fresh runner.
    func saveMemo(_ memo: KeyMemo, for processor: Processor, platforms: [Platform], published: KeyMemo.Published?) {
        var memo = memo
        memo.published = published
        try? store.setRecord(memo, kind: "key-memo", key: Self.memoSlot(processor, platforms), durable: false)
    }

    /// Makes the memo of keys just computed in full (`ProcessorJob.pendingMemo`, written when the
    /// processor is done), unless something the pass looked at changed too recently to be told
    /// apart from a later change by its times.
    func memoize(
        _ job: ProcessorJob, keys: [(platform: Platform, key: InputKey)], reads: MemoReads, runSteps: [Digest]?
    ) {
        let root = job.context.root
        // A memo too large to read back is not made: its lines (each `lstat`'s four numbers
        // and a path) of the files one platform reads already pass the limit.
        var least = 0
        for path in reads.largest {
            least += root.utf8.count + path.utf8.count + 8
            if least >= ContentStore.recordLimit * 3 / 4 { return }
        }
        func disk(_ relative: String) -> String { relative.isEmpty ? root : FilePaths.join(root, relative) }
        let consulted = job.consulted.recorded
        // Whole identities: what was read or listed, the Dockerfile and the ignore file.
        var whole = Set(reads.all.map(disk))
        whole.formUnion(consulted.listed.map(disk))
        let dockerfile = FilePaths.absolute(job.processor.dockerfile)
        var absent = Set<String>()
        // These two are read through a symlink, if they are one: the link (retargeting makes a
        // new one) and the file it leads to.
        var read = [dockerfile]
        for candidate in DockerIgnore.candidates(context: root, dockerfile: dockerfile) {
            if candidate == job.context.ignoreFile {
                read.append(candidate)
                break
            }
            absent.insert(candidate)
        }
        for path in read { whole.insert(path) }
        // A directory only passed through must stay the same directory; its other entries (a pin
        // written beside the Dockerfile) do not matter.
        var directories = [String: UInt64]()
        for (relative, state) in consulted.followed where !whole.contains(disk(relative)) {
            switch state {
            case .absent: absent.insert(disk(relative))
            case .directory(let inode): directories[disk(relative)] = inode
            case .other: whole.insert(disk(relative))
            }
        }
        // Every path the kernel passes through to reach the Dockerfile, the ignore file and the
        // context: a symlink retargeted anywhere on the way (a directory's too, as a checkout
        // does) leads to other files.
        var watched = WatchedPaths(whole: whole, directories: directories, absent: absent)
        for path in read + [root] {
            guard watched.addResolution(of: path) else { return }  // a link loop: no memo
        }
        guard let lines = watched.lines(settledAt: job.started) else { return }
        // A memo too large to read back (a context of hundreds of thousands of files) is not
        // written: each run keys such a processor in full.
        guard lines.utf8.count < ContentStore.recordLimit * 3 / 4 else { return }
        let memo = KeyMemo(
            fingerprint: keyFingerprint(job.processor, platforms: job.platforms), paths: lines,
            bases: job.baseRequests.all, keys: keys.map(\.key.digest.hex), runSteps: runSteps?.map(\.hex))
        job.pendingMemo.set(memo)
    }

    /// The context files each platform's key read (platforms reading the same files are listed
    /// once).
    struct MemoReads {
        var lists: [[BuildContext.Item]]

        init(_ lists: [[BuildContext.Item]]) {
            var distinct = [[BuildContext.Item]]()
            for list in lists where !distinct.contains(list) { distinct.append(list) }
            self.lists = distinct
        }

        /// Every path read, by any platform.
        var all: [String] { lists.count == 1 ? lists[0].map(\.path) : Array(Set(lists.flatMap { $0.map(\.path) })) }
        /// The paths of the platform that read the most.
        var largest: [String] { lists.max { $0.count < $1.count }?.map(\.path) ?? [] }
    }

    /// What a memo watches: paths by their whole identity, directories by inode, and paths that
    /// must stay absent.
    struct WatchedPaths {
        var whole: Set<String>
        var directories: [String: UInt64]
        var absent: Set<String>

        /// Adds every path resolving `path` passes through (`FilePaths.resolution`); false on a
        /// link loop.
        mutating func addResolution(of path: String) -> Bool {
            guard let steps = FilePaths.resolution(of: path) else { return false }
            for step in steps {
                switch step {
                case .link(let link): whole.insert(link)
                case .directory(let directory, let inode):
                    if !whole.contains(directory) { directories[directory] = inode }
                case .end(let end):
                    switch BuildContext.Consulted.state(of: end) {
                    case .absent: absent.insert(end)
                    case .directory(let inode): if !whole.contains(end) { directories[end] = inode }
                    case .other: whole.insert(end)
                    }
                }
            }
            return true
        }

        /// The memo's path lines; nil when something changed too recently to be told apart from
        /// a later change (`StatCache.isSettled`), or moved since it was looked at.
        func lines(settledAt started: Int64) -> String? {
            var lines = ""
            for path in whole.sorted() {
                guard !path.contains("\n"), let identity = StatCache.identity(of: path),
                    StatCache.isSettled(identity, at: started)
                else { return nil }
                lines += Lane.numbers(identity).map(String.init).joined(separator: " ") + " " + path + "\n"
            }
            for (path, inode) in directories.sorted(by: { $0.key < $1.key }) {
                // Swapped for another since it was followed: the keys may describe either.
                guard !path.contains("\n"), BuildContext.Consulted.state(of: path) == .directory(inode: inode) else {
                    return nil
                }
                lines += "d \(inode) \(path)\n"
            }
            for path in absent.sorted() {
                guard !path.contains("\n"), BuildContext.Consulted.state(of: path) == .absent else { return nil }
                lines += "- " + path + "\n"
            }
            return lines
        }
    }

    /// What a memo keeps of an `lstat`.
    static func numbers(_ identity: StatCache.Identity) -> [Int64] {
        [identity.size, identity.mtime, identity.ctime, Int64(bitPattern: identity.inode)]
    }

    /// A line of `KeyMemo.paths`.
    enum Entry: Equatable {
        case identity(path: String, numbers: [Int64])
        case directory(path: String, inode: UInt64)
        case absent(path: String)
    }

    /// A line of `KeyMemo.paths` read; nil for one that does not parse. The path is the rest of
    /// the line, spaces and all.
    static func entry(_ line: Substring.UTF8View) -> Entry? {
        var rest = line[...]
        /// The next space-separated field, as a number.
        func number<Number: FixedWidthInteger>(_: Number.Type) -> Number? {
            guard let space = rest.firstIndex(of: UInt8(ascii: " ")) else { return nil }
            defer { rest = rest[rest.index(after: space)...] }
            return Number(Substring(rest[..<space]), radix: 10)
        }
        func path() -> String { String(Substring(rest)) }
        if line.starts(with: "- ".utf8) {
            rest = rest.dropFirst(2)
            return .absent(path: path())
        }
        if line.starts(with: "d ".utf8) {
            rest = rest.dropFirst(2)
            guard let inode = number(UInt64.self) else { return nil }
            return .directory(path: path(), inode: inode)
        }
        var numbers = [Int64]()
        numbers.reserveCapacity(4)
        for _ in 0..<4 {
            guard let number = number(Int64.self) else { return nil }
            numbers.append(number)
        }
        return .identity(path: path(), numbers: numbers)
    }
}
