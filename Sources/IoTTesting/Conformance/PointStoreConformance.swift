public import IoTCore

/// The contract of ``IoTCore/PointStore`` as checks to run against an implementation.
///
/// ```swift
/// @Test(arguments: PointStoreConformance.checks)
/// func conforms(_ check: ConformanceCheck<any PointStore>) async throws {
///     try await check.run(InMemoryPointStore())
/// }
/// ```
///
/// Each check expects a fresh, empty store. The checks are deterministic (seeded pseudo-random data) and
/// small. The duplicate check expects the documented default policy, ``DuplicatePolicy/lastWriteWins``:
/// run it against a store in its default configuration.
public enum PointStoreConformance {
    /// Every check of the suite.
    public static let checks: [ConformanceCheck<any PointStore>] = [
        ConformanceCheck("write, latest, range, order and limit", writeAndRead),
        ConformanceCheck("number, text and bool values round-trip exactly", roundTrip),
        ConformanceCheck("the same value twice is one point", sameValueTwice),
        ConformanceCheck("a different value at the same time replaces the stored one (lastWriteWins)", lastWriteWins),
        ConformanceCheck(
            "committed sequence is per tenant, monotonic and committed with its points", committedSequence),
        ConformanceCheck("tenants are isolated", tenantsIsolated),
        ConformanceCheck("devices outside the scope have no data", scopeFiltering),
        ConformanceCheck("aggregate buckets start at from, the last ends at to, empty ones are omitted", bucketShape),
        ConformanceCheck(
            "aggregates equal brute force for unaligned windows, late points and overwrites", aggregatesExact),
        ConformanceCheck("deletePoints removes old points and aggregates stay exact", retention),
    ]

    static let t0: Int64 = 1_700_000_123_457  // deliberately not aligned to a second, minute or hour

    static func point(_ device: String, _ signal: String, _ time: Int64, _ value: SignalValue) -> Point {
        Point(device: device, signal: signal, time: time, value: value)
    }

    static func writeAndRead(_ store: any PointStore) async throws {
        let t: TenantID = "conf-a"
        let scope = AccessScope.tenant(t)
        let temp = SeriesKey(device: "d1", signal: "temp")
        var batch: [Point] = (0..<10).map { point("d1", "temp", t0 + Int64($0) * 1000, .number(Double($0))) }
        batch.append(point("d1", "hum", t0 + 500, .number(40)))
        batch.append(point("d1", "door", t0 + 3000, .bool(true)))
        batch.append(point("d2", "temp", t0 + 99_000, .number(-1)))
        try await store.write(PointBatch(tenant: t, points: batch.reversed(), journalSequence: 0))

        let latest = try await store.latest(scope, device: "d1", signals: nil)
        try conformEqual(latest.map(\.signal), ["door", "hum", "temp"], "latest signals, sorted by signal")
        try conformEqual(latest.last, point("d1", "temp", t0 + 9000, .number(9)), "latest temp")
        let some = try await store.latest(scope, device: "d1", signals: ["temp", "nope"])
        try conformEqual(some.map(\.time), [t0 + 9000], "latest with a signal filter")
        try conformEqual(
            try await store.latest(scope, device: "ghost", signals: nil), [], "latest of an unknown device")
        try conformEqual(
            try await store.newestPointTimes(scope), ["d1": t0 + 9000, "d2": t0 + 99_000],
            "newest point time of each device")

        let all = try await store.range(scope, series: temp, from: t0, to: t0 + 10_000, limit: nil, order: .ascending)
        try conformEqual(all.map(\.time), (0..<10).map { t0 + Int64($0) * 1000 }, "range ascending")
        let window = try await store.range(
            scope, series: temp, from: t0 + 2000, to: t0 + 5000, limit: nil, order: .ascending)
        try conformEqual(window.map(\.time), [t0 + 2000, t0 + 3000, t0 + 4000], "range is [from, to)")
        let desc = try await store.range(scope, series: temp, from: t0, to: t0 + 10_000, limit: 3, order: .descending)
        try conformEqual(desc.map(\.time), [t0 + 9000, t0 + 8000, t0 + 7000], "range descending with limit")
        let asc = try await store.range(scope, series: temp, from: t0, to: t0 + 10_000, limit: 2, order: .ascending)
        try conformEqual(asc.map(\.value), [.number(0), .number(1)], "range ascending with limit")
        let none = try await store.range(
            scope, series: SeriesKey(device: "d1", signal: "ghost"), from: 0, to: .max, limit: nil, order: .ascending)
        try conformEqual(none, [], "range of an unknown series")
    }

