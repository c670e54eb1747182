public import IoTCore
import Logging

extension RuleEngine {
    /// Adds a rule to a tenant, or replaces the rule with the same id, without a restart.
    ///
    /// A new rule loads its saved state and open alarms from the ``IoTCore/RuleStateStore``; a replaced
    /// rule keeps the in-memory state of the originators it still covers. A script condition is
    /// compiled here: a syntax error or an unknown language throws ``IoTCore/IoTError/Code/script``; a
    /// number outside its range (``AlarmRule/validate()``) throws ``IoTCore/IoTError/Code/invalidArgument``.
    public func add(_ rule: AlarmRule, tenant: TenantID) async throws {
        try rule.validate()
        let scope = AccessScope.tenant(tenant)
        let script = try compileCondition(rule)
        let now = clock.now()

        var states: [String: [UInt8]] = [:]
        var alarms: [Alarm] = []
        let replaced = tenants[tenant]?.runtimes[rule.id] != nil
        if let existing = tenants[tenant]?.runtimes[rule.id] {
            states = existing.encodeStates()
            alarms = existing.slots.values.compactMap(\.alarm)
        } else {
            states = try await stateStore.states(scope, ruleID: rule.id, originators: nil)
            alarms = try await stateStore.alarms(scope, query: AlarmQuery(ruleID: rule.id, open: true))
        }

        // What the rule needs to know about devices, fetched before anything changes.
        var known: [Device] = []
        var latestSeen: [String: Int64] = [:]
        // A joint rule's windows, filled from the stored points: by originator, then by parameter.
        var history: [String: [Int: [Point]]] = [:]
        switch rule {
        case .range(let r):
            if case .product(let p) = r.devices, let registry { known = try await registry.devices(scope, product: p) }
        case .offline(let r):
            switch r.devices {
            case .product(let p): if let registry { known = try await registry.devices(scope, product: p) }
            case .device(let uid):
                if let registry, let d = try await registry.device(scope, uid: uid) { known = [d] }
            }
            if let pointStore {
                let uids = known.map(\.uid) + { if case .device(let u) = r.devices { [u] } else { [] } }()
                for uid in Set(uids) {
                    if let t = try await pointStore.latest(scope, device: uid, signals: nil).map(\.time).max() {
                        latestSeen[uid] = t
                    }
                }
            }
        case .joint(let r):
            var bound = [r]
            if let p = r.product, let registry {
                known = try await registry.devices(scope, product: p)
                bound = known.map { r.bound(to: $0.uid) }
            }
            if states.isEmpty, let pointStore {
                for rule in bound {
                    for (i, p) in rule.parameters.enumerated() {
                        let (from, limit): (Int64, Int?) =
                            switch p.window {
                            case .count(let n): (.min, max(1, n))
                            case .duration(let d):
                                (now.saturatingSubtract(d).saturatingAdd(1), configuration.maxWindowSamples)
                            }
                        history[rule.effectiveOriginator, default: [:]][i] = try await pointStore.range(
                            scope, series: SeriesKey(device: p.device, signal: p.signal), from: from,
                            to: now.saturatingAdd(1),
                            limit: limit, order: .descending
                        ).reversed()
                    }
                }
            }
        }

        // From here on nothing suspends: the swap is atomic for the hot path.
        let t = tenants[tenant] ?? TenantRules()
        tenants[tenant] = t
        if let old = t.runtimes[rule.id] { unindex(old, in: t) }
        for d in known { t.devices[d.uid] = .init(product: d.product, pushIntervalMillis: d.pushIntervalMillis) }

        let runtime = RuleRuntime(tenant: tenant, rule: rule, script: script)
        t.runtimes[rule.id] = runtime
        switch rule {
        case .range(let r):
            switch r.devices {
            case .device(let uid): _ = slot(for: uid, runtime, in: t, now: now)
            case .product(let p):
                t.productRules[p, default: []].append(runtime)
                for (uid, info) in t.devices where info.product == p { _ = slot(for: uid, runtime, in: t, now: now) }
            }
        case .offline(let r):
            switch r.devices {
            case .device(let uid): _ = slot(for: uid, runtime, in: t, now: now, lastSeen: latestSeen[uid])
            case .product(let p):
                t.productRules[p, default: []].append(runtime)
                for (uid, info) in t.devices where info.product == p {
                    _ = slot(for: uid, runtime, in: t, now: now, lastSeen: latestSeen[uid])
                }
            }
        case .joint(let r):
            if let p = r.product {
                t.productRules[p, default: []].append(runtime)
                for (uid, info) in t.devices where info.product == p {
                    addJointSlot(
                        r.bound(to: uid), runtime, in: t, now: now, history: history[uid] ?? [:],
                        fromStore: pointStore != nil)
                }
            } else {
                addJointSlot(
                    r, runtime, in: t, now: now, history: history[r.effectiveOriginator] ?? [:],
                    fromStore: pointStore != nil)
            }
        }

        restore(states, into: runtime, in: t, now: now)
        for a in alarms {
            let s = runtime.slots[a.originator] ?? slot(for: a.originator, runtime, in: t, now: now)
            guard let s else { continue }
            s.alarm = a
            t.openAlarms[a.id] = s
        }
        // A replaced rule's state, carried over from memory, may be newer than the store's.
        if replaced { for s in runtime.slots.values { markDirty(s) } }
    }

