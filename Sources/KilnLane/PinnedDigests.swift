import Foundation
import KilnCore
import KilnOCI
import KilnRegistry

/// Every image a pin may name, wherever the pin lives: the checkout's files, and every branch
/// and tag the repository knows (local and remote refs). A platform's promotion merges the same
/// pins into several branches, a release branch keeps pins main has moved on from, and a disabled
/// copy or a platform dropped from `kiln.yaml` keeps its pins too: `kiln prune` keeps them all.
package struct PinnedDigests: Sendable {
    /// Pinned images by repository (`REPOSITORY@sha256:…` as written).
    package var byRepository: [Repository: Set<Digest>] = [:]
    /// Every pinned digest, whatever repository it names.
    package var all: Set<Digest> = []
    /// How many git refs were read (nil: the folder is in no git repository).
    package var refs: Int?

    package init() {}

    /// Adds every `REPOSITORY@sha256:HEX` written in `text`.
    package mutating func scan(_ text: String) {
        for reference in Self.references(in: text) {
            guard let parsed = try? ImageReference(parsing: reference), let digest = parsed.digest else { continue }
            byRepository[parsed.repository, default: []].insert(digest)
            all.insert(digest)
        }
    }

    /// The `NAME@sha256:HEX` words in `text`: runs of characters an image reference can hold,
    /// ending in a full digest.
    static func references(in text: String) -> [String] {
        let bytes = Array(text.utf8)
        let marker = Array("@sha256:".utf8)
        func inName(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"),
                UInt8(ascii: "/"), UInt8(ascii: ":"):
                true
            default: false
            }
        }
        func isHex(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
        }
        var found = [String]()
        var index = 0
        while index + marker.count + 64 <= bytes.count {
            guard bytes[index] == marker[0], Array(bytes[index..<index + marker.count]) == marker else {
                index += 1
                continue
            }
            let hexStart = index + marker.count
            var start = index
            while start > 0, inName(bytes[start - 1]) { start -= 1 }
            if start < index, bytes[hexStart..<hexStart + 64].allSatisfy(isHex) {
                found.append(String(decoding: bytes[start..<hexStart + 64], as: UTF8.self))
            }
            index = hexStart
        }
        return found
    }

    /// Why `kiln prune --delete` cannot see every pin from `folder`'s repository: a shallow
    /// clone knows only the refs it fetched.
    package struct IncompleteHistory: KilnError {
        package var root: String
        package var description: String {
            "\(root) is a shallow clone: kiln prune --delete must see the pins on every branch and tag (fetch them all first: git fetch --unshallow --tags origin '+refs/heads/*:refs/remotes/origin/*', or actions/checkout with fetch-depth: 0)"
        }
        package var category: ErrorCategory { .input }
    }

    /// Adds the pins written anywhere on any ref of the git repository holding `folder`.
    /// `complete`: refuse a shallow clone (a deletion must not trust a partial view).
    package mutating func scanRefs(of folder: String, complete: Bool) async throws {
        guard let git = ChildProcess.find("git", path: ProcessInfo.processInfo.environment["PATH"]) else { return }
        let top = try await ChildProcess.run(git, ["-C", folder, "rev-parse", "--show-toplevel"])
        guard top.status == 0 else { return }
        let root = top.output.trimmingCharacters(in: .whitespacesAndNewlines)
        if complete {
            let shallow = try await ChildProcess.run(git, ["-C", root, "rev-parse", "--is-shallow-repository"])
            if shallow.output.hasPrefix("true") { throw IncompleteHistory(root: root) }
        }
        var template = Array((NSTemporaryDirectory() + "/kiln-pins-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw GitFailure(command: "mkdtemp", output: "no temporary folder") }
        let scratch = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let listingFile = scratch + "/refs"
        let listing = try await ChildProcess.run(
            git, ["-C", root, "for-each-ref", "--format=%(objectname)", "refs/heads", "refs/remotes", "refs/tags"],
            standardOutput: listingFile)
        guard listing.status == 0 else { throw GitFailure(command: "git for-each-ref", output: listing.output) }
        let listed = try String(contentsOfFile: listingFile, encoding: .utf8).split(separator: "\n").map(String.init)
        refs = listed.count
        let objects = Array(Set(listed)).sorted()
        let matches = scratch + "/matches"
        for batch in stride(from: 0, to: objects.count, by: 64) {
            // `-h -o`: only the matching words; status 1 is "no match".
            let arguments =
                ["-C", root, "grep", "-h", "-o", "-I", "-E", "[A-Za-z0-9._/:-]+@sha256:[0-9a-f]{64}"]
                + objects[batch..<min(batch + 64, objects.count)] + ["--"]
            let grep = try await ChildProcess.run(git, arguments, standardOutput: matches)
            guard grep.status == 0 || grep.status == 1 else {
                throw GitFailure(command: "git grep", output: grep.output)
            }
            scan(try String(contentsOfFile: matches, encoding: .utf8))
        }
    }

    struct GitFailure: KilnError {
        var command: String
        var output: String
        var description: String {
            "\(command) failed, so kiln cannot tell which images the repository's branches pin: \(output.suffix(500))"
        }
        var category: ErrorCategory { .io }
    }
}
