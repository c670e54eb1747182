public import IoTCore
import Logging
import Metrics

extension RuleEngine {
    /// Evaluates every rule fed by the batch's points, in point order, then stores alarm changes and
    /// (when due) rule state. Never throws: store failures are logged and counted.
    public func pointsCommitted(_ batch: PointBatch) async {
        guard let t = tenants[batch.tenant] else { return }
        let started = ContinuousClock.now
        defer { evaluationTimer.recordElapsed(since: started) }
        if !t.productRules.isEmpty { await resolveDevices(batch, t) }
        let now = clock.now()
        let scripts = evaluate(batch.points, t, now: now)
        // Script conditions run after the synchronous pass, in sample order, on the inputs they had.
        for (s, inputs) in scripts { await evaluateScript(s, inputs: inputs, now: now) }
        await persist(now: now)
    }

    /// The synchronous hot path: range rules, offline last-seen times, joint windows and closure
    /// conditions. Returns the script conditions to run, with their inputs at their sample.
    private func evaluate(_ points: [Point], _ t: TenantRules, now: Int64) -> [(JointSlot, [String: Double?])] {
        var evaluations = 0
        var scripts: [(JointSlot, [String: Double?])] = []
        let offline = t.offline
        let series = t.series
        let table = t.ranges
        let cap = configuration.maxWindowSamples
        for p in points {
            if !offline.isEmpty, let slots = offline[p.device] {
                for s in slots { seen(s, at: p.time, now: now) }
            }
            guard let ref = series[p.series] else { continue }
            let numeric = p.value.numericValue
            if let v = numeric, ref.first >= 0 {
                let step = table.states.withUnsafeMutableBufferPointer { $0[Int(ref.first)].step(v, at: p.time) }
                if case .none = step {} else { applyRange(step, table.slots[Int(ref.first)]!, v, now: now) }
                evaluations &+= 1
                if let more = ref.more {
                    for i in more {
                        let step = table.states[Int(i)].step(v, at: p.time)
                        if case .none = step {} else { applyRange(step, table.slots[Int(i)]!, v, now: now) }
                    }
                    evaluations &+= more.count
                }
            }
            if let joints = ref.joints?.joints {
                // Every window this sample feeds first, then each rule once: a rule with two
                // parameters on the same series must not see one updated and the other not.
                for (s, i) in joints {
                    s.windows[i].append(p.time, numeric, window: s.rule.parameters[i].window, cap: cap)
                    markDirty(s)
                }
                var previous: JointSlot?
                for (s, _) in joints where s !== previous {
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

    /// Acts on what a sample did to a range slot: save, schedule, count a repeat, raise or clear.
    private func applyRange(_ step: RangeStep, _ s: RangeSlot, _ v: Double, now: Int64) {
        markDirty(s)
        switch step {
        case .none, .changed: break
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
