public import IoTCore
import Logging
import Metrics

extension RuleEngine {
    /// The condition of (rule, originator) was met: open, re-activate or repeat its alarm.
    func raiseAlarm(_ s: Slot, severity: AlarmSeverity, value: SignalValue?, details: String?, now: Int64) {
        let t = s.runtime.tenant
        if var a = s.alarm {
            a.occurrences += 1
            a.lastValue = value ?? a.lastValue
            if let details { a.details = details }
            if a.active {
                // A repeated raise: counted, saved with the next state save, no event.
                s.alarm = a
                s.alarmDirty = true
                markDirty(s)
                return
            }
            a.active = true
            a.clearTime = nil
            a.severity = severity
            s.alarm = a
            s.alarmDirty = false
            pending.append(PendingWrite(tenant: t, alarm: a, event: .raised))
            return
        }
        alarmSequence &+= 1
        let a = Alarm(
            id: "\(s.runtime.id)-\(s.originator)-\(now)-\(alarmSequence)", ruleID: s.runtime.id,
            originator: s.originator,
            severity: severity, startTime: now, lastValue: value, details: details)
        s.alarm = a
        s.alarmDirty = false
        tenants[t]?.openAlarms[a.id] = s
        pending.append(PendingWrite(tenant: t, alarm: a, event: .raised))
    }

    /// The condition of (rule, originator) cleared: clear its active alarm. `value`, the sample that cleared
    /// it, becomes the alarm's last value (what the "cleared" notification shows as the current value).
    func clearAlarm(_ s: Slot, now: Int64, value: SignalValue?) {
        guard var a = s.alarm, a.active else { return }
        a.active = false
        if let value { a.lastValue = value }
        a.clearTime = now
        close(s, a)
        pending.append(PendingWrite(tenant: s.runtime.tenant, alarm: a, event: .cleared))
    }

    /// Keeps `a` as the slot's open alarm, or drops it once it is cleared and acknowledged.
    private func close(_ s: Slot, _ a: Alarm) {
        s.alarmDirty = false
        if a.isOpen {
            s.alarm = a
        } else {
            s.alarm = nil
            tenants[s.runtime.tenant]?.openAlarms[a.id] = nil
        }
    }

    /// Acknowledges an alarm; an alarm already acknowledged is returned unchanged.
    ///
    /// An alarm that is cleared and now acknowledged is closed: the rule's next raise opens a new one.
    /// Throws ``IoTCore/IoTError/Code/notFound`` when no alarm with that id is visible in `scope`.
    @discardableResult
    public func acknowledge(_ scope: AccessScope, alarmID: String) async throws -> Alarm {
        let now = clock.now()
        if let s = tenants[scope.tenant]?.openAlarms[alarmID], s.owner == nil, var a = s.alarm, a.id == alarmID {
            guard scope.permits(device: a.originator) else { throw Self.notFound(alarmID) }
            guard !a.acknowledged else { return a }
            a.acknowledged = true
            a.ackTime = now
            close(s, a)
            pending.append(PendingWrite(tenant: scope.tenant, alarm: a, event: .acknowledged))
            await persist(now: now)
            return a
        }
        // Closed, or held by the instance that evaluates its originator: changed in the store, and that
        // instance told.
        guard var a = try await stateStore.alarm(scope, id: alarmID) else { throw Self.notFound(alarmID) }
        guard !a.acknowledged else { return a }
        a.acknowledged = true
        a.ackTime = now
        pending.append(PendingWrite(tenant: scope.tenant, alarm: a, event: .acknowledged))
        await persist(now: now)
        await tellOwner(scope.tenant, a)
        return a
    }

    /// Clears an alarm by hand; an alarm already cleared is returned unchanged.
    ///
    /// The rule starts over for that originator (debounce counters reset), so a condition that still
    /// holds raises again after its debounce. Throws ``IoTCore/IoTError/Code/notFound`` when no alarm
    /// with that id is visible in `scope`.
    @discardableResult
    public func clear(_ scope: AccessScope, alarmID: String) async throws -> Alarm {
        let now = clock.now()
        if let s = tenants[scope.tenant]?.openAlarms[alarmID], s.owner == nil, var a = s.alarm, a.id == alarmID {
            guard scope.permits(device: a.originator) else { throw Self.notFound(alarmID) }
            guard a.active else { return a }
            a.active = false
            a.clearTime = now
            resetCondition(s, now: now)
            close(s, a)
            pending.append(PendingWrite(tenant: scope.tenant, alarm: a, event: .cleared))
            await persist(now: now)
            return a
        }
        guard var a = try await stateStore.alarm(scope, id: alarmID) else { throw Self.notFound(alarmID) }
        guard a.active else { return a }
        a.active = false
        a.clearTime = now
        pending.append(PendingWrite(tenant: scope.tenant, alarm: a, event: .cleared))
        await persist(now: now)
        await tellOwner(scope.tenant, a)
        return a
    }

