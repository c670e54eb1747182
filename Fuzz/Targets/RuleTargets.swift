import IoTCore
import IoTRules

extension FuzzTarget {
    /// The cron parser. The bytes are an expression (UTF-8, invalid bytes replaced); a valid one is asked for
    /// its next three fires after 2024-03-30 23:59:59.5 UTC, in UTC and in Europe/Berlin (whose clocks go
    /// forward that night), each of which must be later than the last.
    public static func fuzzCron(_ data: [UInt8]) {
        guard let cron = try? CronExpression(String(decoding: data, as: UTF8.self)) else { return }
        for zone in CronZones.all {
            var after: Int64 = 1_711_843_199_500
            for _ in 0..<3 {
                guard let next = cron.next(after: after, in: zone) else { break }
                precondition(next > after, "'\(cron)' in \(zone): next(after: \(after)) is \(next)")
                precondition(next % 1000 == 0, "'\(cron)' in \(zone): \(next) is not on a whole second")
                after = next
            }
        }
    }

    /// The `${}` template parser. The bytes are a template (UTF-8, invalid bytes replaced); a valid one is
    /// rendered with some of its variables set, escaped and not, and checked against the alarm variables; the
    /// same text is also tried as each part of a notification template.
    public static func fuzzTemplate(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        if let template = try? Template(text) {
            var values: [String: String] = ["device_name": "pump-1", "value": "${value}"]
            for (i, name) in template.variables.enumerated() where i % 2 == 0 { values[name] = "v\(i)$${" }
            _ = template.render(values)
            _ = template.render(values) { "<\($0)>" }
            _ = try? template.validate(known: TemplateKind.alarmVariables)
        }
        let values = ["device_name": "pump-1", "alert_type": "overheat"]
        for template in [
            try? NotificationTemplate(id: "fuzz", kind: .alarmRaised, subject: text, body: "b"),
            try? NotificationTemplate(id: "fuzz", kind: .deviceOffline, body: text, markdown: text),
        ] {
            guard let template else { continue }
            for format in [TemplateFormat.plain, .subjectAndBody, .markdown] {
                _ = template.render(for: format, values: values)
            }
        }
    }
}

/// The zones cron expressions are read in.
private enum CronZones {
    static let all: [CronTimeZone] = [
        .utc, CronTimeZone(identifier: "Europe/Berlin") ?? CronTimeZone(offsetSeconds: 3_600),
    ]
}
