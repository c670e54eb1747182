import IoTCore

extension CronExpression {
    static let dayMillis: Int64 = 86_400_000

    /// The first fire strictly after `after` (UTC ms), read in `timeZone`; `nil` when the schedule
    /// never fires within ten years (`0 0 30 2 *`).
    ///
    /// Fires are on whole seconds. Daylight-saving changes follow cronie:
    /// - **Skipped local time** (spring forward, `30 2 * * *` on the night 02:00 becomes 03:00): the fire
    ///   runs once, at the first valid instant after the gap (03:00 local). Several fires inside the gap
    ///   collapse into that one run.
    /// - **Repeated local time** (fall back, 02:00–03:00 happens twice): a schedule with a fixed hour
    ///   runs once, at the first occurrence. A schedule whose hour field is `*` runs by elapsed time, so
    ///   it fires in both passes (`0 * * * *` fires at 02:00 summer time *and* 02:00 winter time).
    public func next(after: Int64, in timeZone: CronTimeZone = .utc) -> Int64? {
        let day = Self.dayMillis
        let start = (Civil.floorDiv(after, 1000) + 1) * 1000
        let probes = [
            timeZone.offsetMillis(at: start - day), timeZone.offsetMillis(at: start),
            timeZone.offsetMillis(at: start + day),
        ]
        let oMin = probes.min()!
        let oMax = probes.max()!
        let localStart = start + oMin
        var dayNumber = Civil.floorDiv(localStart, day)
        var fromSecond = Int((localStart - dayNumber * day) / 1000)
        var best: Int64?
        for _ in 0..<(366 * 10) {
            let (y, m, d) = Civil.date(days: Int(dayNumber))
            if matchesDay(year: y, month: m, day: d, weekday: Civil.weekday(days: Int(dayNumber))) {
                for h in 0..<24 where Self.has(hours, h) && h * 3600 + 3599 >= fromSecond {
                    for mi in 0..<60 where Self.has(minutes, mi) && h * 3600 + mi * 60 + 59 >= fromSecond {
                        for s in 0..<60 where Self.has(seconds, s) {
                            let secondOfDay = h * 3600 + mi * 60 + s
                            if secondOfDay < fromSecond { continue }
                            let local = dayNumber * day + Int64(secondOfDay) * 1000
                            // No later local time can map before `best`.
                            if let b = best, local - oMax >= b { return b }
                            if let u = resolve(local: local, after: after, timeZone), u < (best ?? .max) {
                                best = u
                            }
                        }
                    }
                }
            }
            dayNumber += 1
            fromSecond = 0
        }
        return best
    }

    /// Every fire in `(after, through]`, oldest first, at most `limit`.
    public func fires(after: Int64, through: Int64, in timeZone: CronTimeZone = .utc, limit: Int = 10_000) -> [Int64] {
        var out: [Int64] = []
        var t = after
        while out.count < limit, let n = next(after: t, in: timeZone), n <= through {
            out.append(n)
            t = n
        }
        return out
    }

    /// The UTC instant a local time fires at, or `nil` when it must not fire after `after`.
    private func resolve(local: Int64, after: Int64, _ tz: CronTimeZone) -> Int64? {
        let day = Self.dayMillis
        let o1 = tz.offsetMillis(at: local - day)
        let o2 = tz.offsetMillis(at: local + day)
        var valid: [Int64] = []
        for o in (o1 == o2 ? [o1] : [o1, o2]) {
            let u = local - o
            if tz.offsetMillis(at: u) == o { valid.append(u) }
        }
        valid.sort()
        if valid.isEmpty {
            // A gap: the local time does not exist; run at the first instant after the gap.
            guard o1 != o2 else { return nil }
            var lo = min(local - o1, local - o2)
            var hi = max(local - o1, local - o2)
            let newOffset = tz.offsetMillis(at: hi)
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2
                if tz.offsetMillis(at: mid) == newOffset { hi = mid } else { lo = mid }
            }
            return hi > after ? hi : nil
        }
        if valid.count > 1 && hourWildcard { return valid.first { $0 > after } }
        return valid[0] > after ? valid[0] : nil
    }
}
