import IoTCore
import IoTRules

/// The rules of a pump installation.
public enum PumpRules {
    /// A pump is too hot when it reports more than 80 °C for a full minute; it is fine again at 78 °C.
    public static let overheat = AlarmRule.range(
        RangeRule(
            id: "pump-overheat", devices: .product("pump"), signal: "temp", max: 80, alarmWhen: .outside,
            severity: .major, debounce: .duration(millis: 60_000), hysteresis: 2))

    /// A pump whose flow sensor has sent nothing for 5 minutes.
    public static func noFlowData(pump: String) -> AlarmRule {
        .joint(
            JointRule(
                id: "\(pump)-no-flow-data",
                parameters: [
                    .init(
                        name: "samples", device: pump, signal: "flow", window: .duration(millis: 300_000),
                        reducer: .count)
                ], severity: .warning, evaluationIntervalMillis: 10_000
            ) { p in p["samples"]! == 0 })
    }
}
