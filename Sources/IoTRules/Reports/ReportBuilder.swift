public import IoTCore

/// Makes a ``Report`` from the stores: each device's signals aggregated over the period (`summary.csv`), per
/// bucket when asked (`series.csv`), the alarms started in the period (`alarms.csv`), and an HTML document that
/// shows them. Aggregates come from ``IoTCore/PointStore/aggregate(_:series:from:to:bucketMillis:)``, which the
/// SQLite store answers from its rollups.
public struct ReportBuilder: Sendable {
    let points: any PointStore
    let registry: any RegistryStore
    let alarms: (any RuleStateStore)?

    /// Alarms listed in the HTML document; `alarms.csv` has them all.
    static let alarmsShown = 100

    /// Reads points and devices from `points` and `registry`, alarms from `alarms` (`nil`: a report shows none).
    public init(points: any PointStore, registry: any RegistryStore, alarms: (any RuleStateStore)?) {
        self.points = points
        self.registry = registry
        self.alarms = alarms
    }

    /// Runs `definition` over `[from, to)` for `tenant`.
    ///
    /// - Throws: the stores' errors.
    public func build(
        _ definition: ReportDefinition, tenant: TenantID, from: Int64, to: Int64, now: Int64
    ) async throws -> Report {
        let scope = AccessScope.tenant(tenant)
        var rows: [SummaryRow] = []
        var missing: [String] = []
        var series = "device,signal,start,end," + definition.aggregates.map(\.rawValue).joined(separator: ",") + "\n"
        // Read once per product in a run: a report over many devices of one product reads it once.
        var products: [ProductID: Product?] = [:]
        for uid in definition.devices {
            guard let device = try await registry.device(scope, uid: uid) else {
                missing.append(uid)
                continue
            }
            if products[device.product] == nil {
                products[device.product] = .some(try await registry.product(scope, id: device.product))
            }
            let declared = device.effectiveSignals(product: products[device.product] ?? nil)
            let names = definition.signals.isEmpty ? declared.keys.sorted() : definition.signals
            for signal in names {
                let key = SeriesKey(device: uid, signal: signal)
                let whole = try await points.aggregate(scope, series: key, from: from, to: to, bucketMillis: nil)
                rows.append(SummaryRow(device: uid, signal: signal, unit: declared[signal]?.unit, bucket: whole.first))
                if let width = definition.bucketMillis {
                    for b in try await points.aggregate(scope, series: key, from: from, to: to, bucketMillis: width) {
                        let values = definition.aggregates.map { CSV.field($0.value(of: b)) }
                        series +=
                            ([CSV.text(uid), CSV.text(signal), String(b.start), String(b.end)] + values)
                            .joined(separator: ",") + "\n"
                    }
                }
            }
        }
        var found: [Alarm] = []
        if definition.alarms, let alarms {
            let devices = Set(definition.devices)
            found = try await alarms.alarms(scope, query: AlarmQuery(from: from, to: to))
                .filter { devices.contains($0.originator) }
        }

        var summary = "device,signal,unit," + definition.aggregates.map(\.rawValue).joined(separator: ",") + "\n"
        for row in rows {
            let values = definition.aggregates.map { a in
                row.bucket.map { CSV.field(a.value(of: $0)) } ?? (a == .count ? "0" : "")
            }
            summary +=
                ([CSV.text(row.device), CSV.text(row.signal), CSV.text(row.unit)] + values)
                .joined(separator: ",") + "\n"
        }
        var attachments = [Self.csv("summary.csv", summary)]
        if definition.bucketMillis != nil { attachments.append(Self.csv("series.csv", series)) }
        if definition.alarms { attachments.append(Self.csv("alarms.csv", CSV.alarms(found))) }
        let html = Self.html(
            definition, tenant: tenant, from: from, to: to, now: now, rows: rows, missing: missing, alarms: found,
            files: attachments.map(\.name))
        return Report(
            definitionID: definition.id, title: definition.title, from: from, to: to, generatedAt: now, html: html,
            attachments: attachments)
    }

    struct SummaryRow {
        var device: String
        var signal: String
        var unit: String?
        var bucket: AggregateBucket?
    }

    static func csv(_ name: String, _ text: String) -> NotificationAttachment {
        NotificationAttachment(name: name, contentType: "text/csv; charset=utf-8", data: Array(text.utf8))
    }

