public import IoTCore

/// The template variables of an alarm event (see ``TemplateKind/alarmVariables``).
public enum AlarmVariables {
    /// The values for `event` about `device` (nil when unknown: its uid stands for its name).
    public static func values(_ event: AlarmEvent, device: Device?) -> [String: String] {
        let a = event.alarm
        let name = device.map { $0.name.isEmpty ? $0.uid : $0.name } ?? a.originator
        return [
            "tenant": event.tenant.rawValue,
            "alarm_id": a.id,
            "event": event.kind.rawValue,
            "rule_id": a.ruleID,
            "alert_type": a.ruleID,
            "severity": a.severity.rawValue,
            "device_uid": a.originator,
            "device_name": name,
            "device.uid": a.originator,
            "device.name": name,
            "device.product": device?.product.rawValue ?? "",
            "product": device?.product.rawValue ?? "",
            "timestamp": isoTimestamp(event.time),
            "timestamp_ms": String(event.time),
            "start_time": isoTimestamp(a.startTime),
            "current_value": a.lastValue?.description ?? "",
            "occurrences": String(a.occurrences),
            "details": a.details ?? "",
            "active": String(a.active),
            "acknowledged": String(a.acknowledged),
        ]
    }

    /// `2026-11-26T12:00:00.123Z` for UTC milliseconds.
    public static func isoTimestamp(_ millis: Int64) -> String {
        let days = Civil.floorDiv(millis, 86_400_000)
        let msOfDay = millis - days * 86_400_000
        let (y, m, d) = Civil.date(days: Int(days))
        func pad(_ v: Int64, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        let h = msOfDay / 3_600_000
        let mi = msOfDay / 60_000 % 60
        let s = msOfDay / 1000 % 60
        let ms = msOfDay % 1000
        return
            "\(pad(Int64(y), 4))-\(pad(Int64(m), 2))-\(pad(Int64(d), 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2)).\(pad(ms, 3))Z"
    }
}
