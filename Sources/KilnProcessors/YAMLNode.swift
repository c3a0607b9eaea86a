import Foundation
import KilnCore
import KilnPin
import Yams

/// Typed access to a parsed YAML file, with errors that name the file, the key and its line.
struct YAMLDocument {
    let file: String
    let root: Node.Mapping?

    init(text: String, file: String) throws(YAMLFileError) {
        self.file = file
        switch try YAMLPins.parse(text, file: file) {
        case nil: root = nil
        case .mapping(let mapping)?: root = mapping
        case let node?:
            throw YAMLFileError(
                "the file must be a YAML mapping of keys to values",
                location: SourceLocation(file: file, line: node.mark?.line ?? 1))
        }
    }

    init(path: String) throws(YAMLFileError) {
        let bytes: [UInt8]
        do {
            bytes = try ReadableFile.readAll(path: path, limit: 4 << 20)
        } catch {
            // A FIFO or device where a config file should be is bad input, not a disk failure.
            throw YAMLFileError(error.description, location: nil, category: error.reason == nil ? .io : .input)
        }
        try self.init(text: String(decoding: bytes, as: UTF8.self), file: path)
    }

    func location(_ node: Node?) -> SourceLocation { SourceLocation(file: file, line: node?.mark?.line ?? 1) }

    /// The node at a dotted key path, nil when missing or null.
    func node(_ path: String) -> Node? {
        var mapping = root
        var node: Node?
        for key in path.split(separator: ".") {
            guard let current = mapping, let entry = current.first(where: { $0.key.string == String(key) }) else {
                return nil
            }
            node = entry.value
            if case .mapping(let child) = entry.value { mapping = child } else { mapping = nil }
        }
        if case .scalar(let scalar)? = node, YAMLPins.isNull(scalar) { return nil }
        return node
    }

    func string(_ path: String) throws(YAMLFileError) -> String? {
        guard let node = node(path) else { return nil }
        guard case .scalar(let scalar) = node else {
            throw YAMLFileError("'\(path)' must be a single value, not a list or mapping", location: location(node))
        }
        return scalar.string
    }

    func requiredString(_ path: String, example: String) throws(YAMLFileError) -> String {
        guard let value = try string(path), !value.isEmpty else {
            throw YAMLFileError(
                "'\(path)' is missing; add it, e.g. \(path.split(separator: ".").last!): \(example)",
                location: location(node(path) ?? nil))
        }
        return value
    }

    func bool(_ path: String) throws(YAMLFileError) -> Bool? {
        guard let text = try string(path) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw YAMLFileError("'\(path)' must be true or false, not '\(text)'", location: location(node(path)))
        }
    }

    func int(_ path: String) throws(YAMLFileError) -> Int? {
        guard let text = try string(path) else { return nil }
        guard let value = Int(text) else {
            throw YAMLFileError("'\(path)' must be a whole number, not '\(text)'", location: location(node(path)))
        }
        return value
    }

    /// A list of strings; a single string counts as a comma-separated list.
    func strings(_ path: String) throws(YAMLFileError) -> [String]? {
        guard let node = node(path) else { return nil }
        switch node {
        case .scalar(let scalar):
            return scalar.string.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                !$0.isEmpty
            }
        case .sequence(let sequence):
            var result = [String]()
            for item in sequence {
                guard case .scalar(let scalar) = item else {
                    throw YAMLFileError("'\(path)' must be a list of values", location: location(item))
                }
                result.append(scalar.string)
            }
            return result
        default:
            throw YAMLFileError("'\(path)' must be a list of values", location: location(node))
        }
    }

    /// A mapping of strings to strings (build args).
    func stringMap(_ path: String) throws(YAMLFileError) -> [String: String]? {
        guard let node = node(path) else { return nil }
        guard case .mapping(let mapping) = node else {
            throw YAMLFileError("'\(path)' must be a mapping of NAME: value", location: location(node))
        }
        var result = [String: String]()
        for entry in mapping {
            guard let key = entry.key.string, case .scalar(let value) = entry.value else {
                throw YAMLFileError("'\(path)' must map names to single values", location: location(entry.value))
            }
            result[key] = value.string
        }
        return result
    }
}
