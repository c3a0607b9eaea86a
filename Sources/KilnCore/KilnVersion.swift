/// kiln's version, shown by `kiln version` and recorded in cache keys' format version later.
public enum KilnVersion {
    public static let current = "0.1.0"
}