    static func roundTrip(_ store: any PointStore) async throws {
        let t: TenantID = "conf-a"
        let values: [SignalValue] = [
            .number(0), .number(-0.5), .number(21.5), .number(1e300), .number(-1.234_567_890_123_456_7e-300),
            .number(Double.ulpOfOne), .number(1), .bool(true), .bool(false), .text(""), .text("21.5"),
            .text("1"), .text("true"), .text("héllo, 世界 🌡"), .text("a\u{0}b"),
            .text(String(repeating: "x", count: 5000)),
        ]
        let points = values.enumerated().map { point("d", "v", t0 + Int64($0.offset), $0.element) }
        try await store.write(PointBatch(tenant: t, points: points, journalSequence: 0))
        let back = try await store.range(
            .tenant(t), series: SeriesKey(device: "d", signal: "v"), from: t0, to: t0 + 100, limit: nil,
            order: .ascending)
        try conformEqual(back, points, "values read back")
        for (i, v) in values.enumerated() {
            let b = try await store.aggregate(
                .tenant(t), series: SeriesKey(device: "d", signal: "v"), from: t0 + Int64(i), to: t0 + Int64(i) + 1,
                bucketMillis: nil)
            try conformEqual(b.first?.first, v, "aggregate first of \(v)")
            try conformEqual(b.first?.sum, v.numericValue, "aggregate sum of \(v)")
        }
    }

    static func sameValueTwice(_ store: any PointStore) async throws {
        let t: TenantID = "conf-a"
        let key = SeriesKey(device: "d", signal: "s")
        let p = point("d", "s", t0, .number(7))
        let q = point("d", "s", t0 + 1, .text("x"))
        try await store.write(PointBatch(tenant: t, points: [p, q, p], journalSequence: 0))
        try await store.write(PointBatch(tenant: t, points: [q, p], journalSequence: 0))
        let back = try await store.range(.tenant(t), series: key, from: t0, to: t0 + 10, limit: nil, order: .ascending)
        try conformEqual(back, [p, q], "points after writing each twice")
        let agg = try await store.aggregate(.tenant(t), series: key, from: t0 - 5, to: t0 + 120_000, bucketMillis: nil)
        try conformEqual(agg.map(\.count), [2], "aggregate count after duplicates")
        try conformEqual(agg.first?.sum, 7, "aggregate sum after duplicates")
    }

    static func lastWriteWins(_ store: any PointStore) async throws {
        let t: TenantID = "conf-a"
        let key = SeriesKey(device: "d", signal: "s")
        // Enough points around minute and hour boundaries that rollups (if any) are involved.
        let base = (t0 / 3_600_000 + 1) * 3_600_000 - 90_000
        let points = (0..<200).map { point("d", "s", base + Int64($0) * 1000, .number(Double($0))) }
        try await store.write(PointBatch(tenant: t, points: points, journalSequence: 0))
        let changed = [
            point("d", "s", base + 5000, .number(-100)), point("d", "s", base + 91_000, .number(1000)),
            point("d", "s", base + 150_000, .text("t")),
        ]
        try await store.write(PointBatch(tenant: t, points: changed, journalSequence: 0))
        // Within one batch: a new point then a different value for it; the later one wins.
        try await store.write(
            PointBatch(
                tenant: t, points: [point("d", "s", base - 1, .number(1)), point("d", "s", base - 1, .number(2))],
                journalSequence: 0))
        var model = Model()
        model.apply(points)
        model.apply(changed)
        model.apply([point("d", "s", base - 1, .number(2))])
        let back = try await store.range(
            .tenant(t), series: key, from: base - 10, to: base + 300_000, limit: nil, order: .ascending)
        try conformEqual(back, model.points(key, base - 10, base + 300_000), "points after overwrites")
        for bucket in [nil, 1000, 60_000, 3_600_000] as [Int64?] {
            for (from, to) in [
                (base - 10, base + 300_000), (base - 3_600_000, base + 3_600_000), (base + 4999, base + 151_000),
            ] {
                try await expectAggregate(store, t, model, key, from, to, bucket)
            }
        }
    }

