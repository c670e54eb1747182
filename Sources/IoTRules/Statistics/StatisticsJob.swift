public import IoTCore

/// A scheduled summary: at each cron fire, reduce some series over the window `[fire − lead, fire)`,
/// run a calculation over the results, and store what it returns in the `StatisticsStore`.
///
/// ```swift
/// // Every day at 00:05 Berlin time: yesterday's energy use and mean temperature of pump 1.
/// let daily = StatisticsJob(
///     id: "pump-1-daily", cron: try CronExpression("5 0 * * *"),
///     timeZone: CronTimeZone(identifier: "Europe/Berlin")!, leadMillis: 86_400_000,
///     parameters: [
///         .init(name: "energy", device: "pump-1", signal: "kwh", reducer: .delta),
///         .init(name: "temp", device: "pump-1", signal: "temp", reducer: .mean),
///     ]
/// ) { p in ["energy": .number(p["energy"]! ?? 0), "meanTemp": .number(p["temp"]! ?? .nan)] }
/// ```
public struct StatisticsJob: Sendable, Codable {
    /// One input: a series reduced over the window.
    public struct Parameter: Sendable, Hashable, Codable {
        /// The name the calculation reads.
        public var name: String
        /// The device.
        public var device: String
        /// The signal.
        public var signal: String
        /// How the window's points become one value.
        public var reducer: Reducer

        /// Creates a parameter.
        public init(name: String, device: String, signal: String, reducer: Reducer) {
            self.name = name
            self.device = device
            self.signal = signal
            self.reducer = reducer
        }
    }

    /// Unique in the tenant; identifies its results.
    public var id: String
    /// When it fires.
    public var cron: CronExpression
    /// The zone the cron expression is read in.
    public var timeZone: CronTimeZone
    /// How far back from a fire the window starts (ms).
    public var leadMillis: Int64
    /// The inputs.
    public var parameters: [Parameter]
    /// What to compute; `nil` stores the parameters themselves (those with a value).
    public var calculation: Calculation?
    /// What to do about fires missed while the scheduler was down.
    public var catchUp: CatchUpPolicy

    /// Creates a job.
    public init(
        id: String, cron: CronExpression, timeZone: CronTimeZone = .utc, leadMillis: Int64,
        parameters: [Parameter], calculation: Calculation? = nil, catchUp: CatchUpPolicy = .latest
    ) {
        self.id = id
        self.cron = cron
        self.timeZone = timeZone
        self.leadMillis = leadMillis
        self.parameters = parameters
        self.calculation = calculation
        self.catchUp = catchUp
    }

    private enum CodingKeys: String, CodingKey {
        case id, cron, timeZone, leadMillis, parameters, calculation, catchUp
    }

    /// Decodes a job; `timeZone` (UTC), `calculation` (none) and `catchUp` (``CatchUpPolicy/latest``) may be left
    /// out, with the defaults of ``init(id:cron:timeZone:leadMillis:parameters:calculation:catchUp:)``.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(String.self, forKey: .id), cron: try c.decode(CronExpression.self, forKey: .cron),
            timeZone: try c.decodeIfPresent(CronTimeZone.self, forKey: .timeZone) ?? .utc,
            leadMillis: try c.decode(Int64.self, forKey: .leadMillis),
            parameters: try c.decode([Parameter].self, forKey: .parameters),
            calculation: try c.decodeIfPresent(Calculation.self, forKey: .calculation),
            catchUp: try c.decodeIfPresent(CatchUpPolicy.self, forKey: .catchUp) ?? .latest)
    }

    /// Creates a job whose calculation is a Swift closure.
    public init(
        id: String, cron: CronExpression, timeZone: CronTimeZone = .utc, leadMillis: Int64,
        parameters: [Parameter], catchUp: CatchUpPolicy = .latest,
        calculation: @escaping @Sendable ([String: Double?]) -> [String: SignalValue]
    ) {
        self.init(
            id: id, cron: cron, timeZone: timeZone, leadMillis: leadMillis, parameters: parameters,
            calculation: .closure(calculation), catchUp: catchUp)
    }
}

/// A statistics job's calculation.
///
/// A script is called as `function(params)` with an object of the parameters by name (`null` when
/// empty; a `raw` parameter is the list of the window's numeric values) and must return an object of
/// named numbers, strings or booleans. Only script calculations can be encoded.
public enum Calculation: Sendable, Codable {
    /// A Swift closure over the parameters by name (a `raw` parameter is its latest value).
    case closure(@Sendable ([String: Double?]) -> [String: SignalValue])
    /// A script run by the scheduler's ``IoTCore/ScriptEngine`` for `language`.
    case script(language: String, source: String, function: String)

    /// Decodes a script calculation.
    public init(from decoder: any Decoder) throws {
        let script = try ScriptCoding.decode(from: decoder, defaultFunction: "calculate")
        self = .script(language: script.language, source: script.source, function: script.function)
    }

    /// Encodes a script calculation; throws for a closure.
    public func encode(to encoder: any Encoder) throws {
        guard case .script(let language, let source, let function) = self else {
            throw ScriptCoding.closureError(self, "calculation", encoder)
        }
        try ScriptCoding.encode(language: language, source: source, function: function, to: encoder)
    }
}

/// What a job does about fires missed while the scheduler was not running, found from the latest
/// stored result (``IoTCore/StatisticsStore/lastFireTime(_:jobID:)``) when the job is added.
public enum CatchUpPolicy: Sendable, Hashable, Codable {
    /// Skip them; wait for the next fire.
    case none
    /// Run the most recent missed fire only.
    case latest
    /// Run missed fires oldest first, at most the `max` most recent.
    case all(max: Int)
}
