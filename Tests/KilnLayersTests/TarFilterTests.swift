import Foundation
import KilnLayers
import Testing

@Suite("A tar passed on without some of its members")
struct TarFilterTests {
    /// A tar made by GNU tar (pax format: long names get `x` headers) of a small tree.
    static func makeTar(in folder: String) throws -> String {
        let tree = folder + "/tree"
        let long = String(repeating: "d", count: 120)
        try FileManager.default.createDirectory(atPath: tree + "/etc/" + long, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: tree + "/proc", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: tree + "/etc/hosts", contents: Data())
        try "kept\n".write(toFile: tree + "/etc/\(long)/file", atomically: true, encoding: .utf8)
        try String(repeating: "x", count: 5000).write(toFile: tree + "/big", atomically: true, encoding: .utf8)
        let tar = folder + "/layer.tar"
        let made = Process()
        made.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        made.arguments = ["tar", "--format=pax", "-C", tree, "-cf", tar, "."]
        try made.run()
        made.waitUntilExit()
        #expect(made.terminationStatus == 0)
        return tar
    }

    @Test("members are listed with their long names; dropped ones vanish with their pax headers, the rest is intact")
    func dropMembers() throws {
        let folder = FileManager.default.temporaryDirectory.path + "/kiln-tarfilter-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let tar = try Self.makeTar(in: folder)
        let long = "etc/" + String(repeating: "d", count: 120)
        let members = try TarFilter.members(tarAt: tar)
        let names = Set(members.map(\.name))
        #expect(names.isSuperset(of: ["etc", "etc/hosts", "proc", "big", long, long + "/file"]), "\(names)")
        #expect(members.first { $0.name == "big" }?.size == 5000)

        var output = [UInt8]()
        try TarFilter.stream(tarAt: tar, dropping: ["etc/hosts", "proc"]) { output += $0 }
        let filtered = folder + "/filtered.tar"
        FileManager.default.createFile(atPath: filtered, contents: Data(output))
        let listed = Process()
        listed.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        listed.arguments = ["tar", "-tf", filtered]
        let pipe = Pipe()
        listed.standardOutput = pipe
        try listed.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        listed.waitUntilExit()
        #expect(listed.terminationStatus == 0, "GNU tar reads the filtered tar")
        let kept = Set(
            text.split(separator: "\n").map { String($0).trimmingCharacters(in: CharacterSet(charactersIn: "./")) })
        #expect(!kept.contains("etc/hosts") && !kept.contains("proc"), "\(kept)")
        #expect(kept.contains(long + "/file") && kept.contains("big"), "\(kept)")
        #expect(output.count % 512 == 0)
    }
}