    /// Creates, fills and indexes the slot of a joint rule bound to its devices, and starts its timer.
    @discardableResult
    func addJointSlot(
        _ rule: JointRule, _ runtime: RuleRuntime, in t: TenantRules, now: Int64, history: [Int: [Point]],
        fromStore: Bool
    ) -> JointSlot {
        let maxDuration: Int64 =
            rule.parameters.compactMap { p -> Int64? in
                if case .duration(let d) = p.window { return d }
                return nil
            }.max() ?? 0
        // Windows filled from the store cover their duration at once; a device met later starts empty.
        let s = JointSlot(
            runtime: runtime, rule: rule, coveredSince: fromStore ? now.saturatingSubtract(maxDuration) : now)
        for (i, points) in history {
            for p in points {
                s.windows[i].append(
                    p.time, p.value.numericValue, window: rule.parameters[i].window, cap: configuration.maxWindowSamples
                )
            }
        }
        runtime.slots[s.originator] = s
        index(s, in: t)
        if let interval = rule.evaluationIntervalMillis, interval > 0 { schedule(s, at: now.saturatingAdd(interval)) }
        return s
    }

    /// Removes a rule and deletes its saved state. Its alarms stay (they can still be cleared and
    /// acknowledged); returns `false` when the tenant had no such rule.
    @discardableResult
    public func remove(ruleID: String, tenant: TenantID) async throws -> Bool {
        guard let t = tenants[tenant], let runtime = t.runtimes.removeValue(forKey: ruleID) else { return false }
        unindex(runtime, in: t)
        try await stateStore.deleteStates(.tenant(tenant), ruleID: ruleID)
        return true
    }

    /// The rules of a tenant, sorted by id.
    public func rules(tenant: TenantID) -> [AlarmRule] {
        (tenants[tenant]?.runtimes.values.map(\.rule) ?? []).sorted { $0.id < $1.id }
    }

    /// Tells the engine a device's product and push interval (registered or changed), so product
    /// rules and offline rules apply to it at once.
    public func updateDevice(_ device: Device, tenant: TenantID) {
        let t = tenants[tenant] ?? TenantRules()
        tenants[tenant] = t
        t.devices[device.uid] = .init(product: device.product, pushIntervalMillis: device.pushIntervalMillis)
        let now = clock.now()
        materialize(device.uid, in: t, now: now, lastSeen: nil)
        for s in t.offline[device.uid] ?? [] where s.rule.intervalMillis == nil {
            s.intervalMillis = device.pushIntervalMillis
            if let d = s.deadline { schedule(s, at: d) }
        }
    }

    /// Creates the slots of every product rule that covers `uid`.
    func materialize(_ uid: String, in t: TenantRules, now: Int64, lastSeen: Int64?) {
        guard let p = t.devices[uid]?.product, let runtimes = t.productRules[p] else { return }
        for r in runtimes where r.slots[uid] == nil { _ = slot(for: uid, r, in: t, now: now, lastSeen: lastSeen) }
    }

