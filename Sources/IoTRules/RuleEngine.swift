@_spi(Internal) public import IoTCore
public import Logging
import Metrics
public import ServiceLifecycle

/// Evaluates range, joint and offline alarm rules on every committed point and on timers, and runs
/// the alarm lifecycle.
///
/// The engine is a ``ServiceLifecycle/Service`` (its ``run()`` drives timers and periodic state saves)
/// and a ``IoTCore/PointObserver`` (the `Ingestor` hands it every committed batch). It reads time only
/// from the injected ``IoTCore/IoTClock`` and history only from the injected stores, so a test can
/// drive an hour of rule time in a millisecond (see `IoTTesting.RuleHarness`).
///
/// ```swift
/// let engine = RuleEngine(clock: SystemClock(), stateStore: store, logger: logger)
/// try await engine.add(.range(RangeRule(id: "overheat", devices: .product("pump"), signal: "temp",
///                                       max: 80, severity: .major, debounce: .count(3), hysteresis: 2)),
///                      tenant: "acme")
/// let ingestor = Ingestor(..., observers: [engine])   // fed after each commit
/// serviceGroup = ServiceGroup(services: [engine, ...], logger: logger)
/// for await event in engine.events { notify(event) }
/// ```
///
/// ## Lifecycle
/// An alarm is `active` or cleared, and acknowledged or not (as in ThingsBoard). There is one open
/// alarm per (rule, originator): raising again while it is active counts an occurrence and updates its
/// last value; raising while it is cleared but unacknowledged makes it active again (a `raised` event);
/// once it is both cleared and acknowledged it is closed, and the next raise opens a new alarm with a
/// new id. Raise, clear and acknowledge emit one ``AlarmEvent`` each; nothing else does.
///
/// ## State
/// Per (rule, originator) state (debounce counters, windows, whether the condition holds) lives in
/// memory and is saved through ``IoTCore/RuleStateStore/saveStates(_:ruleID:states:)`` in a compact
/// binary form, only the (rule, originator) pairs that changed, batched: at most once per ``Configuration/persistInterval`` of clock time, and on
/// shutdown or ``flush()``. Alarm raises, clears and acks are saved at once. Adding a rule loads its
/// saved state and open alarms, so state survives a restart.
public actor RuleEngine: Service, PointObserver {
    /// Engine settings; every field has a default.
    public struct Configuration: Sendable {
        /// Save changed rule state at most this often (clock ms). Default 1 000 ms.
        public var persistInterval: Duration = .seconds(1)
        /// Events kept for a slow ``RuleEngine/events`` reader before the oldest are dropped. Default 4 096.
        public var eventBufferSize: Int = 4_096
        /// At most this many samples per joint-rule window. Default 10 000.
        public var maxWindowSamples: Int = 10_000
        /// ``RuleEngine/run()`` wakes at least this often to run timers and save state. Default 1 000 ms.
        public var maxSleep: Duration = .seconds(1)

        /// Creates the default configuration.
        public init() {}
    }

    struct PendingWrite {
        var tenant: TenantID
        var alarm: Alarm
        var event: AlarmEvent.Kind?
    }

    let configuration: Configuration
    let clock: any IoTClock
    let stateStore: any RuleStateStore
    let pointStore: (any PointStore)?
    let registry: (any RegistryStore)?
    let scriptEngines: [String: any ScriptEngine]
    let logger: Logger

    /// Every alarm event, after it is stored; bounded by ``Configuration/eventBufferSize`` (oldest
    /// dropped when the reader falls behind). Use ``addHandler(_:)`` for back-pressured delivery.
    public nonisolated let events: AsyncStream<AlarmEvent>
    let eventContinuation: AsyncStream<AlarmEvent>.Continuation
    var handlers: [any AlarmEventHandler] = []

    var tenants: [TenantID: TenantRules] = [:]
    /// Entries are not removed when a slot's deadline moves: an entry that comes due is checked against
    /// ``Slot/timerDeadline`` and skipped when stale.
    var timers = DeadlineHeap<Slot>()
    var pending: [PendingWrite] = []
    /// The rules with slots whose state changed since it was saved (each lists them in its `dirtySlots`).
    var dirtyRuntimes: [RuleRuntime] = []
    var persisting = false
    var lastFlush: Int64
    var alarmSequence: UInt64 = 0
    /// Which instance evaluates which originator; `nil`: this one, all of them.
    var ownership: ClusterOwnership?
    /// Where points and alarm changes of originators evaluated elsewhere go.
    var forwarding: (any RuleForwarding)?

    /// Rule evaluations so far (one per rule per sample or timer tick).
    public internal(set) var evaluationCount = 0
    /// Condition evaluations that failed (script errors or non-boolean results).
    public internal(set) var failedEvaluationCount = 0
    /// Store writes that failed (logged; state is retried at the next save).
    public internal(set) var storeFailureCount = 0

    let evaluationsCounter = Counter(label: "iot_rules_evaluations_total")
    /// The time to evaluate one committed batch (every rule it feeds, scripts and state saves included).
    let evaluationTimer = Timer(label: "iot_rules_evaluation_seconds", preferredDisplayUnit: .seconds)
    let failuresCounter = Counter(label: "iot_rules_evaluation_failures_total")
    let storeFailuresCounter = Counter(label: "iot_rules_store_failures_total")
    /// Points sent to the instance that evaluates their originator's rules (one per point and instance).
    let forwardedCounter = Counter(label: "iot_rules_points_forwarded_total")
    /// Points received from another instance for an originator this one no longer evaluates (ownership moved
    /// on the way); not evaluated.
    let misroutedCounter = Counter(label: "iot_rules_points_misrouted_total")

    /// Creates an engine.
    ///
    /// - Parameters:
    ///   - clock: the only source of time.
    ///   - stateStore: where rule state and alarms are kept.
    ///   - pointStore: prefills joint-rule windows and offline last-seen times from history; optional.
    ///   - registry: tells devices' products and push intervals (for ``DeviceSelector/product(_:)`` and
    ///     ``OfflineRule``); optional, see ``updateDevice(_:tenant:)``.
    ///   - scriptEngines: runs script conditions, by ``IoTCore/ScriptEngine/language``.
    public init(
        configuration: Configuration = Configuration(), clock: any IoTClock, stateStore: any RuleStateStore,
        pointStore: (any PointStore)? = nil, registry: (any RegistryStore)? = nil,
        scriptEngines: [any ScriptEngine] = [], logger: Logger
    ) {
        self.configuration = configuration
        self.clock = clock
        self.stateStore = stateStore
        self.pointStore = pointStore
        self.registry = registry
        self.scriptEngines = Dictionary(scriptEngines.map { ($0.language, $0) }, uniquingKeysWith: { a, _ in a })
        self.logger = logger
        (events, eventContinuation) = AsyncStream.makeStream(
            of: AlarmEvent.self, bufferingPolicy: .bufferingNewest(max(1, configuration.eventBufferSize)))
        lastFlush = clock.now()
    }

    /// Registers a handler that sees every event after it is stored, in order.
    public func addHandler(_ handler: any AlarmEventHandler) {
        handlers.append(handler)
    }

    /// Runs timers (joint-rule intervals, duration debounce, offline deadlines) and periodic state
    /// saves until cancelled or gracefully shut down; then saves all state.
    public func run() async throws {
        await deliverUnhandledEvents()
        do {
            try await cancelWhenGracefulShutdown { try await self.loop() }
        } catch is CancellationError {}
        await flush()
        eventContinuation.finish()
    }

    private func loop() async throws {
        while !Task.isCancelled {
            await runDueTimers()
            let now = clock.now()
            var wake = now.saturatingAdd(max(1, configuration.maxSleep.inMilliseconds))
            if let d = timers.nextDeadline { wake = min(wake, d) }
            try await clock.sleep(until: max(wake, now.saturatingAdd(1)))
        }
    }

    /// The earliest instant a timer is due (clock ms), or `nil` when none is pending.
    public var nextTimerDeadline: Int64? { timers.nextDeadline }

    /// Runs every timer due at the clock's current time, then saves what is due. ``run()`` calls it;
    /// a test harness calls it after advancing a manual clock.
    public func runDueTimers() async {
        let now = clock.now()
        while let (deadline, slot) = timers.popDue(now) {
            guard !slot.runtime.removed, slot.timerDeadline == deadline else { continue }
            slot.timerDeadline = nil
            // Another instance runs its timers; this one schedules them again if the slot comes back.
            guard slot.owner == nil else { continue }
            switch slot {
            case let s as RangeSlot: rangeTimer(s, now: now)
            case let s as OfflineSlot: offlineTimer(s, now: now)
            case let s as JointSlot:
                if let interval = s.rule.evaluationIntervalMillis, interval > 0 {
                    var next = deadline.saturatingAdd(interval)
                    if next <= now { next = now.saturatingAdd(interval) }
                    schedule(s, at: next)
                }
                evaluationCount += 1
                evaluationsCounter.increment()
                await evaluateJoint(s, now: now)
            default: break
            }
        }
        await persist(now: now)
    }

    /// Saves all changed rule state and pending alarm writes now.
    public func flush() async {
        await persist(now: clock.now(), force: true)
    }

    func schedule(_ slot: Slot, at deadline: Int64) {
        slot.timerDeadline = deadline
        timers.push(deadline, slot)
    }

    func markDirty(_ slot: Slot) {
        if !slot.dirty {
            slot.dirty = true
            let runtime = slot.runtime
            if runtime.dirtySlots.isEmpty { dirtyRuntimes.append(runtime) }
            runtime.dirtySlots.append(slot)
        }
    }
}

