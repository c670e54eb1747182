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
    /// The state changed since it was last saved.
    var dirty = false
    /// The instance that evaluates this slot, when it is not this one (see ``RuleEngine/ownershipChanged(_:)``).
    var owner: String?

    init(runtime: RuleRuntime, originator: String) {
        self.runtime = runtime
        self.originator = originator
    }

    func encode(_ w: inout StateWriter) {}
    func decode(_ r: inout StateReader) throws(StateReader.Malformed) {}
    /// Forgets what the slot remembers, as for a slot just created at `now`.
    func reset(now: Int64) {}

    /// The saved form: ``formatVersion``, then what ``encode(_:)`` writes.
    static let formatVersion: UInt8 = 2

    func encodeState() -> [UInt8] {
        var w = StateWriter()
        w.u8(Self.formatVersion)
        encode(&w)
        return w.bytes
    }

    func decodeState(_ blob: [UInt8]) throws(StateReader.Malformed) {
        var r = StateReader(blob)
        guard try r.u8() == Self.formatVersion else { throw StateReader.Malformed() }
        try decode(&r)
    }
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

/// The hot-path state of one range slot, kept in a dense array (``RangeTable``) so evaluating a sample
/// touches a few cache lines and no reference counts.
struct RangeState {
    var check: RangeCheck
    var alarming = false
    var matchCount: Int64 = 0
    var matchSince: Int64?
    var lastValue: Double = 0
    /// This instance evaluates the slot (``Slot/owner`` is `nil`).
    var local = true
}

/// What one sample did to a range slot; the engine acts on everything but ``none``.
enum RangeStep {
    case none
    case changed
    case schedule(Int64)
    case repeated
    case raise
    case clear
    /// Another instance evaluates the slot: the sample goes there.
    case elsewhere
}

extension RangeState {
    /// Applies one numeric sample (the whole range-rule state machine, allocation-free).
    @inline(__always)
    mutating func step(_ v: Double, at time: Int64) -> RangeStep {
        if alarming {
            if check.matches(v) {
                lastValue = v
                return .repeated
            }
            if !check.matches(v, margin: check.hysteresis) {
                alarming = false
                matchCount = 0
                matchSince = nil
                return .clear
            }
            return .none
        }
        guard check.matches(v) else {
            if matchCount != 0 {
                matchCount = 0
                matchSince = nil
                return .changed
            }
            return .none
        }
        matchCount += 1
        lastValue = v
        var started = false
        if matchSince == nil {
            matchSince = time
            started = true
        }
        if let d = check.debounceMillis {
            if time.saturatingSubtract(matchSince!) >= d {
                alarming = true
                return .raise
            }
            return started ? .schedule(time.saturatingAdd(d)) : .changed
        }
        if matchCount >= check.debounceCount {
            alarming = true
            return .raise
        }
        return .changed
    }
}

/// Dense storage of a tenant's range slots: states by index, and the slot objects beside them.
final class RangeTable {
    var states: ContiguousArray<RangeState> = []
    var slots: ContiguousArray<RangeSlot?> = []
    private var free: [Int32] = []

    func insert(_ state: RangeState) -> Int32 {
        if let i = free.popLast() {
            states[Int(i)] = state
            return i
        }
        states.append(state)
        slots.append(nil)
        return Int32(states.count - 1)
    }

    func remove(_ i: Int32) {
        slots[Int(i)] = nil
        free.append(i)
    }
}

final class RangeSlot: Slot {
    let rule: RangeRule
    let table: RangeTable
    let index: Int32

    init(runtime: RuleRuntime, originator: String, rule: RangeRule, table: RangeTable) {
        self.rule = rule
        self.table = table
        self.index = table.insert(RangeState(check: RangeCheck(rule)))
        super.init(runtime: runtime, originator: originator)
        table.slots[Int(index)] = self
    }

    var state: RangeState {
        get { table.states[Int(index)] }
        set { table.states[Int(index)] = newValue }
    }
    var check: RangeCheck { state.check }
    var alarming: Bool {
        get { state.alarming }
        set { table.states[Int(index)].alarming = newValue }
    }
    var matchCount: Int64 {
        get { state.matchCount }
        set { table.states[Int(index)].matchCount = newValue }
    }
    var matchSince: Int64? {
        get { state.matchSince }
        set { table.states[Int(index)].matchSince = newValue }
    }
    var lastValue: Double {
        get { state.lastValue }
        set { table.states[Int(index)].lastValue = newValue }
    }

    override func encode(_ w: inout StateWriter) {
        let st = state
        w.bool(st.alarming)
        w.i64(st.matchCount)
        w.optI64(st.matchSince)
        w.f64(st.lastValue)
    }
    override func reset(now: Int64) {
        var st = state
        st.alarming = false
        st.matchCount = 0
        st.matchSince = nil
        st.lastValue = 0
        state = st
    }
    override func decode(_ r: inout StateReader) throws(StateReader.Malformed) {
        var st = state
        st.alarming = try r.bool()
        st.matchCount = try r.i64()
        st.matchSince = try r.optI64()
        st.lastValue = try r.f64()
        state = st
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

    /// Saturating: an interval and tolerance near `Int64.max` (from a stored definition or an integrator's
    /// code) mean "never", not a trap.
    var deadline: Int64? { intervalMillis.map { lastSeen.saturatingAdd($0).saturatingAdd(rule.toleranceMillis) } }

    override func encode(_ w: inout StateWriter) {
        w.i64(lastSeen)
        w.bool(alarming)
    }
    override func reset(now: Int64) {
        lastSeen = now
        alarming = false
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
        while start < times.count && times[start] <= now.saturatingSubtract(d) { start += 1 }
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
    /// Evaluations in a row that held, and when the first of them was, for the rule's debounce.
    var holding = 0
    var holdingSince: Int64?

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
            if case .duration(let d) = p.window, now.saturatingSubtract(coveredSince) < d {
                out[p.name] = .some(nil)
                continue
            }
            out[p.name] = .some(p.reducer.reduce(windows[i].live))
        }
        return out
    }

    override func encode(_ w: inout StateWriter) {
        w.bool(alarming)
        w.int(holding)
        w.optI64(holdingSince)
        w.i64(coveredSince)
        w.int(windows.count)
        for win in windows { win.encode(&w) }
    }
    override func reset(now: Int64) {
        windows = Array(repeating: SampleWindow(), count: rule.parameters.count)
        alarming = false
        holding = 0
        holdingSince = nil
        coveredSince = now
    }
    override func decode(_ r: inout StateReader) throws(StateReader.Malformed) {
        alarming = try r.bool()
        holding = try r.int()
        holdingSince = try r.optI64()
        coveredSince = try r.i64()
        let n = try r.int()
        var decoded: [SampleWindow] = []
        for _ in 0..<n { decoded.append(try SampleWindow.decode(&r)) }
        // A rule changed to a different parameter list starts with empty windows.
        if decoded.count == windows.count { windows = decoded }
    }
}

/// One rule of one tenant as the engine runs it: its definition and its slots.
final class RuleRuntime {
    let tenant: TenantID
    let rule: AlarmRule
    var slots: [String: Slot] = [:]
    /// The slots whose state changed since it was saved.
    var dirtySlots: [Slot] = []
    var removed = false
    let script: (any CompiledScript)?

    init(tenant: TenantID, rule: AlarmRule, script: (any CompiledScript)?) {
        self.tenant = tenant
        self.rule = rule
        self.script = script
    }

    var id: String { rule.id }

    /// Every slot's saved form, by originator.
    func encodeStates() -> [String: [UInt8]] {
        slots.mapValues { $0.encodeState() }
    }
}