    static func committedSequence(_ store: any PointStore) async throws {
        let a: TenantID = "conf-a"
        let b: TenantID = "conf-b"
        try conformEqual(try await store.committedSequence(tenant: a), 0, "sequence of a new tenant")
        let key = SeriesKey(device: "d", signal: "s")
        for (i, seq) in [5, 3, 0, 9].enumerated() {
            try await store.write(
                PointBatch(
                    tenant: a, points: [point("d", "s", t0 + Int64(i), .number(Double(i)))],
                    journalSequence: UInt64(seq)))
            let committed = try await store.committedSequence(tenant: a)
            try conformEqual(committed, UInt64(max(5, seq)), "sequence after writing \(seq)")
            let stored = try await store.range(
                .tenant(a), series: key, from: t0, to: t0 + 10, limit: nil, order: .ascending)
            try conformEqual(stored.count, i + 1, "points committed with sequence \(seq)")
        }
        try await store.write(PointBatch(tenant: a, points: [], journalSequence: 12))
        try conformEqual(try await store.committedSequence(tenant: a), 12, "sequence of an empty batch")
        try conformEqual(try await store.committedSequence(tenant: b), 0, "sequence of another tenant")
    }

    static func tenantsIsolated(_ store: any PointStore) async throws {
        let key = SeriesKey(device: "d", signal: "s")
        try await store.write(
            PointBatch(tenant: "conf-a", points: [point("d", "s", t0, .number(1))], journalSequence: 3))
        try await store.write(
            PointBatch(tenant: "conf-b", points: [point("d", "s", t0, .number(2))], journalSequence: 0))
        let a = try await store.latest(.tenant("conf-a"), device: "d", signals: nil)
        let b = try await store.latest(.tenant("conf-b"), device: "d", signals: nil)
        try conformEqual(a.map(\.value), [.number(1)], "tenant a's value")
        try conformEqual(b.map(\.value), [.number(2)], "tenant b's value")
        try conformEqual(try await store.committedSequence(tenant: "conf-b"), 0, "tenant b's sequence")
        try conformEqual(try await store.latest(.tenant("conf-c"), device: "d", signals: nil), [], "an empty tenant")
        try await store.deletePoints(.tenant("conf-a"), before: .max)
        let after = try await store.range(
            .tenant("conf-b"), series: key, from: 0, to: .max, limit: nil, order: .ascending)
        try conformEqual(after.count, 1, "tenant b after deleting tenant a's points")
    }

    static func scopeFiltering(_ store: any PointStore) async throws {
        let t: TenantID = "conf-a"
        let points = (0..<120).flatMap { i in
            [
                point("seen", "s", t0 + Int64(i) * 1000, .number(1)),
                point("hidden", "s", t0 + Int64(i) * 1000, .number(2)),
            ]
        }
        try await store.write(PointBatch(tenant: t, points: points, journalSequence: 0))
        let scope = AccessScope(tenant: t, devices: ["seen"])
        let hidden = SeriesKey(device: "hidden", signal: "s")
        try conformEqual(try await store.latest(scope, device: "hidden", signals: nil), [], "latest outside the scope")
        try conformEqual(
            try await store.range(scope, series: hidden, from: 0, to: .max, limit: nil, order: .ascending), [],
            "range outside the scope")
        try conformEqual(
            try await store.aggregate(scope, series: hidden, from: t0, to: t0 + 200_000, bucketMillis: nil), [],
            "aggregate outside the scope")
        try conformEqual(
            try await store.latest(scope, device: "seen", signals: nil).count, 1, "latest inside the scope")
        try conformEqual(
            try await store.newestPointTimes(scope), ["seen": t0 + 119_000], "newest point times inside the scope")
        let deleted = try await store.deletePoints(scope, before: .max)
        try conformEqual(deleted, 120, "deletePoints only deletes devices in the scope")
        let left = try await store.range(.tenant(t), series: hidden, from: 0, to: .max, limit: nil, order: .ascending)
        try conformEqual(left.count, 120, "points of devices outside the scope after deletePoints")
    }

