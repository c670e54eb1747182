public import IoTCore
import Logging

// Several instances, one owner per originator: each (rule, originator) is evaluated on the instance that
// ClusterOwnership names; the others send it the points (RuleForwarding) and leave its timers alone.
extension RuleEngine {
    /// Sets where points and alarm changes of originators another instance evaluates are sent. Without it
    /// (the default) such points are not evaluated anywhere: set it before the first ``ownershipChanged(_:)``.
    public func setForwarding(_ forwarding: any RuleForwarding) {
        self.forwarding = forwarding
    }

    /// Applies a new view of which instance evaluates which originator (a cluster's live instances changed).
    ///
    /// Slots this instance gives up are saved at once, for their new owner to load; slots it takes over load
    /// the state and open alarm their previous owner saved last (a fresh state when there is none) and run
    /// their timers here from then on. `nil` makes this instance evaluate everything again.
    public func ownershipChanged(_ ownership: ClusterOwnership?) async {
        guard ownership != self.ownership else { return }
        self.ownership = ownership
        var gained: [(runtime: RuleRuntime, slots: [Slot])] = []
        var lost = 0
        var unsaved = 0
        for t in tenants.values {
            for runtime in t.runtimes.values {
                var taken: [Slot] = []
                for s in runtime.slots.values {
                    let owner = owner(of: s)
                    guard owner != s.owner else { continue }
                    if owner == nil {
                        taken.append(s)  // stays with its old owner until its state is loaded
                    } else {
                        if s.owner == nil {
                            lost += 1
                            if s.dirty { unsaved += 1 }
                        }
                        setOwner(s, owner)
                    }
                }
                if !taken.isEmpty { gained.append((runtime, taken)) }
            }
        }
        // What this instance gave up and had not saved yet is saved now, for the instance that takes it over.
        if unsaved > 0 { await persist(now: clock.now(), force: true) }
        let now = clock.now()
        var loaded = 0
        for (runtime, slots) in gained {
            let scope = AccessScope.tenant(runtime.tenant)
            let states: [String: [UInt8]]
            var alarms: [String: Alarm] = [:]
            let ruleID = runtime.id
            let originators = slots.map(\.originator)
            do {
                states = try await stateStore.states(scope, ruleID: ruleID, originators: originators)
                // One listing per rule, not one query per originator: a failover may move thousands.
                let wanted = Set(originators)
                for a in try await stateStore.alarms(scope, query: AlarmQuery(ruleID: ruleID, open: true))
                where wanted.contains(a.originator) {
                    alarms[a.originator] = a
                }
            } catch {
                // Not taken over: the next change of ownership tries again.
                logger.error(
                    "rule state of originators this instance takes over could not be read; they stay unevaluated",
                    metadata: ["tenant": "\(runtime.tenant)", "rule": "\(runtime.id)", "error": "\(error)"])
                continue
            }
            // From here on nothing suspends.
            guard !runtime.removed, let t = tenants[runtime.tenant] else { continue }
            for s in slots {
                guard s.owner != nil, owner(of: s) == nil else { continue }
                s.reset(now: now)
                if let blob = states[s.originator] {
                    do {
                        try s.decodeState(blob)
                    } catch {
                        s.reset(now: now)
                        logger.warning(
                            "saved state of rule is unreadable; starting it fresh for this originator",
                            metadata: [
                                "tenant": "\(runtime.tenant)", "rule": "\(runtime.id)", "originator": "\(s.originator)",
                            ])
                    }
                }
                if let old = s.alarm { t.openAlarms[old.id] = nil }
                s.alarm = alarms[s.originator]
                s.alarmDirty = false
                if let a = s.alarm { t.openAlarms[a.id] = s }
                setOwner(s, nil)
                reschedule(s)
                if let j = s as? JointSlot, let interval = j.rule.evaluationIntervalMillis, interval > 0 {
                    schedule(j, at: now.saturatingAdd(interval))
                }
                loaded += 1
            }
        }
        if lost > 0 || loaded > 0 {
            logger.info(
                "rule ownership changed",
                metadata: [
                    "instances": "\(ownership?.live.joined(separator: ",") ?? "this one")", "given up": "\(lost)",
                    "taken over": "\(loaded)",
                ])
        }
    }

    /// Another instance changed an alarm of (`ruleID`, `originator`) in the store (acknowledged or cleared it
    /// through its API); this instance evaluates that originator and reads the alarm again.
    public func alarmChangedElsewhere(tenant: TenantID, ruleID: String, originator: String) async {
        guard let runtime = tenants[tenant]?.runtimes[ruleID], let s = runtime.slots[originator], s.owner == nil
        else { return }
        let stored: Alarm?
        do {
            stored = try await stateStore.openAlarm(.tenant(tenant), ruleID: ruleID, originator: originator)
        } catch {
            logger.warning(
                "an alarm changed on another instance could not be read again",
                metadata: ["tenant": "\(tenant)", "rule": "\(ruleID)", "error": "\(error)"])
            return
        }
        guard !runtime.removed, s.owner == nil, let t = tenants[tenant] else { return }
        let before = s.alarm
        if let old = before { t.openAlarms[old.id] = nil }
        var after = stored
        if let b = before, var a = after, a.id == b.id {
            // What this instance counted since it was saved stays.
            a.occurrences = max(a.occurrences, b.occurrences)
            if a.active { a.lastValue = b.lastValue ?? a.lastValue }
            after = a
        }
        s.alarm = after
        if let a = after { t.openAlarms[a.id] = s }
        // Cleared by hand elsewhere: the rule starts over for the originator, as a clear here does.
        if before?.active == true, after?.active != true { resetCondition(s, now: clock.now()) }
    }

    /// The instance that evaluates `s`, or `nil` for this one.
    func owner(of s: Slot) -> String? { owner(tenant: s.runtime.tenant, originator: s.originator) }

    /// The instance that evaluates the rules of `originator`, or `nil` for this one.
    func owner(tenant: TenantID, originator: String) -> String? {
        guard let ownership else { return nil }
        let owner = ownership.owner(tenant: tenant, key: originator)
        return owner == ownership.instance ? nil : owner
    }

    func setOwner(_ s: Slot, _ owner: String?) {
        s.owner = owner
        if let r = s as? RangeSlot { r.table.states[Int(r.index)].local = owner == nil }
    }

    /// After an acknowledge or clear of an alarm another instance holds, tells that instance.
    func tellOwner(_ tenant: TenantID, _ alarm: Alarm) async {
        guard let forwarding, let owner = owner(tenant: tenant, originator: alarm.originator) else { return }
        await forwarding.alarmChanged(tenant: tenant, ruleID: alarm.ruleID, originator: alarm.originator, to: owner)
    }
}
