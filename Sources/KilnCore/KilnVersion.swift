/// kiln's version, shown by `kiln version` and recorded in cache keys' format version later.
package enum KilnVersion {
    package static let current = "0.1.0"
}