    // MARK: - The document

    static func html(
        _ d: ReportDefinition, tenant: TenantID, from: Int64, to: Int64, now: Int64, rows: [SummaryRow],
        missing: [String], alarms: [Alarm], files: [String]
    ) -> String {
        var h = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(d.title))</title>
            <style>body{font:14px system-ui,sans-serif;color:#1b2330;margin:24px}table{border-collapse:collapse;margin:8px 0 20px}
            th,td{border:1px solid #d5dbe5;padding:4px 8px;text-align:left}th{background:#f0f3f8}td.n{text-align:right}
            .muted{color:#667085}</style></head><body>
            <h1>\(escape(d.title))</h1>
            <p class="muted">Tenant \(escape(tenant.rawValue)) · \(timestamp(from)) to \(timestamp(to)) (UTC) · made \(timestamp(now))</p>

            """
        h += "<h2>Signals</h2>\n<table><tr><th>Device</th><th>Signal</th>"
        h += d.aggregates.map { "<th>\($0.rawValue)</th>" }.joined() + "</tr>\n"
        for row in rows {
            h +=
                "<tr><td>\(escape(row.device))</td><td>\(escape(row.signal))\(row.unit.map { " (" + escape($0) + ")" } ?? "")</td>"
            for a in d.aggregates {
                let value = row.bucket.flatMap { a.value(of: $0) } ?? (a == .count ? .number(0) : nil)
                h += "<td class=\"n\">\(value.map(show) ?? "—")</td>"
            }
            h += "</tr>\n"
        }
        h += "</table>\n"
        if !missing.isEmpty {
            h += "<p class=\"muted\">Not found: \(missing.map(escape).joined(separator: ", "))</p>\n"
        }
        if d.alarms {
            var bySeverity: [String: Int] = [:]
            for a in alarms { bySeverity[a.severity.rawValue, default: 0] += 1 }
            h += "<h2>Alarms (\(alarms.count))</h2>\n"
            if !alarms.isEmpty {
                h +=
                    "<p>"
                    + bySeverity.sorted { $0.key < $1.key }.map { "\(escape($0.key)): \($0.value)" }
                    .joined(separator: " · ") + "</p>\n"
                h +=
                    "<table><tr><th>Started</th><th>Severity</th><th>Rule</th><th>Device</th><th>Value</th><th>State</th></tr>\n"
                for a in alarms.prefix(alarmsShown) {
                    let state = (a.active ? "active" : "cleared") + (a.acknowledged ? ", acknowledged" : "")
                    h += "<tr><td>\(timestamp(a.startTime))</td><td>\(escape(a.severity.rawValue))</td>"
                    h += "<td>\(escape(a.ruleID))</td><td>\(escape(a.originator))</td>"
                    h += "<td class=\"n\">\(a.lastValue.map(show) ?? "—")</td><td>\(state)</td></tr>\n"
                }
                h += "</table>\n"
                if alarms.count > alarmsShown {
                    h +=
                        "<p class=\"muted\">The first \(alarmsShown) of \(alarms.count); alarms.csv has them all.</p>\n"
                }
            }
        }
        h += "<p class=\"muted\">Attached: \(files.map(escape).joined(separator: ", ")).</p>\n</body></html>\n"
        return h
    }

    /// Text safe inside HTML elements and attribute values.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    static func show(_ value: SignalValue) -> String {
        switch value {
        case .number(let v):
            let rounded = (v * 1_000).rounded() / 1_000
            return rounded == rounded.rounded() && abs(rounded) < 1e15 ? String(Int64(rounded)) : String(rounded)
        case .bool(let b): return String(b)
        case .text(let t): return escape(t)
        }
    }

    /// `2026-12-06 05:00:00` (UTC).
    static func timestamp(_ millis: Int64) -> String {
        let seconds = Civil.floorDiv(millis, 1_000)
        let days = Civil.floorDiv(seconds, 86_400)
        let (y, m, d) = Civil.date(days: Int(days))
        let s = Int(seconds - days * 86_400)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(y)-\(two(m))-\(two(d)) \(two(s / 3_600)):\(two(s / 60 % 60)):\(two(s % 60))"
    }
}
