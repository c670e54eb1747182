import Foundation
import HTTPTypes
import HummingbirdTesting
import IoTCore
import IoTRules
import IoTServer
import IoTTesting
import Testing

/// Issue 23, item 4: scheduled reports per tenant: defined through the API (errors naming the field), run now
/// or on their cron, kept for download (the HTML document and its CSV files), and enqueued for their
/// recipients in the notification outbox with the files attached.
@Suite struct ReportTests {
    static let report = #"""
        {"id": "daily", "title": "Boiler <room>, daily", "cron": "0 6 * * *", "periodMillis": 86400000,
         "devices": ["t-1"], "signals": ["temp"], "aggregates": ["count", "mean", "min", "max"],
         "bucketMillis": 3600000, "recipients": [{"channel": "email", "to": "ops@example.com"}]}
        """#

    @Test func aReportIsDefinedRunKeptAndEnqueuedWithItsFiles() async throws {
        let h = try await ServerHarness(rules: true)
        let reports = try #require(h.reports)
        // The scheduler's clock at the wall time the ingestor stamps points with.
        h.clock.advance(to: Int64(Date().timeIntervalSince1970 * 1000))
        try await h.api { c in
            try await h.seed(c)
            let rule = #"""
                {"kind": "range", "id": "overheat", "devices": {"device": "t-1"}, "signal": "temp", "max": 80,
                 "alarmWhen": "outside", "severity": "major", "debounce": {"count": 1}, "hysteresis": 2}
                """#
            #expect(try await c.send(.post, "/api/v1/tenants/acme/rules", rule).status == .created)
            let token = try #require(
                try await c.send(.post, "/api/v1/tenants/acme/devices/t-1/tokens").object["token"] as? String)
            #expect(try await h.deviceSend(token: token, #"{"temp": 21}"#) == .ok)
            #expect(try await h.deviceSend(token: token, #"{"temp": 91.5}"#) == .ok)
            try await h.drain()
            for _ in 0..<200 where (try await c.json("/api/v1/tenants/acme/alarms") as? [Any])?.isEmpty != false {
                try await Task.sleep(for: .milliseconds(10))
            }

            // Refusals name the field.
            for (bad, field) in [
                (Self.report.replacingOccurrences(of: #""t-1""#, with: #""ghost""#), "devices[0]"),
                (Self.report.replacingOccurrences(of: "0 6 * * *", with: "0 25 * * *"), "cron"),
                (Self.report.replacingOccurrences(of: "86400000", with: "0"), "periodMillis"),
                (Self.report.replacingOccurrences(of: #""count", "#, with: #""median", "#), "aggregates"),
                (Self.report.replacingOccurrences(of: #""ops@example.com""#, with: #""""#), "recipients[0]"),
            ] {
                let r = try await c.send(.post, "/api/v1/tenants/acme/reports", bad)
                #expect(r.status == .badRequest && r.text.contains(field), "\(field): \(r.text)")
            }
            let added = try await c.send(.post, "/api/v1/tenants/acme/reports", Self.report)
            #expect(added.status == .created, "\(added.text)")
            let next = try #require((added.object["nextFire"] as? NSNumber)?.int64Value)
            #expect(next > h.clock.now() && next % 86_400_000 == 6 * 3_600_000, "the next 06:00 UTC")

            // Run now, delivered.
            let ran = try await c.send(.post, "/api/v1/tenants/acme/reports/daily/run?deliver=true")
            #expect(ran.status == .created, "\(ran.text)")
            #expect(ran.object["files"] as? [String] == ["summary.csv", "series.csv", "alarms.csv"])
            let to = try #require((ran.object["to"] as? NSNumber)?.int64Value)
            let summary = try await c.get("/api/v1/tenants/acme/reports/daily/runs/\(to)/summary.csv")
            #expect(summary.status == .ok && summary.headers[.contentType]?.hasPrefix("text/csv") == true)
            #expect(
                summary.text == "device,signal,unit,count,mean,min,max\nt-1,temp,°C,2.0,56.25,21.0,91.5\n",
                "\(summary.text)")
            let alarms = try await c.get("/api/v1/tenants/acme/reports/daily/runs/\(to)/alarms.csv")
            #expect(alarms.text.split(separator: "\n").count == 2 && alarms.text.contains(",overheat,t-1,major,"))
            let series = try await c.get("/api/v1/tenants/acme/reports/daily/runs/\(to)/series.csv")
            #expect(series.text.hasPrefix("device,signal,start,end,count,mean,min,max\nt-1,temp,"), "\(series.text)")
            let html = try await c.get("/api/v1/tenants/acme/reports/daily/runs/\(to)")
            #expect(html.headers[.contentType] == "text/html; charset=utf-8")
            #expect(html.text.contains("<h1>Boiler &lt;room&gt;, daily</h1>"), "escaped: \(html.text.prefix(600))")
            #expect(html.text.contains("<td>overheat</td>") && html.text.contains("91.5"))
            #expect(try await c.get("/api/v1/tenants/acme/reports/daily/runs/\(to)/nope.csv").status == .notFound)
            #expect(try await c.get("/api/v1/tenants/acme/reports/daily/runs/1").status == .notFound)

            let queued = try await h.outbox.messages(.tenant("acme"), status: .pending, limit: 10)
            #expect(queued.map(\.id) == ["report-daily-\(to)-0"])
            let message = try #require(queued.first)
            #expect(message.channel == "email" && message.recipient == "ops@example.com" && message.format == .html)
            #expect(message.attachments.map(\.name) == ["summary.csv", "series.csv", "alarms.csv"])
            #expect(message.attachments.first?.data == Array(summary.text.utf8))

            // On its cron: the next 06:00 runs the day before it, kept and enqueued once.
            h.clock.advance(to: next)
            await reports.runDue()
            await reports.runDue()
            let runs = try #require(try await c.json("/api/v1/tenants/acme/reports/daily/runs") as? [[String: Any]])
            #expect(runs.map { ($0["to"] as? NSNumber)?.int64Value } == [next, to], "newest first")
            #expect((runs.first?["from"] as? NSNumber)?.int64Value == next - 86_400_000)
            let all = try await h.outbox.messages(.tenant("acme"), status: .pending, limit: 10).map(\.id)
            #expect(all == ["report-daily-\(to)-0", "report-daily-\(next)-0"])
            #expect(
                (try await c.json("/api/v1/tenants/acme/reports") as? [[String: Any]])?.first?["id"] as? String
                    == "daily")

            #expect(try await c.send(.delete, "/api/v1/tenants/acme/reports/daily").status == .noContent)
            #expect(try await c.get("/api/v1/tenants/acme/reports/daily").status == .notFound)
            #expect(try await c.send(.post, "/api/v1/tenants/acme/reports/daily/run").status == .notFound)
        }
        await h.stop()
    }

    @Test func aRunKeepsOnlyTheNewestRuns() async throws {
        let h = try await ServerHarness(rules: true)
        try await h.api { c in
            try await h.seed(c)
            let kept = Self.report.replacingOccurrences(of: #""recipients""#, with: #""keepRuns": 2, "recipients""#)
            #expect(try await c.send(.post, "/api/v1/tenants/acme/reports", kept).status == .created)
            for to in [1_000_000, 2_000_000, 3_000_000] {
                #expect(try await c.send(.post, "/api/v1/tenants/acme/reports/daily/run?to=\(to)").status == .created)
            }
            let runs = try await c.json("/api/v1/tenants/acme/reports/daily/runs") as? [[String: Any]]
            #expect(runs?.map { ($0["to"] as? NSNumber)?.intValue } == [3_000_000, 2_000_000])
            #expect(try await h.outbox.messages(.tenant("acme"), status: .pending, limit: 10).isEmpty, "not delivered")
            #expect(
                try await c.send(.post, "/api/v1/tenants/acme/reports/daily/run?deliver=maybe").status == .badRequest)
        }
        await h.stop()
    }
}
