import Foundation

/// A reproducible tree of mixed content, like an application image's code and dependencies:
/// mostly source-like text, some structured binary data, some incompressible bytes, in files
/// from 1 KiB to 4 MiB across nested directories. Generated from a fixed seed; reused if present.
enum MixedTree {
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    }

    static let words = """
        import def class return self value result error async await func let var struct enum case
        switch for while if else guard throw try catch print request response handler config path
        layer digest blob manifest index platform build cache store registry token upload chunk
        """.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)

    /// Creates the tree unless a complete one is already there; returns its total size in bytes.
    static func ensure(at root: String, mebibytes: Int) throws -> Int {
        let marker = root + "/.complete-\(mebibytes)"
        let target = mebibytes << 20
        if FileManager.default.fileExists(atPath: marker) { return target }
        try? FileManager.default.removeItem(atPath: root)
        var random = Generator(state: 42)
        var total = 0
        var fileNumber = 0
        while total < target {
            let directory = "\(root)/pkg\(random.below(12))/mod\(random.below(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let kind = random.below(100)
            var size = kind < 70 ? 1024 + random.below(256 << 10) : 1024 + random.below(4 << 20)
            size = min(size, target - total)
            let bytes: [UInt8]
            let name: String
            if kind < 70 {
                bytes = text(size: size, random: &random)
                name = "file\(fileNumber).py"
            } else if kind < 88 {
                bytes = structured(size: size, random: &random)
                name = "data\(fileNumber).bin"
            } else {
                bytes = (0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                name = "blob\(fileNumber).so"
            }
            _ = FileManager.default.createFile(atPath: directory + "/" + name, contents: Data(bytes))
            total += size
            fileNumber += 1
        }
        _ = FileManager.default.createFile(atPath: marker, contents: Data())
        return total
    }

    static func text(size: Int, random: inout Generator) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(size + 64)
        while out.count < size {
            let indent = random.below(4) * 4
            out.append(contentsOf: repeatElement(0x20, count: indent))
            for _ in 0..<(3 + random.below(8)) {
                out.append(contentsOf: words[random.below(words.count)].utf8)
                out.append(random.below(5) == 0 ? UInt8(ascii: "_") : 0x20)
                if random.below(6) == 0 { out.append(contentsOf: String(random.below(10_000)).utf8) }
            }
            out.append(0x0a)
        }
        return Array(out.prefix(size))
    }

    static func structured(size: Int, random: inout Generator) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(size)
        var value: UInt32 = 0
        while out.count < size {
            value &+= UInt32(random.below(64))
            withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: [0, 0, UInt8(random.below(4)), 0])
        }
        return Array(out.prefix(size))
    }
}
