#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The timestamp a reproducible build stamps on its outputs, from `SOURCE_DATE_EPOCH`
/// (reproducible-builds.org specification): a decimal count of seconds since 1970, else 0.
package enum SourceDateEpoch {
    package static let variable = "SOURCE_DATE_EPOCH"

    /// The epoch from the environment, 0 when the variable is unset or empty.
    /// - Throws: `EpochError.invalid` when it is set to anything but a non-negative whole number.
    package static func resolve(environment: [String: String]) throws(EpochError) -> Int64 {
        guard let text = environment[variable], !text.isEmpty else { return 0 }
        guard text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let value = Int64(text) else {
            throw .invalid(text)
        }
        return value
    }

    /// An epoch as RFC 3339 UTC text (`1970-01-01T00:00:00Z`), the form image configs use.
    package static func rfc3339(_ epoch: Int64) -> String {
        var seconds = time_t(epoch)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))Z"
    }
}

/// `SOURCE_DATE_EPOCH` holds something other than seconds.
package enum EpochError: KilnError, Equatable {
    case invalid(String)

    package var description: String {
        switch self {
        case .invalid(let text): "SOURCE_DATE_EPOCH='\(text)' is not a whole number of seconds since 1970"
        }
    }

    package var category: ErrorCategory { .input }
}
