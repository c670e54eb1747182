import IoTCore

extension PointStoreConformance {
    /// The brute-force reference: every point in a dictionary, last write wins, aggregates by scanning.
    struct Model {
        var series: [SeriesKey: [Int64: SignalValue]] = [:]

        mutating func apply(_ points: [Point]) {
            for p in points { series[p.series, default: [:]][p.time] = p.value }
        }

        /// Deletes points before `time`; returns how many.
        mutating func deleteBefore(_ time: Int64) -> Int {
            var n = 0
            for (key, points) in series {
                let kept = points.filter { $0.key >= time }
                n += points.count - kept.count
                series[key] = kept
            }
            return n
        }

        func points(_ key: SeriesKey, _ from: Int64, _ to: Int64) -> [Point] {
            (series[key] ?? [:]).filter { $0.key >= from && $0.key < to }.sorted { $0.key < $1.key }
                .map { Point(device: key.device, signal: key.signal, time: $0.key, value: $0.value) }
        }

        func aggregate(_ key: SeriesKey, _ from: Int64, _ to: Int64, _ bucket: Int64?) -> [AggregateBucket] {
            guard to > from else { return [] }
            let width = bucket ?? (to - from)
            var result: [AggregateBucket] = []
            for p in points(key, from, to) {
                let start = from + (p.time - from) / width * width
                if result.last?.start != start {
                    result.append(AggregateBucket(start: start, end: min(start + width, to)))
                }
                result[result.count - 1].count += 1
                if let x = p.value.numericValue {
                    let b = result[result.count - 1]
                    result[result.count - 1].sum = (b.sum ?? 0) + x
                    result[result.count - 1].min = Swift.min(b.min ?? x, x)
                    result[result.count - 1].max = Swift.max(b.max ?? x, x)
                }
                if result[result.count - 1].first == nil { result[result.count - 1].first = p.value }
                result[result.count - 1].last = p.value
            }
            return result
        }
    }
}

/// A small deterministic generator (SplitMix64), so conformance data is the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A number in `0..<bound`.
    mutating func next(_ bound: UInt64) -> UInt64 { next() % bound }
    /// Shuffles deterministically (Fisher–Yates).
    mutating func shuffle<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, Int(next(UInt64(i + 1)))) }
    }
}