    static func bucketShape(_ store: any PointStore) async throws {
        let t: TenantID = "conf-a"
        let key = SeriesKey(device: "d", signal: "s")
        let times: [Int64] = [0, 999, 2500, 2999, 5400]
        try await store.write(
            PointBatch(
                tenant: t, points: times.map { point("d", "s", t0 + $0, .number(Double($0))) }, journalSequence: 0))
        let b = try await store.aggregate(.tenant(t), series: key, from: t0, to: t0 + 5401, bucketMillis: 1000)
        try conformEqual(b.map(\.start), [t0, t0 + 2000, t0 + 5000], "bucket starts (empty buckets omitted)")
        try conformEqual(b.map(\.end), [t0 + 1000, t0 + 3000, t0 + 5401], "bucket ends (the last ends at to)")
        try conformEqual(b.map(\.count), [2, 2, 1], "bucket counts")
        try conformEqual(b.map(\.first), [.number(0), .number(2500), .number(5400)], "bucket firsts")
        try conformEqual(b.map(\.last), [.number(999), .number(2999), .number(5400)], "bucket lasts")
        try conformEqual(b.map(\.mean), [499.5, 2749.5, 5400], "bucket means")
        let one = try await store.aggregate(.tenant(t), series: key, from: t0 + 1, to: t0 + 3000, bucketMillis: nil)
        try conformEqual(
            one,
            [
                AggregateBucket(
                    start: t0 + 1, end: t0 + 3000, count: 3, sum: 6498, min: 999, max: 2999,
                    first: .number(999), last: .number(2999))
            ], "one bucket")
        try conformEqual(
            try await store.aggregate(.tenant(t), series: key, from: t0 + 6000, to: t0 + 9000, bucketMillis: nil), [],
            "an empty window")
    }

    static func aggregatesExact(_ store: any PointStore) async throws {
        let t: TenantID = "conf-a"
        var rng = SeededGenerator(seed: 0x1077)
        let (model, keys) = try await writeRandomData(store, t, &rng)
        try await checkRandomWindows(store, t, model, keys, &rng, windows: 30)
    }

    static func retention(_ store: any PointStore) async throws {
        let t: TenantID = "conf-a"
        var rng = SeededGenerator(seed: 0xDE1E7E)
        var (model, keys) = try await writeRandomData(store, t, &rng)
        let cut = t0 + 5_432_101
        let expected = model.deleteBefore(cut)
        let deleted = try await store.deletePoints(.tenant(t), before: cut)
        try conformEqual(deleted, expected, "deletePoints count")
        for key in keys {
            let old = try await store.range(.tenant(t), series: key, from: .min, to: cut, limit: nil, order: .ascending)
            try conformEqual(old, [], "points before the cut")
            try await expectAggregate(store, t, model, key, t0 - 1, t0 + 6 * 3_600_000, nil)
            try await expectAggregate(store, t, model, key, cut - 3_600_000, cut + 3_600_000, 60_000)
        }
        try await checkRandomWindows(store, t, model, keys, &rng, windows: 15)
        // Writing more after the cut keeps aggregates exact (rollups were trimmed, not dropped).
        let more = (0..<50).map { i in point("d1", "num", cut - 30_000 + Int64(i) * 1_234, .number(Double(i))) }
        try await store.write(PointBatch(tenant: t, points: more, journalSequence: 0))
        model.apply(more)
        try await checkRandomWindows(store, t, model, keys, &rng, windows: 10)
    }

    // MARK: Helpers

