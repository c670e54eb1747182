import IoTCore

/// The state of one (rule, originator): what a rule remembers between samples. Owned by the
/// ``RuleEngine`` actor and never shared outside it.
class Slot {
    /// Strong: a timer entry may outlive the rule's removal. ``RuleEngine/unindex(_:in:)`` drops the
    /// runtime's slots, which breaks the cycle.
    let runtime: RuleRuntime
    let originator: String
    /// The open alarm of this (rule, originator), if any.
    var alarm: Alarm?
    /// `alarm` changed in a way that is persisted lazily (occurrences, last value).
    var alarmDirty = false
    /// When a timer entry for this slot is due; stale heap entries are skipped.
    var timerDeadline: Int64?

    init(runtime: RuleRuntime, originator: String) {
        self.runtime = runtime
        self.originator = originator
    }

    func encode(_ w: inout StateWriter) {}
    func decode(_ r: inout StateReader) throws(StateReader.Malformed) {}
}

/// The parts of a ``RangeRule`` the hot path reads, without its strings (no reference counting).
struct RangeCheck {
    var min: Double?
    var max: Double?
    var inside: Bool
    var hysteresis: Double
    var debounceCount: Int64
    var debounceMillis: Int64?

    init(_ r: RangeRule) {
        min = r.min
        max = r.max
        inside = r.alarmWhen == .inside
        hysteresis = r.hysteresis
        switch r.debounce {
        case .count(let n):
            debounceCount = Int64(Swift.max(1, n))
            debounceMillis = nil
        case .duration(let d):
            debounceCount = 0
            debounceMillis = d
        }
    }

    @inline(__always)
    func matches(_ v: Double, margin: Double = 0) -> Bool {
        if inside {
            if let lo = min, v < lo - margin { return false }
            if let hi = max, v > hi + margin { return false }
            return true
        }
        if let lo = min, v < lo + margin { return true }
        if let hi = max, v > hi - margin { return true }
        return false
    }
}

final class RangeSlot: Slot {
    let rule: RangeRule
    let check: RangeCheck
    var alarming = false
    var matchCount: Int64 = 0
    var matchSince: Int64?
    var lastValue: Double = 0

    init(runtime: RuleRuntime, originator: String, rule: RangeRule) {
        self.rule = rule
        self.check = RangeCheck(rule)
        super.init(runtime: runtime, originator: originator)
    }

    override func encode(_ w: inout StateWriter) {
        w.bool(alarming)
        w.i64(matchCount)
        w.optI64(matchSince)
        w.f64(lastValue)
    }
    override func decode(_ r: inout StateReader) throws(StateReader.Malformed) {
        alarming = try r.bool()
        matchCount = try r.i64()
        matchSince = try r.optI64()
        lastValue = try r.f64()
    }
}

final class OfflineSlot: Slot {
    let rule: OfflineRule
    var intervalMillis: Int64?
    var lastSeen: Int64 = 0
    var alarming = false

    init(runtime: RuleRuntime, originator: String, rule: OfflineRule, interval: Int64?) {
        self.rule = rule
        self.intervalMillis = interval
        super.init(runtime: runtime, originator: originator)
    }

    var deadline: Int64? { intervalMillis.map { lastSeen + $0 + rule.toleranceMillis } }

    override func encode(_ w: inout StateWriter) {
        w.i64(lastSeen)
        w.bool(alarming)
    }
    override func decode(_ r: inout StateReader) throws(StateReader.Malformed) {
        lastSeen = try r.i64()
        alarming = try r.bool()
    }
}

/// Samples of one parameter, oldest first.
struct SampleWindow {
    var times: [Int64] = []
    var values: [Double?] = []
    var start = 0

    var count: Int { times.count - start }

    mutating func append(_ time: Int64, _ value: Double?, window: Window, cap: Int) {
        // Keep time order when a late sample arrives.
        var i = times.count
        while i > start && times[i - 1] > time { i -= 1 }
        times.insert(time, at: i)
        values.insert(value, at: i)
        if case .count(let n) = window, count > max(n, 1) { start += count - max(n, 1) }
        if count > cap { start += count - cap }
        compact()
    }

    mutating func prune(now: Int64, window: Window) {
        guard case .duration(let d) = window else { return }
        while start < times.count && times[start] <= now - d { start += 1 }
        compact()
    }

    private mutating func compact() {
        if start > 32 && start * 2 > times.count {
            times.removeFirst(start)
            values.removeFirst(start)
            start = 0
        }
    }

    var live: ArraySlice<Double?> { values[start...] }

    func encode(_ w: inout StateWriter) {
        w.int(count)
        for i in start..<times.count {
            w.i64(times[i])
            w.optF64(values[i])
        }
    }

    static func decode(_ r: inout StateReader) throws(StateReader.Malformed) -> SampleWindow {
        var s = SampleWindow()
        let n = try r.int()
        for _ in 0..<n {
            s.times.append(try r.i64())
            s.values.append(try r.optF64())
        }
        return s
    }
}

final class JointSlot: Slot {
    let rule: JointRule
    var windows: [SampleWindow]
    var alarming = false
    /// Duration windows answer only once they have been watched this long.
    var coveredSince: Int64

    init(runtime: RuleRuntime, rule: JointRule, coveredSince: Int64) {
        self.rule = rule
        self.windows = Array(repeating: SampleWindow(), count: rule.parameters.count)
        self.coveredSince = coveredSince
        super.init(runtime: runtime, originator: rule.effectiveOriginator)
    }

    /// The parameters by name at `now`.
    func inputs(now: Int64) -> [String: Double?] {
        var out: [String: Double?] = [:]
        out.reserveCapacity(rule.parameters.count)
        for (i, p) in rule.parameters.enumerated() {
            windows[i].prune(now: now, window: p.window)
            if case .duration(let d) = p.window, now - coveredSince < d {
                out[p.name] = .some(nil)
                continue
            }
            out[p.name] = .some(p.reducer.reduce(windows[i].live))
        }
        return out
    }

    override func encode(_ w: inout StateWriter) {
        w.bool(alarming)
        w.i64(coveredSince)
        w.int(windows.count)
        for win in windows { win.encode(&w) }
    }
    override func decode(_ r: inout StateReader) throws(StateReader.Malformed) {
        alarming = try r.bool()
        coveredSince = try r.i64()
        let n = try r.int()
        var decoded: [SampleWindow] = []
        for _ in 0..<n { decoded.append(try SampleWindow.decode(&r)) }
        // A rule changed to a different parameter list starts with empty windows.
        if decoded.count == windows.count { windows = decoded }
    }
}

/// One rule of one tenant as the engine runs it: its definition, its slots, and whether its state
/// needs saving.
final class RuleRuntime {
    let tenant: TenantID
    let rule: AlarmRule
    var slots: [String: Slot] = [:]
    var dirty = false
    var removed = false
    let script: (any CompiledScript)?

    init(tenant: TenantID, rule: AlarmRule, script: (any CompiledScript)?) {
        self.tenant = tenant
        self.rule = rule
        self.script = script
    }

    var id: String { rule.id }

    static let formatVersion: UInt8 = 1

    func encodeState() -> [UInt8] {
        var w = StateWriter()
        w.u8(Self.formatVersion)
        w.int(slots.count)
        for (originator, slot) in slots.sorted(by: { $0.key < $1.key }) {
            w.string(originator)
            slot.encode(&w)
        }
        return w.bytes
    }
}
