import KilnCore

/// Reads an uncompressed tar block by block, to list its members or to pass it on without some
/// of them (with the pax and GNU long-name headers that belong to each). Only what a layer from
/// buildah holds is needed: ustar headers, pax `x` headers, GNU `L`/`K` names.
package enum TarFilter {
    package struct Member: Sendable, Equatable {
        /// The path, without a leading `./` or `/` and without a trailing `/`.
        package var name: String
        /// The ustar type flag (`0` a file, `5` a directory, …).
        package var type: UInt8
        package var size: Int64
    }

    /// The members of the tar at `path`.
    package static func members(tarAt path: String) throws(LayerError) -> [Member] {
        var members = [Member]()
        try walk(path) { member, _ in
            members.append(member)
            return true
        } emit: { _ in
        }
        return members
    }

    /// Passes the tar at `path` to `emit` in pieces, leaving out the members named in `dropping`.
    package static func stream(tarAt path: String, dropping: Set<String>, emit: ([UInt8]) throws -> Void)
        throws(LayerError)
    {
        try walk(path, keep: { member, _ in !dropping.contains(member.name) }, emit: emit)
    }

    /// Walks the tar's blocks; `keep` decides each member (its headers and data), `emit` gets what is kept.
    private static func walk(_ path: String, keep: (Member, Int) -> Bool, emit: ([UInt8]) throws -> Void)
        throws(LayerError)
    {
        var state = State()
        try LayerError.reading(path) {
            let file = try ReadableFile(path: path)
            try file.forEachChunk { chunk in try state.take(chunk, keep: keep, emit: emit) }
            if !state.buffer.isEmpty { try emit(state.buffer) }
        }
    }

    private struct State {
        var buffer = [UInt8]()
        /// Meta headers (pax, long names) and their data, waiting for the member they describe.
        var pending = [UInt8]()
        var longName: String?
        var paxPath: String?
        /// Data blocks still to come for the current header, and whether they are kept.
        var dataLeft = 0
        var metaType: UInt8?
        var metaData = [UInt8]()
        var keeping = true
        var ended = false
        var index = 0

        mutating func take(
            _ chunk: some Collection<UInt8>, keep: (Member, Int) -> Bool, emit: ([UInt8]) throws -> Void
        ) throws {
            buffer.append(contentsOf: chunk)
            var offset = 0
            var out = [UInt8]()
            defer { buffer.removeFirst(offset) }
            while buffer.count - offset >= 512 {
                let block = buffer[offset..<(offset + 512)]
                offset += 512
                if ended {
                    out.append(contentsOf: block)
                    continue
                }
                if dataLeft > 0 {
                    dataLeft -= 1
                    if metaType != nil {
                        pending.append(contentsOf: block)
                        metaData.append(contentsOf: block)
                        if dataLeft == 0 { finishMeta() }
                    } else if keeping {
                        out.append(contentsOf: block)
                    }
                    continue
                }
                if block.allSatisfy({ $0 == 0 }) {
                    ended = true
                    out.append(contentsOf: pending)
                    pending = []
                    out.append(contentsOf: block)
                    continue
                }
                let type = block[block.startIndex + 156]
                let size = Self.size(block)
                let blocks = Int((size + 511) / 512)
                if type == UInt8(ascii: "x") || type == UInt8(ascii: "L") || type == UInt8(ascii: "K") {
                    pending.append(contentsOf: block)
                    metaType = type
                    metaData = []
                    metaData.reserveCapacity(blocks * 512)
                    dataLeft = blocks
                    metaSize = Int(size)
                    if blocks == 0 { finishMeta() }
                    continue
                }
                let name = Self.clean(paxPath ?? longName ?? Self.ustarName(block))
                keeping = keep(Member(name: name, type: type, size: size), index)
                index += 1
                if keeping {
                    out.append(contentsOf: pending)
                    out.append(contentsOf: block)
                }
                pending = []
                paxPath = nil
                longName = nil
                let hasData = type == UInt8(ascii: "0") || type == 0 || type == UInt8(ascii: "7")
                dataLeft = hasData ? blocks : 0
            }
            if !out.isEmpty { try emit(out) }
        }

        var metaSize = 0

        mutating func finishMeta() {
            let data = Array(metaData.prefix(metaSize))
            if metaType == UInt8(ascii: "x") {
                if let path = Self.paxValue("path", in: data) { paxPath = path }
            } else if metaType == UInt8(ascii: "L") {
                longName = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
            }
            metaType = nil
            metaData = []
        }

        static func size(_ block: ArraySlice<UInt8>) -> Int64 {
            let field = block[(block.startIndex + 124)..<(block.startIndex + 136)]
            if let first = field.first, first & 0x80 != 0 {
                // Base-256: a big-endian number after the marker bit.
                return field.dropFirst().reduce(Int64(first & 0x7F)) { $0 << 8 | Int64($1) }
            }
            var value: Int64 = 0
            for byte in field where (0x30...0x37).contains(byte) { value = value * 8 + Int64(byte - 0x30) }
            return value
        }

        static func ustarName(_ block: ArraySlice<UInt8>) -> String {
            func text(_ range: Range<Int>) -> String {
                let bytes = block[(block.startIndex + range.lowerBound)..<(block.startIndex + range.upperBound)]
                return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
            let name = text(0..<100)
            let isUstar = text(257..<262) == "ustar"
            let prefix = isUstar ? text(345..<500) : ""
            return prefix.isEmpty ? name : prefix + "/" + name
        }

        /// A pax record's value (`LENGTH KEY=VALUE\n` records).
        static func paxValue(_ key: String, in data: [UInt8]) -> String? {
            var index = 0
            while index < data.count {
                guard let space = data[index...].firstIndex(of: 0x20),
                    let length = Int(String(decoding: data[index..<space], as: UTF8.self)), length > 0,
                    index + length <= data.count
                else { return nil }
                let record = data[(space + 1)..<(index + length - 1)]
                if let equals = record.firstIndex(of: 0x3D),
                    String(decoding: record[record.startIndex..<equals], as: UTF8.self) == key
                {
                    return String(decoding: record[(equals + 1)...], as: UTF8.self)
                }
                index += length
            }
            return nil
        }

        static func clean(_ name: String) -> String {
            var name = Substring(name)
            while name.hasPrefix("./") { name = name.dropFirst(2) }
            while name.hasPrefix("/") { name = name.dropFirst() }
            while name.hasSuffix("/") { name = name.dropLast() }
            return String(name)
        }
    }
}
