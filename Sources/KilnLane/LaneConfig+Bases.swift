import KilnBuild
import KilnCore
import KilnPin
import KilnProcessors
import KilnRegistry

extension LaneConfig {
    /// `mirrors:` and `bases:` as the builder takes them.
    /// - Throws: `YAMLFileError` at the line of an entry that is not a registry host or reference.
    package func baseSources() throws(YAMLFileError) -> BaseSources {
        var sources = BaseSources()
        for entry in mirrors {
            do {
                try sources.addMirrors(entry.mirrors, for: entry.registry)
            } catch {
                throw YAMLFileError(
                    "'mirrors.\(entry.registry)': \(error)",
                    location: file.map { SourceLocation(file: $0, line: entry.line) })
            }
        }
        for entry in baseReplacements {
            do {
                try sources.replace(entry.original, with: entry.replacement)
            } catch {
                throw YAMLFileError(
                    "'bases.\(entry.original)': \(error)",
                    location: file.map { SourceLocation(file: $0, line: entry.line) })
            }
        }
        return sources
    }
}
