// The store-independent parts of rollups: what a rollup row holds, the two levels, and which parts of an
// aggregate query come from raw points, minute rows and hour rows. The SQLite and PostgreSQL point stores
// share them, so both answer an aggregate the same way.

/// Count, sum, min, max, first and last of some points: what one rollup row holds, and what a query
/// merges from raw points and rollup rows.
///
/// Numbers and booleans (as 1/0) feed ``sum``, ``min`` and ``max``; text only counts and can be first or
/// last. Merging is exact for count, min, max, first and last; sums add in a different order than a
/// brute-force sum, so they agree to rounding.
package struct RollupPartial: Sendable {
    package var count = 0
    package var sum: Double?
    package var min: Double?
    package var max: Double?
    package var firstTime = Int64.max
    package var first: SignalValue?
    package var lastTime = Int64.min
    package var last: SignalValue?

    package init() {}

    package mutating func add(time: Int64, value: SignalValue) {
        count += 1
        if let x = value.numericValue { addNumeric(x) }
        if time < firstTime {
            firstTime = time
            first = value
        }
        if time > lastTime {
            lastTime = time
            last = value
        }
    }

    package mutating func addNumeric(_ x: Double) {
        if let s = sum {
            sum = s + x
            min = Swift.min(min!, x)
            max = Swift.max(max!, x)
        } else {
            sum = x
            min = x
            max = x
        }
    }

    package mutating func merge(_ other: RollupPartial) {
        guard other.count > 0 else { return }
        count += other.count
        if let os = other.sum {
            if let s = sum {
                sum = s + os
                min = Swift.min(min!, other.min!)
                max = Swift.max(max!, other.max!)
            } else {
                sum = os
                min = other.min
                max = other.max
            }
        }
        if other.firstTime < firstTime {
            firstTime = other.firstTime
            first = other.first
        }
        if other.lastTime > lastTime {
            lastTime = other.lastTime
            last = other.last
        }
    }

    package func bucket(start: Int64, end: Int64) -> AggregateBucket {
        AggregateBucket(start: start, end: end, count: count, sum: sum, min: min, max: max, first: first, last: last)
    }
}

/// A rollup row's key: the series id and the bucket's start time (UTC ms).
package struct BucketKey: Hashable, Comparable, Sendable {
    package var series: Int64
    package var start: Int64
    package init(series: Int64, start: Int64) {
        self.series = series
        self.start = start
    }
    package static func < (a: BucketKey, b: BucketKey) -> Bool { (a.series, a.start) < (b.series, b.start) }
}

/// The two rollup levels: one table per bucket size.
package enum RollupLevel: CaseIterable, Sendable {
    case minute, hour

    package var millis: Int64 { self == .minute ? 60_000 : 3_600_000 }

    package func bucketStart(_ time: Int64) -> Int64 { floorDiv(time, millis) * millis }
}

/// Floor division (rounds towards negative infinity).
package func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

/// Ceiling division.
package func ceilDiv(_ a: Int64, _ b: Int64) -> Int64 {
    -floorDiv(-a, b)
}

extension RollupPartial {
    /// Rollup partials of a batch of new points, one per (series, minute) in key order: `points` is sorted by
    /// (series, time).
    package static func minutes(of points: [(series: Int64, time: Int64, value: SignalValue)]) -> [(
        BucketKey, RollupPartial
    )] {
        var minutes: [(BucketKey, RollupPartial)] = []
        for p in points {
            let key = BucketKey(series: p.series, start: RollupLevel.minute.bucketStart(p.time))
            if let last = minutes.last, last.0 == key {
                minutes[minutes.count - 1].1.add(time: p.time, value: p.value)
            } else {
                var partial = RollupPartial()
                partial.add(time: p.time, value: p.value)
                minutes.append((key, partial))
            }
        }
        return minutes
    }

    /// The hour partials of minute partials (in key order), leaving out the hours in `skipping`.
    package static func hours(
        of minutes: [(BucketKey, RollupPartial)], skipping: Set<BucketKey>
    ) -> [(BucketKey, RollupPartial)] {
        var hours: [(BucketKey, RollupPartial)] = []
        for (key, p) in minutes {
            let hour = BucketKey(series: key.series, start: RollupLevel.hour.bucketStart(key.start))
            if skipping.contains(hour) { continue }
            if let last = hours.last, last.0 == hour {
                hours[hours.count - 1].1.merge(p)
            } else {
                hours.append((hour, p))
            }
        }
        return hours
    }
}

extension RollupLevel {
    /// The first open minute of a store that has closed none: the first whole hour `Int64` holds.
    package static let nothingClosed: Int64 = -9_223_372_036_854_000_000
}

