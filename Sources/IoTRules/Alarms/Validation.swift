public import IoTCore

// The ranges of the rules' numbers. ``RuleEngine/add(_:tenant:)`` and ``StatisticsScheduler/add(_:tenant:)``
// check them, so a rule from the configuration file, the management API or the definition store is refused
// with an error naming the field instead of overflowing in the engine's time arithmetic.

extension AlarmRule {
    /// Checks every number of the rule against its documented range.
    ///
    /// - Durations (`intervalMillis`, `evaluationIntervalMillis`, a window's or debounce's
    ///   `durationMillis`): 1 ms to ``IoTCore/IoTLimits/maxDurationMillis`` (10 years); `toleranceMillis` and
    ///   a debounce duration may be 0.
    /// - Counts (a debounce's or window's `count`): 1 to 1,000,000.
    /// - `hysteresis`: finite and not negative; `min` and `max`: finite, `min` ≤ `max`.
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the rule and the field.
    public func validate() throws(IoTError) {
        switch self {
        case .range(let r): try r.validate()
        case .joint(let r): try r.validate()
        case .offline(let r): try r.validate()
        }
    }
}

/// The largest `count` of a debounce or window.
let maxRuleCount = 1_000_000

private func field(_ rule: String, _ name: String) -> String { "rule '\(rule)': \(name)" }

private func checkCount(_ n: Int, _ name: String) throws(IoTError) {
    guard n >= 1 && n <= maxRuleCount else {
        throw IoTError(.invalidArgument, "\(name) is \(n); expected a count from 1 to \(maxRuleCount)")
    }
}

extension RangeRule {
    /// Checks the rule's numbers; see ``AlarmRule/validate()``.
    public func validate() throws(IoTError) {
        for (name, value) in [("min", min), ("max", max)] {
            if let value, !value.isFinite {
                throw IoTError(.invalidArgument, "\(field(id, name)) is \(value); expected a finite number")
            }
        }
        if let min, let max, min > max {
            throw IoTError(.invalidArgument, "rule '\(id)': min (\(min)) must not be above max (\(max))")
        }
        guard hysteresis.isFinite && hysteresis >= 0 else {
            throw IoTError(
                .invalidArgument, "\(field(id, "hysteresis")) is \(hysteresis); expected a finite number, 0 or more")
        }
        switch debounce {
        case .count(let n): try checkCount(n, field(id, "debounce count"))
        case .duration(let d): try IoTLimits.checkDuration(d, field(id, "debounce durationMillis"), minimum: 0)
        }
    }
}

extension JointRule {
    /// Checks the rule's numbers; see ``AlarmRule/validate()``.
    public func validate() throws(IoTError) {
        if let interval = evaluationIntervalMillis {
            try IoTLimits.checkDuration(interval, field(id, "evaluationIntervalMillis"))
        }
        switch debounce {
        case .count(let n)?: try checkCount(n, field(id, "debounce count"))
        case .duration(let d)?: try IoTLimits.checkDuration(d, field(id, "debounce durationMillis"), minimum: 0)
        case nil: break
        }
        for p in parameters {
            if p.device.isEmpty && product == nil {
                throw IoTError(
                    .invalidArgument,
                    "\(field(id, "parameter '\(p.name)'")) names no device; give its device, or the rule's product to apply it to every device of a product"
                )
            }
            switch p.window {
            case .count(let n): try checkCount(n, field(id, "parameter '\(p.name)' window count"))
            case .duration(let d):
                try IoTLimits.checkDuration(d, field(id, "parameter '\(p.name)' window durationMillis"), minimum: 0)
            }
        }
    }
}

extension OfflineRule {
    /// Checks the rule's numbers; see ``AlarmRule/validate()``.
    public func validate() throws(IoTError) {
        if let interval = intervalMillis { try IoTLimits.checkDuration(interval, field(id, "intervalMillis")) }
        try IoTLimits.checkDuration(toleranceMillis, field(id, "toleranceMillis"), minimum: 0)
    }
}

extension StatisticsJob {
    /// Checks the job's numbers: `leadMillis` from 0 to ``IoTCore/IoTLimits/maxDurationMillis`` (10 years).
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the job and the field.
    public func validate() throws(IoTError) {
        try IoTLimits.checkDuration(leadMillis, "statistics job '\(id)': leadMillis", minimum: 0)
        if case .all(let n) = catchUp, n < 0 || n > 100_000 {
            throw IoTError(
                .invalidArgument, "statistics job '\(id)': catchUp max is \(n); expected a count from 0 to 100000")
        }
    }
}
