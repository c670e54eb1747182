import Foundation
import IoTTestSupport
import IoTTesting
import Testing

/// Issue 23, item 4, end to end: `iotd serve` with an email channel to a real SMTP server (aiosmtpd). A report
/// defined through the API is run and delivered through the notification outbox as an HTML email with its CSV
/// files attached, and downloaded from the API; after a restart the report is still scheduled and its run kept.
@Suite(.serialized) struct IotdReportTests {
    @Test func aReportIsEmailedWithItsCSVFilesAndKeptAcrossARestart() async throws {
        try await onOwnThread {
            let smtpPort = ChildProcess.freeLoopbackPort()
            let smtp = try Peer.smtp(port: smtpPort)
            defer { smtp.stop() }
            let iotd = IotdProcess("iotd-report")
            try iotd.configure(
                iotd.preamble() + """
                    outbound: { allow: ["127.0.0.1"] }
                    notifications:
                      channels:
                        - { name: mail, type: email, url: "smtp://127.0.0.1:\(smtpPort)", from: iot@example.com }
                    tenants:
                      - id: plant
                        products: [{ id: pump, signals: [{ name: temp, unit: "°C" }, { name: rpm }] }]
                        devices: [{ uid: pump-1, product: pump }, { uid: pump-2, product: pump }]
                    """)
            try iotd.start()
            defer { iotd.stop() }
            for (uid, body) in [
                ("pump-1", #"{"temp": 40, "rpm": 1500}"#), ("pump-1", #"{"temp": 50}"#), ("pump-2", #"{"rpm": 900}"#),
            ] {
                let token = try iotd.issueToken(tenant: "plant", device: uid)
                let r = try LoopbackHTTPClient(port: iotd.httpPort).request(
                    "POST", "/api/v1/devices/\(uid)/telemetry",
                    headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                    body: Array(body.utf8))
                #expect(r.status == 200, "\(r.text)")
            }
            let report = #"""
                {"id": "shift", "title": "Pumps, per shift", "cron": "0 */8 * * *", "periodMillis": 28800000,
                 "devices": ["pump-1", "pump-2"], "recipients": [{"channel": "mail", "to": "ops@example.com"}]}
                """#
            let added = try iotd.api("POST", "/api/v1/tenants/plant/reports", report)
            #expect(added.status == 201, "\(added.text)")
            #expect(
                try Self.within(10) {
                    try iotd.api("GET", "/api/v1/tenants/plant/devices/pump-1/latest").text.contains(#""value":50"#)
                }, "the points are committed")
            let ran = try iotd.api("POST", "/api/v1/tenants/plant/reports/shift/run?deliver=true")
            #expect(ran.status == 201, "\(ran.text)")
            let run = try #require(try JSONSerialization.jsonObject(with: Data(ran.text.utf8)) as? [String: Any])
            let to = try #require((run["to"] as? NSNumber)?.int64Value)

            #expect(smtp.waitForRecords(20) { $0.count == 1 }, "the email reached the SMTP server")
            let mail = try #require(smtp.records.first)
            #expect(mail["to"] as? [String] == ["ops@example.com"])
            #expect((mail["subject"] as? String)?.hasPrefix("Pumps, per shift · ") == true, "\(mail)")
            #expect(mail["content_type"] as? String == "multipart/mixed")
            let parts = try #require(mail["parts"] as? [[String: Any]])
            #expect(parts.map { $0["filename"] as? String } == [nil, "summary.csv", "alarms.csv"], "\(parts)")
            #expect((parts.first?["text"] as? String)?.contains("<h1>Pumps, per shift</h1>") == true)
            let summary = parts[1]["text"] as? String
            #expect(
                summary == "device,signal,unit,count,mean,min,max\npump-1,rpm,,1.0,1500.0,1500.0,1500.0\n"
                    + "pump-1,temp,°C,2.0,45.0,40.0,50.0\npump-2,rpm,,1.0,900.0,900.0,900.0\npump-2,temp,°C,0,,,\n",
                "\(summary ?? "")")
            let download = try iotd.api("GET", "/api/v1/tenants/plant/reports/shift/runs/\(to)/summary.csv")
            #expect(download.text == summary, "the kept run is what was sent")
            #expect(
                try Self.within(10) {
                    try iotd.api("GET", "/api/v1/tenants/plant/notifications/outbox?status=delivered").text
                        .contains("report-shift-\(to)-0")
                }, "the outbox marks it delivered")

            iotd.stop()
            try iotd.start()
            let listed = try iotd.api("GET", "/api/v1/tenants/plant/reports")
            #expect(listed.text.contains(#""id":"shift""#) && listed.text.contains("nextFire"), "\(listed.text)")
            let runs = try iotd.api("GET", "/api/v1/tenants/plant/reports/shift/runs")
            #expect(runs.text.contains(#""to":\#(to)"#), "\(runs.text)")
        }
    }

    /// Polls `condition` every 100 ms for up to `seconds`.
    static func within(_ seconds: Double, _ condition: () throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(100_000)
        }
        return try condition()
    }
}
