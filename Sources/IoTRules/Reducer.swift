/// How a window of samples becomes one number.
///
/// Numeric reducers read numbers as they are and booleans as 1 or 0; text samples count for
/// ``count`` only. Every reducer but ``count`` answers `nil` over a window with no numeric sample.
public enum Reducer: String, Sendable, Hashable, Codable, CaseIterable {
    /// The latest sample (for a statistics script: every sample, as a list).
    case raw
    /// The arithmetic mean.
    case mean
    /// The sum.
    case sum
    /// The smallest value.
    case min
    /// The largest value.
    case max
    /// The earliest sample's value.
    case first
    /// The latest sample's value.
    case last
    /// The number of samples (0 for an empty window, never `nil`).
    case count
    /// The latest value minus the earliest one (a meter's consumption over the window).
    case delta

    /// Reduces numeric values in time order (`nil` entries are non-numeric samples).
    func reduce(_ values: some Collection<Double?>) -> Double? {
        if self == .count { return Double(values.count) }
        switch self {
        case .raw, .last: return values.reversed().lazy.compactMap { $0 }.first
        case .first: return values.lazy.compactMap { $0 }.first
        case .delta:
            guard let f = values.lazy.compactMap({ $0 }).first, let l = values.reversed().lazy.compactMap({ $0 }).first
            else { return nil }
            return l - f
        default: break
        }
        var n = 0
        var sum = 0.0
        var lo = Double.infinity
        var hi = -Double.infinity
        for case let v? in values {
            n += 1
            sum += v
            lo = Swift.min(lo, v)
            hi = Swift.max(hi, v)
        }
        guard n > 0 else { return nil }
        switch self {
        case .mean: return sum / Double(n)
        case .sum: return sum
        case .min: return lo
        case .max: return hi
        default: return nil
        }
    }
}

/// Which samples a joint-rule parameter looks at.
public enum Window: Sendable, Hashable, Codable {
    /// The latest `n` samples.
    case count(Int)
    /// The samples of the last `millis` milliseconds (time > now − millis).
    case duration(millis: Int64)
}
