public import IoTCore
import Logging
import Metrics

extension RuleEngine {
    /// Evaluates every rule fed by the batch's points, in point order, then stores alarm changes and
    /// (when due) rule state. Never throws: store failures are logged and counted.
    ///
    /// In a cluster (``ownershipChanged(_:)``), the points of originators another instance evaluates are sent
    /// to it through the ``setForwarding(_:)`` relay instead.
    public func pointsCommitted(_ batch: PointBatch) async {
        await evaluate(batch, forwarding: true)
    }

    /// Evaluates points another instance sent because this one evaluates their originators' rules (see
    /// ``IoTCore/RuleForwarding``). Points of an originator this instance does not evaluate (ownership moved
    /// on the way) are counted in `iot_rules_points_misrouted_total` and not sent on.
    public func forwardedPoints(_ batch: PointBatch) async {
        await evaluate(batch, forwarding: false)
    }

    private func evaluate(_ batch: PointBatch, forwarding canForward: Bool) async {
        guard let t = tenants[batch.tenant] else { return }
        let started = ContinuousClock.now
        defer { evaluationTimer.recordElapsed(since: started) }
        if !t.productRules.isEmpty { await resolveDevices(batch, t) }
        let now = clock.now()
        var elsewhere = Elsewhere()
        let scripts = evaluate(batch.points, t, now: now, elsewhere: &elsewhere)
        if !elsewhere.byOwner.isEmpty {
            if canForward, let forwarding {
                for (owner, points) in elsewhere.byOwner {
                    forwardedCounter.increment(by: Int64(points.count))
                    await forwarding.forward(
                        PointBatch(tenant: batch.tenant, points: points, journalSequence: 0), to: owner)
                }
            } else if !canForward {
                misroutedCounter.increment(by: Int64(elsewhere.byOwner.values.reduce(0) { $0 + $1.count }))
            }
        }
        // Script conditions run after the synchronous pass, in sample order, on the inputs they had.
        for (s, inputs) in scripts { await evaluateScript(s, inputs: inputs, now: now) }
        await persist(now: now)
    }

    /// The points of one batch that other instances evaluate, by instance, each point once per instance.
    struct Elsewhere {
        var byOwner: [String: [Point]] = [:]
        private var last: [String: Int] = [:]

        mutating func add(_ owner: String, _ index: Int, _ p: Point) {
            guard last[owner] != index else { return }
            last[owner] = index
            byOwner[owner, default: []].append(p)
        }
    }

    /// The synchronous hot path: range rules, offline last-seen times, joint windows and closure
    /// conditions. Returns the script conditions to run, with their inputs at their sample; the points that
    /// feed slots another instance evaluates go to `elsewhere`.
    private func evaluate(_ points: [Point], _ t: TenantRules, now: Int64, elsewhere: inout Elsewhere)
        -> [(JointSlot, [String: Double?])]
    {
        var evaluations = 0
        var scripts: [(JointSlot, [String: Double?])] = []
        let offline = t.offline
        let series = t.series
        let table = t.ranges
        let cap = configuration.maxWindowSamples
        for (index, p) in points.enumerated() {
            if !offline.isEmpty, let slots = offline[p.device] {
                for s in slots {
                    if let owner = s.owner { elsewhere.add(owner, index, p) } else { seen(s, at: p.time, now: now) }
                }
            }
            guard let ref = series[p.series] else { continue }
            let numeric = p.value.numericValue
            if let v = numeric, ref.first >= 0 {
                let i = Int(ref.first)
                let step = table.states.withUnsafeMutableBufferPointer {
                    $0[i].local ? $0[i].step(v, at: p.time) : .elsewhere
                }
                apply(step, table.slots[i]!, v, index, p, now: now, elsewhere: &elsewhere)
                if case .elsewhere = step {} else { evaluations &+= 1 }
                if let more = ref.more {
                    for i in more {
                        let i = Int(i)
                        let step = table.states[i].local ? table.states[i].step(v, at: p.time) : .elsewhere
                        apply(step, table.slots[i]!, v, index, p, now: now, elsewhere: &elsewhere)
                        if case .elsewhere = step {} else { evaluations &+= 1 }
                    }
                }
            }
            if let joints = ref.joints?.joints {
                // Every window this sample feeds first, then each rule once: a rule with two
                // parameters on the same series must not see one updated and the other not.
                for (s, i) in joints {
                    if let owner = s.owner {
                        elsewhere.add(owner, index, p)
                        continue
                    }
                    s.windows[i].append(p.time, numeric, window: s.rule.parameters[i].window, cap: cap)
                    markDirty(s)
                }
                var previous: JointSlot?
                for (s, _) in joints where s !== previous && s.owner == nil {
                    previous = s
                    evaluations &+= 1
                    let inputs = s.inputs(now: now)
                    if case .closure(let condition) = s.rule.condition {
                        applyJoint(s, condition(inputs), inputs: inputs, now: now)
                    } else {
                        scripts.append((s, inputs))
                    }
                }
            }
        }
        evaluationCount &+= evaluations
        evaluationsCounter.increment(by: Int64(evaluations))
        return scripts
    }

    @inline(__always)
    private func apply(
        _ step: RangeStep, _ s: RangeSlot, _ v: Double, _ index: Int, _ p: Point, now: Int64,
        elsewhere: inout Elsewhere
    ) {
        switch step {
        case .none: break
        case .elsewhere: if let owner = s.owner { elsewhere.add(owner, index, p) }
        default: applyRange(step, s, v, now: now)
        }
    }