    /// The slot of (rule, originator), created and indexed when missing; `nil` for an offline rule
    /// whose device has no known interval, and for a joint rule's foreign originator.
    @discardableResult
    func slot(for originator: String, _ runtime: RuleRuntime, in t: TenantRules, now: Int64, lastSeen: Int64? = nil)
        -> Slot?
    {
        if let s = runtime.slots[originator] { return s }
        let s: Slot
        switch runtime.rule {
        case .range(let r): s = RangeSlot(runtime: runtime, originator: originator, rule: r, table: t.ranges)
        case .offline(let r):
            let o = OfflineSlot(
                runtime: runtime, originator: originator, rule: r,
                interval: r.intervalMillis ?? t.devices[originator]?.pushIntervalMillis)
            o.lastSeen = lastSeen ?? now
            s = o
        case .joint(let r):
            // A rule over every device of a product gets a slot of its own for each of them.
            guard let p = r.product, t.devices[originator]?.product == p else { return nil }
            let s = addJointSlot(r.bound(to: originator), runtime, in: t, now: now, history: [:], fromStore: false)
            // The parameters that name a device are the same for every device: a sibling's windows are theirs.
            if let sibling = runtime.slots.values.lazy.compactMap({ $0 as? JointSlot }).first(where: { $0 !== s }) {
                for (i, parameter) in r.parameters.enumerated() where !parameter.device.isEmpty {
                    s.windows[i] = sibling.windows[i]
                }
            }
            return s
        }
        runtime.slots[originator] = s
        index(s, in: t)
        if let o = s as? OfflineSlot, let d = o.deadline { schedule(o, at: d) }
        return s
    }

    func index(_ s: Slot, in t: TenantRules) {
        setOwner(s, owner(of: s))
        switch s {
        case let r as RangeSlot:
            t.series[SeriesKey(device: r.originator, signal: r.rule.signal), default: SeriesRef()].add(range: r.index)
        case let j as JointSlot:
            for (i, p) in j.rule.parameters.enumerated() {
                let key = SeriesKey(device: p.device, signal: p.signal)
                let list = t.series[key]?.joints ?? JointList()
                t.series[key, default: SeriesRef()].joints = list
                list.joints.append((j, i))
            }
        case let o as OfflineSlot:
            t.offline[o.originator, default: []].append(o)
        default: break
        }
    }

    func unindex(_ runtime: RuleRuntime, in t: TenantRules) {
        runtime.removed = true
        for s in runtime.slots.values {
            guard let r = s as? RangeSlot else { continue }
            let key = SeriesKey(device: r.originator, signal: r.rule.signal)
            t.series[key]?.remove(range: r.index)
            t.ranges.remove(r.index)
        }
        for case let j as JointSlot in runtime.slots.values {
            for p in j.rule.parameters {
                let key = SeriesKey(device: p.device, signal: p.signal)
                guard let list = t.series[key]?.joints else { continue }
                list.joints.removeAll { $0.slot.runtime === runtime }
                if list.joints.isEmpty { t.series[key]?.joints = nil }
            }
        }
        for (key, ref) in t.series where ref.isEmpty { t.series[key] = nil }
        for (uid, list) in t.offline {
            let kept = list.filter { $0.runtime !== runtime }
            t.offline[uid] = kept.isEmpty ? nil : kept
        }
        for (p, list) in t.productRules {
            let kept = list.filter { $0 !== runtime }
            t.productRules[p] = kept.isEmpty ? nil : kept
        }
        for s in runtime.slots.values { if let a = s.alarm { t.openAlarms[a.id] = nil } }
        runtime.slots.removeAll()
    }

    private func compileCondition(_ rule: AlarmRule) throws(IoTError) -> (any CompiledScript)? {
        guard case .joint(let r) = rule, case .script(let language, let source, _) = r.condition else { return nil }
        guard let engine = scriptEngines[language] else {
            throw IoTError(
                .script,
                "rule '\(r.id)' needs a '\(language)' script engine; pass one in RuleEngine(scriptEngines:) (have: \(scriptEngines.keys.sorted().joined(separator: ", ")))"
            )
        }
        return try engine.compile(source, name: "rule:\(r.id)")
    }

    /// Decodes saved states into the runtime's slots; a malformed state is logged and that originator starts
    /// fresh.
    func restore(_ states: [String: [UInt8]], into runtime: RuleRuntime, in t: TenantRules, now: Int64) {
        for (originator, blob) in states {
            guard let s = runtime.slots[originator] ?? slot(for: originator, runtime, in: t, now: now) else { continue }
            do {
                try s.decodeState(blob)
            } catch {
                s.reset(now: now)  // a state read halfway is no state
                logger.warning(
                    "saved state of rule is unreadable; starting it fresh for this originator",
                    metadata: ["tenant": "\(runtime.tenant)", "rule": "\(runtime.id)", "originator": "\(originator)"])
                continue
            }
            reschedule(s)
        }
    }

    /// Schedules the timer a slot's restored state implies (an offline deadline, a duration debounce).
    func reschedule(_ s: Slot) {
        if let o = s as? OfflineSlot, let d = o.deadline { schedule(o, at: d) }
        if let rs = s as? RangeSlot, !rs.alarming, let since = rs.matchSince, case .duration(let d) = rs.rule.debounce {
            schedule(rs, at: since.saturatingAdd(d))
        }
    }
}