    /// Writes several hours of pseudo-random points for two series (one numeric, one mixed-type), in
    /// shuffled batches (so many points arrive late), then overwrites some of them.
    static func writeRandomData(
        _ store: any PointStore, _ t: TenantID, _ rng: inout SeededGenerator
    ) async throws -> (Model, [SeriesKey]) {
        var all: [Point] = []
        var time = t0
        while time < t0 + 5 * 3_600_000 {
            all.append(point("d1", "num", time, .number(Double(Int(rng.next(2001)) - 1000) / 4)))
            time += 1 + Int64(rng.next(14_000))
        }
        time = t0 + 17
        while time < t0 + 5 * 3_600_000 {
            let value: SignalValue =
                switch rng.next(3) {
                case 0: .number(Double(rng.next(100)))
                case 1: .bool(rng.next(2) == 1)
                default: .text("v\(rng.next(10))")
                }
            all.append(point("d1", "mixed", time, value))
            time += 1 + Int64(rng.next(40_000))
        }
        rng.shuffle(&all)
        var model = Model()
        var i = 0
        while i < all.count {
            let n = min(all.count - i, 1 + Int(rng.next(400)))
            var batch = Array(all[i..<(i + n)])
            if rng.next(3) == 0, let victim = batch.first {
                // A different value for a point of the same batch.
                batch.append(point(victim.device, victim.signal, victim.time, .number(12345)))
            }
            try await store.write(PointBatch(tenant: t, points: batch, journalSequence: 0))
            model.apply(batch)
            i += n
        }
        // Overwrites of stored points (and a few identical rewrites).
        var changes: [Point] = []
        for _ in 0..<120 {
            var p = all[Int(rng.next(UInt64(all.count)))]
            if rng.next(4) != 0 { p.value = .number(Double(rng.next(500)) - 250) }
            changes.append(p)
        }
        for chunk in stride(from: 0, to: changes.count, by: 40) {
            let batch = Array(changes[chunk..<min(chunk + 40, changes.count)])
            try await store.write(PointBatch(tenant: t, points: batch, journalSequence: 0))
            model.apply(batch)
        }
        return (model, [SeriesKey(device: "d1", signal: "num"), SeriesKey(device: "d1", signal: "mixed")])
    }

    static func checkRandomWindows(
        _ store: any PointStore, _ t: TenantID, _ model: Model, _ keys: [SeriesKey], _ rng: inout SeededGenerator,
        windows: Int
    ) async throws {
        let sizes: [Int64?] = [nil, 1, 7_000, 59_999, 60_000, 90_000, 600_000, 3_600_000, 5_400_000, 7_200_001]
        let hour: Int64 = 3_600_000
        for w in 0..<windows {
            let key = keys[w % keys.count]
            var from = t0 - 60_000 + Int64(rng.next(UInt64(5 * hour)))
            var to = from + 1 + Int64(rng.next(UInt64(w % 3 == 0 ? 10 * 60_000 : 3 * hour)))
            if w % 5 == 4 {  // aligned to whole hours and minutes
                from = (from / hour) * hour
                to = from + hour * Int64(1 + rng.next(3)) + 60_000 * Int64(rng.next(3))
            }
            let bucket = sizes[Int(rng.next(UInt64(sizes.count)))]
            // One-millisecond buckets over hours are many; keep them to short windows.
            if bucket == 1 { to = min(to, from + 120_000) }
            try await expectAggregate(store, t, model, key, from, to, bucket)
        }
    }

    static func expectAggregate(
        _ store: any PointStore, _ t: TenantID, _ model: Model, _ key: SeriesKey, _ from: Int64, _ to: Int64,
        _ bucket: Int64?
    ) async throws {
        let got = try await store.aggregate(.tenant(t), series: key, from: from, to: to, bucketMillis: bucket)
        let want = model.aggregate(key, from, to, bucket)
        let what = "aggregate \(key) [\(from), \(to)) bucket \(bucket.map(String.init) ?? "nil")"
        try conformEqual(got.count, want.count, "\(what): number of buckets")
        for (g, w) in zip(got, want) {
            var gs = g
            var ws = w
            gs.sum = nil
            ws.sum = nil
            try conformEqual(gs, ws, what)
            switch (g.sum, w.sum) {
            case (nil, nil): break
            case (let a?, let b?): try conform(abs(a - b) <= 1e-9 * max(1, abs(b)), "\(what): sum \(a) vs \(b)")
            default:
                throw ConformanceFailure("\(what): sum \(String(describing: g.sum)) vs \(String(describing: w.sum))")
            }
        }
    }
}