    /// Acts on what a sample did to a range slot: save, schedule, count a repeat, raise or clear.
    private func applyRange(_ step: RangeStep, _ s: RangeSlot, _ v: Double, now: Int64) {
        markDirty(s)
        switch step {
        case .none, .changed, .elsewhere: break
        case .schedule(let deadline): schedule(s, at: deadline)
        case .repeated:
            if s.alarm?.active == true {
                s.alarm!.occurrences += 1
                s.alarm!.lastValue = .number(v)
                s.alarmDirty = true
            }
        case .raise: raiseAlarm(s, severity: s.rule.severity, value: .number(v), details: nil, now: now)
        case .clear: clearAlarm(s, now: now, value: .number(v))
        }
    }

    /// Learns the product of devices the tenant has not seen, so product rules cover them.
    private func resolveDevices(_ batch: PointBatch, _ t: TenantRules) async {
        var unknown: Set<String> = []
        for p in batch.points where t.devices[p.device] == nil { unknown.insert(p.device) }
        guard !unknown.isEmpty else { return }
        let now = clock.now()
        for uid in unknown {
            var info = TenantRules.DeviceInfo()
            if let registry {
                do {
                    if let d = try await registry.device(.tenant(batch.tenant), uid: uid) {
                        info = .init(product: d.product, pushIntervalMillis: d.pushIntervalMillis)
                    }
                } catch {
                    logger.warning("registry lookup failed", metadata: ["device": "\(uid)", "error": "\(error)"])
                    continue
                }
            }
            guard t.devices[uid] == nil else { continue }
            t.devices[uid] = info
            let first = batch.points.first { $0.device == uid }?.time
            materialize(uid, in: t, now: now, lastSeen: first)
        }
    }

    /// A duration debounce came due with no new sample: the last value still holds.
    func rangeTimer(_ s: RangeSlot, now: Int64) {
        guard !s.alarming, let since = s.matchSince, case .duration(let d) = s.rule.debounce else { return }
        if now.saturatingSubtract(since) >= d {
            s.alarming = true
            markDirty(s)
            raiseAlarm(s, severity: s.rule.severity, value: .number(s.lastValue), details: nil, now: now)
        } else {
            schedule(s, at: since.saturatingAdd(d))
        }
    }

    func seen(_ s: OfflineSlot, at time: Int64, now: Int64) {
        guard time > s.lastSeen else { return }
        s.lastSeen = time
        markDirty(s)
        if s.alarming {
            s.alarming = false
            clearAlarm(s, now: now, value: nil)
            if let d = s.deadline { schedule(s, at: d) }
        }
    }

    func offlineTimer(_ s: OfflineSlot, now: Int64) {
        guard !s.alarming, let deadline = s.deadline else { return }
        if now >= deadline {
            s.alarming = true
            markDirty(s)
            raiseAlarm(
                s, severity: s.rule.severity, value: nil,
                details:
                    "no data since \(s.lastSeen) (interval \(s.intervalMillis ?? 0) ms + tolerance \(s.rule.toleranceMillis) ms)",
                now: now)
        } else {
            schedule(s, at: deadline)
        }
    }

    func evaluateJoint(_ s: JointSlot, now: Int64) async {
        let inputs = s.inputs(now: now)
        if case .closure(let condition) = s.rule.condition {
            applyJoint(s, condition(inputs), inputs: inputs, now: now)
        } else {
            await evaluateScript(s, inputs: inputs, now: now)
        }
    }

    func evaluateScript(_ s: JointSlot, inputs: [String: Double?], now: Int64) async {
        guard case .script(_, _, let function) = s.rule.condition, let script = s.runtime.script else { return }
        var object: [String: ScriptValue] = [:]
        for (k, v) in inputs { object[k] = v.map(ScriptValue.number) ?? .null }
        do {
            let result = try await script.call(function, [.object(object)])
            guard !s.runtime.removed else { return }
            switch result {
            case .bool(let b): applyJoint(s, b, inputs: inputs, now: now)
            case .number(let n): applyJoint(s, n != 0, inputs: inputs, now: now)
            default: failed(s, "condition returned \(result), not a boolean")
            }
        } catch {
            failed(s, "\(error)")
        }
    }

    private func failed(_ s: JointSlot, _ why: String) {
        failedEvaluationCount += 1
        failuresCounter.increment()
        logger.warning(
            "rule condition failed; this evaluation changes nothing",
            metadata: ["tenant": "\(s.runtime.tenant)", "rule": "\(s.runtime.id)", "error": "\(why)"])
    }

    private func applyJoint(_ s: JointSlot, _ holds: Bool, inputs: [String: Double?], now: Int64) {
        if holds {
            if s.alarming {
                if s.alarm?.active == true {
                    s.alarm!.occurrences += 1
                    s.alarmDirty = true
                    markDirty(s)
                }
            } else {
                s.holding += 1
                let since = s.holdingSince ?? now
                s.holdingSince = since
                switch s.rule.debounce {
                case .count(let n)?: guard s.holding >= max(1, n) else { return }
                case .duration(let d)?: guard now.saturatingSubtract(since) >= d else { return }
                case nil: break
                }
                s.alarming = true
                markDirty(s)
                raiseAlarm(s, severity: s.rule.severity, value: nil, details: Self.describe(inputs), now: now)
            }
        } else {
            s.holding = 0
            s.holdingSince = nil
            if s.alarming {
                s.alarming = false
                markDirty(s)
                clearAlarm(s, now: now, value: nil)
            }
        }
    }

    static func describe(_ inputs: [String: Double?]) -> String {
        inputs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.map { "\($0)" } ?? "nil")" }
            .joined(separator: ", ")
    }
}