    /// The open alarms the engine holds for a scope, newest first (in a cluster, of the originators this
    /// instance evaluates).
    public func openAlarms(_ scope: AccessScope) -> [Alarm] {
        (tenants[scope.tenant]?.openAlarms.values.filter { $0.owner == nil }.compactMap(\.alarm) ?? [])
            .filter { scope.permits(device: $0.originator) }
            .sorted { ($0.startTime, $0.id) > ($1.startTime, $1.id) }
    }

    func resetCondition(_ s: Slot, now: Int64) {
        switch s {
        case let r as RangeSlot:
            r.alarming = false
            r.matchCount = 0
            r.matchSince = nil
        case let j as JointSlot:
            j.alarming = false
            j.holding = 0
            j.holdingSince = nil
        case let o as OfflineSlot:
            o.alarming = false
            o.lastSeen = max(o.lastSeen, now)
            if let d = o.deadline { schedule(o, at: d) }
        default: break
        }
        markDirty(s)
    }

    static func notFound(_ id: String) -> IoTError {
        IoTError(.notFound, "no alarm '\(id)' in this scope; list alarms to find its id")
    }

    /// Stores pending alarm writes in order and delivers their events; saves dirty rule state when
    /// due (or `force`). One persister at a time: a call that finds another running returns, and the
    /// running one drains what it added.
    func persist(now: Int64, force: Bool = false) async {
        guard !persisting else { return }
        persisting = true
        defer { persisting = false }
        while !pending.isEmpty {
            let w = pending.removeFirst()
            let scope = AccessScope.tenant(w.tenant)
            var record: Int64?
            do {
                if let kind = w.event {
                    // The event is recorded with the alarm and marked handled once the handlers ran: a crash
                    // in between leaves it for deliverUnhandledEvents() at the next start.
                    record = try await stateStore.saveAlarm(
                        scope, w.alarm,
                        unhandledEvent: UnhandledAlarmEvent(
                            kind: kind.rawValue, tenant: w.tenant, alarm: w.alarm, time: now))
                } else {
                    try await stateStore.saveAlarm(scope, w.alarm)
                }
            } catch {
                storeFailed("saving alarm \(w.alarm.id)", error)
            }
            if let kind = w.event {
                let e = AlarmEvent(kind: kind, tenant: w.tenant, alarm: w.alarm, time: now)
                eventContinuation.yield(e)
                for h in handlers { await h.handle(e) }
                if let record {
                    do {
                        try await stateStore.markAlarmEventHandled(scope, id: record)
                    } catch {
                        storeFailed("marking the event of alarm \(w.alarm.id) handled", error)
                    }
                }
            }
        }
        guard force || now - lastFlush >= configuration.persistInterval.inMilliseconds, !dirtyRuntimes.isEmpty else {
            if force { lastFlush = now }
            return
        }
        lastFlush = now
        let dirty = dirtyRuntimes
        dirtyRuntimes.removeAll(keepingCapacity: true)
        // One save per rule, of the originators that changed.
        for r in dirty {
            let slots = r.dirtySlots
            r.dirtySlots.removeAll()
            var alarms: [Alarm] = []
            var states: [String: [UInt8]] = [:]
            states.reserveCapacity(slots.count)
            for s in slots {
                s.dirty = false
                states[s.originator] = s.encodeState()
                if s.alarmDirty, let a = s.alarm { alarms.append(a) }
                s.alarmDirty = false
            }
            guard !r.removed else { continue }
            let scope = AccessScope.tenant(r.tenant)
            do {
                try await stateStore.saveStates(scope, ruleID: r.id, states: states)
                for a in alarms { try await stateStore.saveAlarm(scope, a) }
            } catch {
                storeFailed("saving state of rule \(r.id)", error)
                for s in slots {
                    if alarms.contains(where: { $0.id == s.alarm?.id }) { s.alarmDirty = true }
                    markDirty(s)
                }
            }
        }
    }

    /// Hands to the handlers again, oldest first, the alarm events that an earlier process stored with
    /// their alarm but stopped before its handlers (the notifications) had run, then marks them handled.
    /// ``run()`` calls it once at start, for the tenants whose rules were added by then; call it after
    /// ``addHandler(_:)`` when you drive the engine without ``run()``. At least once: an event whose
    /// handlers ran but whose mark was not written is handed out again.
    public func deliverUnhandledEvents() async {
        for tenant in tenants.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            let scope = AccessScope.tenant(tenant)
            do {
                for record in try await stateStore.unhandledAlarmEvents(scope) {
                    if let kind = AlarmEvent.Kind(rawValue: record.kind) {
                        let e = AlarmEvent(kind: kind, tenant: tenant, alarm: record.alarm, time: record.time)
                        eventContinuation.yield(e)
                        for h in handlers { await h.handle(e) }
                    }
                    try await stateStore.markAlarmEventHandled(scope, id: record.id)
                }
            } catch {
                storeFailed("delivering unhandled alarm events of tenant \(tenant)", error)
            }
        }
    }

    private func storeFailed(_ what: String, _ error: any Error) {
        storeFailureCount += 1
        storeFailuresCounter.increment()
        logger.error("rule store write failed", metadata: ["what": "\(what)", "error": "\(error)"])
    }
}