/// Which time ranges of an aggregate query come from raw points, minute rollups and hour rollups.
///
/// Every range lies inside one bucket, and ranges of one level that touch are merged, so each level is
/// read with one query per contiguous run and each row is assigned to its bucket by its time.
package struct AggregatePlan: Sendable {
    package let from: Int64
    package let to: Int64
    package let width: Int64
    package private(set) var raw: [(Int64, Int64)] = []
    package private(set) var minutes: [(Int64, Int64)] = []
    package private(set) var hours: [(Int64, Int64)] = []

    /// Above this many buckets the plan is a single raw scan (cost bounded by the points, not buckets).
    package static let maxPlannedBuckets: Int64 = 200_000

    /// The plan of an aggregate query over `[from, to)` in buckets of `bucketMillis` (one bucket when `nil`);
    /// `nil` when the window is empty.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` when `bucketMillis` is not positive or the window is wider
    ///   than `Int64` holds.
    package init?(from: Int64, to: Int64, bucketMillis: Int64?) throws(IoTError) {
        if let b = bucketMillis, b <= 0 {
            throw IoTError(.invalidArgument, "bucketMillis must be positive (got \(b)); pass nil for one bucket")
        }
        guard to > from else { return nil }
        let (span, overflow) = to.subtractingReportingOverflow(from)
        if overflow { throw IoTError(.invalidArgument, "window [\(from), \(to)) is too wide; narrow it") }
        self.init(from: from, to: to, width: bucketMillis ?? span)
    }

    package init(from: Int64, to: Int64, width: Int64) {
        self.from = from
        self.to = to
        self.width = width
        let span = to - from
        let count = span / width + (span % width == 0 ? 0 : 1)
        let minute = RollupLevel.minute.millis
        let hour = RollupLevel.hour.millis
        guard width >= minute, count <= Self.maxPlannedBuckets else {
            raw = [(from, to)]
            return
        }
        for k in 0..<count {
            let s = from + k * width
            let (next, overflow) = s.addingReportingOverflow(width)
            let e = overflow ? to : min(next, to)
            let m0 = ceilDiv(s, minute) * minute
            let m1 = floorDiv(e, minute) * minute
            if m0 >= m1 {
                Self.add(&raw, s, e)
                continue
            }
            Self.add(&raw, s, m0)
            let h0 = ceilDiv(m0, hour) * hour
            let h1 = floorDiv(m1, hour) * hour
            if h0 < h1 {
                Self.add(&minutes, m0, h0)
                Self.add(&hours, h0, h1)
                Self.add(&minutes, h1, m1)
            } else {
                Self.add(&minutes, m0, m1)
            }
            Self.add(&raw, m1, e)
        }
    }

    private static func add(_ runs: inout [(Int64, Int64)], _ a: Int64, _ b: Int64) {
        guard a < b else { return }
        if let last = runs.last, last.1 == a {
            runs[runs.count - 1].1 = b
        } else {
            runs.append((a, b))
        }
    }

    /// The same plan for a store whose minutes from `openFrom` (minute-aligned) on are open: they have no
    /// `rollup_1m` row and their hours' `rollup_1h` rows leave them out, so they are read from the raw points, and
    /// the hour that holds `openFrom` from its closed minutes' rows and the raw points of the rest.
    package func closed(before openFrom: Int64) -> AggregatePlan {
        var plan = self
        let hourOpen = RollupLevel.hour.bucketStart(openFrom)
        plan.hours = []
        plan.minutes = []
        var minuteRuns = minutes
        for (a, b) in hours {
            Self.add(&plan.hours, a, min(b, hourOpen))
            if b > hourOpen { minuteRuns.append((max(a, hourOpen), b)) }
        }
        var closedRuns: [(Int64, Int64)] = []
        var rawRuns = raw
        for (a, b) in minuteRuns {
            if a < openFrom { closedRuns.append((a, min(b, openFrom))) }
            if b > openFrom { rawRuns.append((max(a, openFrom), b)) }
        }
        for (a, b) in closedRuns.sorted(by: { $0.0 < $1.0 }) { Self.add(&plan.minutes, a, b) }
        plan.raw = []
        for (a, b) in rawRuns.sorted(by: { $0.0 < $1.0 }) { Self.add(&plan.raw, a, b) }
        return plan
    }

    /// The index of the bucket that holds `time`.
    package func bucketIndex(_ time: Int64) -> Int64 { (time - from) / width }

    /// The non-empty buckets of `parts` (by bucket index) in time order.
    package func buckets(_ parts: [Int64: RollupPartial]) -> [AggregateBucket] {
        parts.keys.sorted().map { k in
            let start = from + k * width
            let (next, overflow) = start.addingReportingOverflow(width)
            return parts[k]!.bucket(start: start, end: overflow ? to : min(next, to))
        }
    }
}
