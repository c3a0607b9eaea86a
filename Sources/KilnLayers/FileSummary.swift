import KilnCore

/// What a `RUN` step's reuse check needs of a regular file in a layer: its content digest, and
/// what the kernel opens when the file is executed without the step naming it.
package struct FileSummary: Sendable, Equatable {
    /// What `execve` of the file makes the kernel open by itself.
    package enum Interpreter: Sendable, Equatable {
        /// Nothing: not a script, not a dynamically linked ELF (or not executable at all).
        case none
        /// A `#!` script: the interpreter path as the line names it.
        case script(String)
        /// An ELF program with a `PT_INTERP` segment: the dynamic loader's path.
        case loader(String)
        /// The header could not be read far enough to tell (a segment past the bytes kept).
        case unknown
    }

    package var digest: Digest
    package var interpreter: Interpreter

    package init(digest: Digest, interpreter: Interpreter) {
        self.digest = digest
        self.interpreter = interpreter
    }

    /// How many leading bytes `interpreter(ofPrefix:)` looks at.
    package static let prefixLength = 8 << 10

    /// The interpreter named by a file's first bytes, as the kernel's `binfmt_script` (a `#!`
    /// line, read from the first 256 bytes) and `binfmt_elf` (the `PT_INTERP` segment) find it.
    package static func interpreter(ofPrefix bytes: [UInt8]) -> Interpreter {
        if bytes.count >= 2, bytes[0] == UInt8(ascii: "#"), bytes[1] == UInt8(ascii: "!") {
            let line = bytes.prefix(256).dropFirst(2).prefix { $0 != 0x0A }
            let name = line.drop { $0 == 0x20 || $0 == 0x09 }.prefix { $0 != 0x20 && $0 != 0x09 && $0 != 0 }
            // The kernel refuses a line with no interpreter; the step then read nothing more.
            return name.isEmpty ? .none : .script(String(decoding: name, as: UTF8.self))
        }
        guard bytes.count >= 0x34, bytes[0] == 0x7F, bytes[1] == UInt8(ascii: "E"), bytes[2] == UInt8(ascii: "L"),
            bytes[3] == UInt8(ascii: "F")
        else { return .none }
        let is64 = bytes[4] == 2
        let little = bytes[5] == 1
        func number(_ offset: Int, _ size: Int) -> Int? {
            guard offset >= 0, offset + size <= bytes.count else { return nil }
            var value = 0
            for index in 0..<size {
                let byte = Int(bytes[little ? offset + index : offset + size - 1 - index])
                value |= byte << (8 * index)
            }
            return value
        }
        guard let phoff = is64 ? number(0x20, 8) : number(0x1C, 4),
            let phentsize = is64 ? number(0x36, 2) : number(0x2A, 2),
            let phnum = is64 ? number(0x38, 2) : number(0x2C, 2)
        else { return .unknown }
        for index in 0..<phnum {
            let header = phoff + index * phentsize
            guard let type = number(header, 4) else { return .unknown }
            guard type == 3 else { continue }  // PT_INTERP
            guard let offset = is64 ? number(header + 8, 8) : number(header + 4, 4),
                let size = is64 ? number(header + 32, 8) : number(header + 16, 4),
                offset >= 0, size > 0, offset + size <= bytes.count
            else { return .unknown }
            let path = bytes[offset..<(offset + size)].prefix { $0 != 0 }
            return .loader(String(decoding: path, as: UTF8.self))
        }
        return .none
    }

    /// The form kept in the store's content index: empty, `#!PATH`, `ld:PATH` or `?`.
    package var interpreterField: String {
        switch interpreter {
        case .none: ""
        case .script(let path): "#!" + path
        case .loader(let path): "ld:" + path
        case .unknown: "?"
        }
    }

    package static func interpreter(field: Substring) -> Interpreter {
        if field.isEmpty { return .none }
        if field == "?" { return .unknown }
        if field.hasPrefix("#!") { return .script(String(field.dropFirst(2))) }
        if field.hasPrefix("ld:") { return .loader(String(field.dropFirst(3))) }
        return .unknown
    }
}

/// Hashes a file's bytes as they go by and keeps the first `FileSummary.prefixLength` of them.
package final class SummarySink: ByteSink {
    package let hasher = SHA256Hasher()
    private var prefix = [UInt8]()

    package init() {}

    package func write(_ bytes: UnsafeRawBufferPointer) throws(FileError) {
        hasher.update(bytes)
        take(bytes)
    }

    package func take(_ bytes: UnsafeRawBufferPointer) {
        let room = FileSummary.prefixLength - prefix.count
        if room > 0 { prefix += bytes.prefix(room) }
    }

    package func finalize() -> FileSummary {
        FileSummary(digest: hasher.finalize(), interpreter: FileSummary.interpreter(ofPrefix: prefix))
    }
}

/// The summaries `LayerWriter.write` collects, by member path.
package final class SummaryCollector {
    package var summaries: [String: FileSummary] = [:]

    package init() {}
}
