public import IoTCore
public import IoTRules
public import Logging
import Synchronization

/// Drives a ``IoTRules/RuleEngine`` with a ``ManualClock`` and in-memory stores: feed samples, move
/// time, read the events and alarms. No broker, database, network or C library.
///
/// ```swift
/// let h = RuleHarness()
/// try await h.add(.range(RangeRule(id: "hot", devices: .device("pump-1"), signal: "temp", max: 80,
///                                  debounce: .duration(millis: 60_000))))
/// await h.feed(device: "pump-1", signal: "temp", 85)
/// await h.advance(byMillis: 60_000)                  // the debounce timer fires
/// #expect(await h.events.map(\.kind) == [.raised])
/// try await h.restart()                              // a new engine over the same stores
/// #expect(await h.openAlarms.count == 1)
/// ```
///
/// ``advance(byMillis:)`` stops at every timer deadline on the way and runs it, so timer-driven rules
/// (joint intervals, duration debounce, offline) see the same instants they would in production.
public actor RuleHarness {
    private final class Recorder: AlarmEventHandler {
        let events = Mutex<[AlarmEvent]>([])
        func handle(_ event: AlarmEvent) async { events.withLock { $0.append(event) } }
    }

    /// The clock every engine of this harness reads.
    public nonisolated let clock: ManualClock
    /// Rule state and alarms; survives ``restart(flush:)``.
    public nonisolated let stateStore: InMemoryRuleStateStore
    /// Points fed so far (joint rules prefill windows from it on restart).
    public nonisolated let pointStore: InMemoryPointStore
    /// The tenant everything runs in.
    public nonisolated let tenant: TenantID
    /// The engine under test; replaced by ``restart(flush:)``.
    public private(set) var engine: RuleEngine

    private let configuration: RuleEngine.Configuration
    private let scriptEngines: [any ScriptEngine]
    private let logger: Logger
    private let recorder = Recorder()
    private var rules: [String: AlarmRule] = [:]
    private var ruleOrder: [String] = []
    private var devices: [Device] = []
    private var sequence: UInt64 = 0

    /// Creates a harness whose clock starts at `now` (UTC ms).
    public init(
        now: Int64 = 1_700_000_000_000, tenant: TenantID = "test",
        configuration: RuleEngine.Configuration = RuleEngine.Configuration(),
        scriptEngines: [any ScriptEngine] = [], logger: Logger = Logger(label: "rule-harness")
    ) {
        self.clock = ManualClock(now: now)
        self.stateStore = InMemoryRuleStateStore()
        self.pointStore = InMemoryPointStore()
        self.tenant = tenant
        self.configuration = configuration
        self.scriptEngines = scriptEngines
        self.logger = logger
        self.engine = RuleEngine(
            configuration: configuration, clock: clock, stateStore: stateStore, pointStore: pointStore,
            scriptEngines: scriptEngines, logger: logger)
    }

    private func ensureHandler() async {
        if !handlerAdded {
            await engine.addHandler(recorder)
            for handler in handlers { await engine.addHandler(handler) }
            handlerAdded = true
        }
    }
    private var handlerAdded = false
    private var handlers: [any AlarmEventHandler] = []

    /// Adds a handler of alarm events (a `NotificationRouter`, your own): it sees every event from now on,
    /// and is added to the new engine on ``restart(flush:)``.
    public func addHandler(_ handler: any AlarmEventHandler) async {
        handlers.append(handler)
        if handlerAdded { await engine.addHandler(handler) } else { await ensureHandler() }
    }

    /// Adds (or replaces) a rule; it is added again on ``restart(flush:)``.
    public func add(_ rule: AlarmRule) async throws {
        await ensureHandler()
        try await engine.add(rule, tenant: tenant)
        if rules.updateValue(rule, forKey: rule.id) == nil { ruleOrder.append(rule.id) }
    }

    /// Removes a rule.
    public func remove(ruleID: String) async throws {
        try await engine.remove(ruleID: ruleID, tenant: tenant)
        rules[ruleID] = nil
        ruleOrder.removeAll { $0 == ruleID }
    }

    /// Tells the engine a device's product and push interval (for product and offline rules).
    public func register(_ device: Device) async {
        await ensureHandler()
        devices.append(device)
        await engine.updateDevice(device, tenant: tenant)
    }

    /// Feeds one sample at `time` (default: the clock's now), as the ingestor would after a commit.
    public func feed(device: String, signal: String, _ value: SignalValue, at time: Int64? = nil) async {
        await feed([Point(device: device, signal: signal, time: time ?? clock.now(), value: value)])
    }

    /// Feeds one numeric sample.
    public func feed(device: String, signal: String, _ value: Double, at time: Int64? = nil) async {
        await feed(device: device, signal: signal, .number(value), at: time)
    }

    /// Feeds one boolean sample.
    public func feed(device: String, signal: String, _ value: Bool, at time: Int64? = nil) async {
        await feed(device: device, signal: signal, .bool(value), at: time)
    }

    /// Feeds points as one committed batch: stored in ``pointStore``, then observed by the engine.
    public func feed(_ points: [Point]) async {
        await ensureHandler()
        sequence += 1
        let batch = PointBatch(tenant: tenant, points: points, journalSequence: sequence)
        try? await pointStore.write(batch)
        await engine.pointsCommitted(batch)
    }

    /// Moves the clock forward, stopping at each timer deadline on the way to run it.
    public func advance(byMillis millis: Int64) async {
        await ensureHandler()
        let target = clock.now() + millis
        while let d = await engine.nextTimerDeadline, d <= target {
            clock.advance(to: d)
            await engine.runDueTimers()
        }
        clock.advance(to: target)
        await engine.runDueTimers()
    }

    /// Every event so far, across restarts, in order.
    public var events: [AlarmEvent] { recorder.events.withLock { $0 } }

    /// Returns the events so far and forgets them.
    public func takeEvents() -> [AlarmEvent] {
        recorder.events.withLock { e in
            defer { e.removeAll() }
            return e
        }
    }

    /// The engine's open alarms, newest first.
    public var openAlarms: [Alarm] {
        get async { await engine.openAlarms(.tenant(tenant)) }
    }

    /// Alarms as stored, newest first.
    public func storedAlarms(_ query: AlarmQuery = AlarmQuery()) async throws -> [Alarm] {
        try await stateStore.alarms(.tenant(tenant), query: query)
    }

    /// Acknowledges an alarm through the engine.
    @discardableResult
    public func acknowledge(_ alarmID: String) async throws -> Alarm {
        try await engine.acknowledge(.tenant(tenant), alarmID: alarmID)
    }

    /// Clears an alarm through the engine.
    @discardableResult
    public func clear(_ alarmID: String) async throws -> Alarm {
        try await engine.clear(.tenant(tenant), alarmID: alarmID)
    }

    /// Replaces the engine by a new one over the same stores and clock, and adds the same rules and
    /// devices again: what a process restart does. `flush: false` skips the final state save, as a
    /// crash would (state saved by the periodic save survives; later changes are lost).
    public func restart(flush: Bool = true) async throws {
        if flush { await engine.flush() }
        engine = RuleEngine(
            configuration: configuration, clock: clock, stateStore: stateStore, pointStore: pointStore,
            scriptEngines: scriptEngines, logger: logger)
        handlerAdded = false
        await ensureHandler()
        for d in devices { await engine.updateDevice(d, tenant: tenant) }
        for id in ruleOrder { if let r = rules[id] { try await engine.add(r, tenant: tenant) } }
    }
}
