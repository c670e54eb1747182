import IoTCore
import IoTRules
import IoTTesting
import Testing

/// Issue 17: numbers from outside at 0, negative, Int64.max and Int64.min are refused by `validate()` with the
/// field's name, and the engine's time arithmetic cannot trap on what gets past it (a device's push interval,
/// a device time from a script).
@Suite("Extreme values")
struct ExtremeValueTests {
    static let extremes: [Int64] = [0, -1, .max, .min]

    @Test func saturatingArithmeticAtTheExtremes() {
        #expect(Int64.max.saturatingAdd(1) == .max)
        #expect(Int64.min.saturatingAdd(-1) == .min)
        #expect(Int64.max.saturatingAdd(.max) == .max)
        #expect(Int64.min.saturatingSubtract(1) == .min)
        #expect(Int64.max.saturatingSubtract(-1) == .max)
        #expect(Int64(0).saturatingSubtract(.min) == .max)
        #expect(Int64(5).saturatingAdd(-7) == -2)
        #expect(Int64(5).saturatingSubtract(7) == -2)
    }

    @Test(arguments: extremes)
    func offlineRuleNumbersOutsideTheirRangeAreRefused(value: Int64) async throws {
        let interval = OfflineRule(id: "o", devices: .device("d"), intervalMillis: value)
        #expect(throws: IoTError.self) { try interval.validate() }
        let tolerance = OfflineRule(id: "o", devices: .device("d"), intervalMillis: 1_000, toleranceMillis: value)
        if value == 0 {
            try tolerance.validate()
        } else {
            let error = try #require(throws: IoTError.self) { try tolerance.validate() }
            #expect(error.code == .invalidArgument && error.message.contains("toleranceMillis"), "\(error)")
        }
        // The engine refuses it too, whoever calls it.
        let h = RuleHarness()
        await #expect(throws: IoTError.self) { try await h.add(.offline(interval)) }
    }

    @Test(arguments: extremes)
    func rangeAndJointNumbersOutsideTheirRangeAreRefused(value: Int64) throws {
        let debounce = RangeRule(
            id: "r", devices: .device("d"), signal: "s", max: 1, debounce: .duration(millis: value))
        if value == 0 { try debounce.validate() } else { #expect(throws: IoTError.self) { try debounce.validate() } }
        let joint = JointRule(
            id: "j",
            parameters: [.init(name: "a", device: "d", signal: "s", window: .duration(millis: value), reducer: .mean)],
            severity: .major, evaluationIntervalMillis: value
        ) { _ in false }
        #expect(throws: IoTError.self) { try joint.validate() }
        let count = RangeRule(id: "r", devices: .device("d"), signal: "s", max: 1, debounce: .count(Int(value)))
        #expect(throws: IoTError.self) { try count.validate() }
    }

    @Test func aPushIntervalOfInt64MaxMeansNeverAndDoesNotTrap() async throws {
        let h = RuleHarness()
        await h.register(Device(uid: "m", product: "meter", pushIntervalMillis: .max))
        try await h.add(
            .offline(
                OfflineRule(id: "offline", devices: .product("meter"), toleranceMillis: IoTLimits.maxDurationMillis)))
        await h.feed(device: "m", signal: "kwh", 1)
        await h.advance(byMillis: IoTLimits.maxDurationMillis)
        #expect(await h.events.isEmpty)
    }

    @Test func deviceTimesAtTheEndsOfInt64DoNotTrap() async throws {
        let h = RuleHarness()
        try await h.add(
            .range(
                RangeRule(id: "hot", devices: .device("d"), signal: "t", max: 10, debounce: .duration(millis: 60_000))))
        await h.feed(device: "d", signal: "t", 20, at: .max)
        await h.feed(device: "d", signal: "t", 20, at: .min)
        await h.feed(device: "d", signal: "t", 20, at: .max)
        await h.advance(byMillis: 120_000)
        #expect(await h.events.count <= 1)
    }
}