/// The rules of one tenant and the indexes the hot path uses.
final class TenantRules {
    struct DeviceInfo {
        var product: ProductID?
        var pushIntervalMillis: Int64?
    }

    var runtimes: [String: RuleRuntime] = [:]
    /// (device, signal) → the slots a sample of that series feeds.
    var series: [SeriesKey: SeriesRef] = [:]
    /// The range slots' hot state.
    let ranges = RangeTable()
    /// device → offline slots.
    var offline: [String: [OfflineSlot]] = [:]
    /// Rules with a product selector, by product.
    var productRules: [ProductID: [RuleRuntime]] = [:]
    /// What is known of devices (product, push interval); a device here has its product rules' slots.
    var devices: [String: DeviceInfo] = [:]
    /// Open alarms by id → the slot holding them.
    var openAlarms: [String: Slot] = [:]
}

/// The slots one series feeds: range slots by index in the tenant's ``RangeTable`` (usually one, so
/// the common case allocates nothing), and joint-rule parameters.
struct SeriesRef {
    var first: Int32 = -1
    var more: [Int32]?
    var joints: JointList?

    var isEmpty: Bool { first < 0 && joints == nil }

    mutating func add(range i: Int32) {
        if first < 0 { first = i } else { more = (more ?? []) + [i] }
    }

    mutating func remove(range i: Int32) {
        if first == i {
            first = more?.first ?? -1
            if more != nil { more!.removeFirst() }
        } else {
            more?.removeAll { $0 == i }
        }
        if more?.isEmpty == true { more = nil }
    }
}

/// Joint-rule parameters fed by one series.
final class JointList {
    var joints: [(slot: JointSlot, parameter: Int)] = []
}
