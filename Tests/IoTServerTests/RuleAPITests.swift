import Foundation
import HTTPTypes
import HummingbirdTesting
import IoTCore
import IoTRules
import IoTServer
import Testing

/// Alarm rules, alarms and statistics jobs managed through the API at run time.
@Suite struct RuleAPITests {
    static let rangeRule = #"""
        {"kind": "range", "id": "overheat", "devices": {"device": "t-1"}, "signal": "temp", "max": 80,
         "alarmWhen": "outside", "severity": "major", "debounce": {"count": 1}, "hysteresis": 2}
        """#

    /// Polls `GET uri` until `done` holds for its JSON list (the engine sees points after the commit).
    func waitForList(
        _ c: APIClient, _ uri: String, sourceLocation: SourceLocation = #_sourceLocation,
        until done: ([[String: Any]]) -> Bool
    ) async throws -> [[String: Any]] {
        for _ in 0..<2_000 {
            let list = try await c.json(uri, sourceLocation: sourceLocation) as? [[String: Any]] ?? []
            if done(list) { return list }
            try await Task.sleep(for: .milliseconds(5))
        }
        Issue.record("\(uri) never reached the expected state", sourceLocation: sourceLocation)
        return []
    }

    @Test func aRangeRuleAddedThroughTheAPIRaisesAnAlarmThatIsAcknowledgedAndCleared() async throws {
        let h = try await ServerHarness(rules: true)
        try await h.api { c in
            try await h.seed(c)
            let added = try await c.send(.post, "/api/v1/tenants/acme/rules", Self.rangeRule)
            #expect(added.status == .created, "\(added.text)")
            #expect(added.object["kind"] as? String == "range" && added.object["id"] as? String == "overheat")
            let rules = try await c.json("/api/v1/tenants/acme/rules") as? [[String: Any]]
            #expect(rules?.map { $0["id"] as? String } == ["overheat"])

            let issued = try await c.send(.post, "/api/v1/tenants/acme/devices/t-1/tokens", #"{"label": "primary"}"#)
            let token = try #require(issued.object["token"] as? String)
            #expect(try await h.deviceSend(token: token, #"{"temp": 21}"#) == .ok)
            #expect(try await h.deviceSend(token: token, #"{"temp": 91.5}"#) == .ok)

            let open = try await waitForList(c, "/api/v1/tenants/acme/alarms?open=true") { !$0.isEmpty }
            #expect(open.count == 1)
            let alarm = try #require(open.first)
            let id = try #require(alarm["id"] as? String)
            #expect(alarm["ruleID"] as? String == "overheat" && alarm["originator"] as? String == "t-1")
            #expect(alarm["active"] as? Bool == true && alarm["acknowledged"] as? Bool == false)
            #expect(alarm["lastValue"] as? Double == 91.5)
            #expect((try await c.json("/api/v1/tenants/acme/alarms/\(id)") as? [String: Any])?["id"] as? String == id)
            #expect((try await c.json("/api/v1/tenants/acme/alarms?ruleID=other") as? [Any])?.isEmpty == true)

            let acked = try await c.send(.post, "/api/v1/tenants/acme/alarms/\(id)/ack")
            #expect(
                acked.status == .ok && acked.object["acknowledged"] as? Bool == true
                    && acked.object["open"] as? Bool == true)
            let cleared = try await c.send(.post, "/api/v1/tenants/acme/alarms/\(id)/clear")
            #expect(
                cleared.status == .ok && cleared.object["active"] as? Bool == false
                    && cleared.object["open"] as? Bool == false)

            #expect((try await c.json("/api/v1/tenants/acme/alarms?open=true") as? [Any])?.isEmpty == true)
            let closed =
                try await c.json("/api/v1/tenants/acme/alarms?open=false&originator=t-1&limit=10") as? [[String: Any]]
            #expect(closed?.map { $0["id"] as? String } == [id])
            // Issue 23, item 5: the same listing as CSV.
            let csv = try await c.get("/api/v1/tenants/acme/alarms?originator=t-1&format=csv")
            #expect(csv.status == .ok && csv.headers[.contentType]?.hasPrefix("text/csv") == true)
            #expect(csv.headers[.contentDisposition] == "attachment; filename=\"acme-alarms.csv\"")
            let rows = csv.text.split(separator: "\n").map {
                $0.split(separator: ",", omittingEmptySubsequences: false)
            }
            #expect(
                rows.first?.prefix(4) == ["id", "ruleID", "originator", "severity"] && rows.count == 2, "\(csv.text)")
            let row = rows.last ?? []
            #expect(row.count == 13 && row.first.map(String.init) == id, "\(csv.text)")
            #expect(row.dropFirst(1).prefix(3) == ["overheat", "t-1", "major"] && row[11] == "91.5", "\(csv.text)")
            #expect(row[4] == "false" && row[5] == "true" && row[6] == "false", "cleared and acknowledged: \(csv.text)")
            #expect(try await c.get("/api/v1/tenants/acme/alarms?format=xml").status == .badRequest)
            #expect(try await c.send(.post, "/api/v1/tenants/acme/alarms/nope/ack").status == .notFound)
            #expect(try await c.send(.post, "/api/v1/tenants/acme/alarms/nope/clear").status == .notFound)
            #expect(try await c.get("/api/v1/tenants/acme/alarms/nope").status == .notFound)
            #expect(try await c.get("/api/v1/tenants/acme/alarms?open=maybe").status == .badRequest)
            #expect(try await c.get("/api/v1/tenants/acme/alarms?limit=0").status == .badRequest)
        }
        await h.stop()
    }

    @Test func rulesAreReplacedReadAndDeleted() async throws {
        let h = try await ServerHarness(rules: true)
        try await h.api { c in
            try await h.seed(c)
            #expect(try await c.send(.post, "/api/v1/tenants/acme/rules", Self.rangeRule).status == .created)
            let offline =
                #"{"kind": "offline", "id": "silent", "devices": {"product": "thermo"}, "intervalMillis": 60000, "toleranceMillis": 0, "severity": "minor"}"#
            #expect(try await c.send(.post, "/api/v1/tenants/acme/rules", offline).status == .created)
            let replaced = Self.rangeRule.replacingOccurrences(of: #""max": 80"#, with: #""max": 95"#)
            #expect(try await c.send(.post, "/api/v1/tenants/acme/rules", replaced).status == .created)
            let one = try await c.json("/api/v1/tenants/acme/rules/overheat") as? [String: Any]
            #expect(one?["max"] as? Double == 95)
            #expect(
                (try await c.json("/api/v1/tenants/acme/rules") as? [[String: Any]])?.map { $0["id"] as? String } == [
                    "overheat", "silent",
                ])
            #expect(try await c.send(.delete, "/api/v1/tenants/acme/rules/overheat").status == .noContent)
            #expect(try await c.send(.delete, "/api/v1/tenants/acme/rules/overheat").status == .notFound)
            #expect(try await c.get("/api/v1/tenants/acme/rules/overheat").status == .notFound)
            #expect(
                (try await c.json("/api/v1/tenants/acme/rules") as? [[String: Any]])?.map { $0["id"] as? String } == [
                    "silent"
                ])
            #expect(try await c.get("/api/v1/tenants/nope/rules").status == .notFound)
        }
        await h.stop()
    }

    @Test func badRulesAreRefusedWith400() async throws {
        let h = try await ServerHarness(rules: true)
        try await h.api { c in
            try await h.seed(c)
            let joint =
                #"{"kind": "joint", "id": "j", "parameters": [{"name": "t", "device": "t-1", "signal": "temp", "window": {"count": 1}, "reducer": "last"}], "severity": "major"}"#
            let noScript = try await c.send(.post, "/api/v1/tenants/acme/rules", joint)
            #expect(noScript.status == .badRequest && noScript.errorCode == "invalid_argument")
            #expect(noScript.text.contains("script condition"), "\(noScript.text)")
            let closure = joint.replacingOccurrences(
                of: #""severity""#, with: #""condition": {"closure": true}, "severity""#)
            #expect(try await c.send(.post, "/api/v1/tenants/acme/rules", closure).status == .badRequest)
            let unknownLanguage = joint.replacingOccurrences(
                of: #""severity""#, with: #""condition": {"language": "cobol", "source": "x"}, "severity""#)
            let script = try await c.send(.post, "/api/v1/tenants/acme/rules", unknownLanguage)
            #expect(script.status == .badRequest && script.text.contains("cobol"), "\(script.text)")

            let garbage = try await c.send(.post, "/api/v1/tenants/acme/rules", #"{"kind": "range", "id": "#)
            #expect(garbage.status == .badRequest && garbage.errorCode == "invalid_argument")
            let kind = try await c.send(.post, "/api/v1/tenants/acme/rules", #"{"kind": "psychic", "id": "x"}"#)
            #expect(kind.status == .badRequest && kind.text.contains("psychic"))
            let missing = try await c.send(.post, "/api/v1/tenants/acme/rules", #"{"kind": "range", "id": "x"}"#)
            #expect(missing.status == .badRequest && missing.text.contains("devices"), "\(missing.text)")
            let noBounds = Self.rangeRule.replacingOccurrences(of: #""max": 80,"#, with: "")
            #expect(try await c.send(.post, "/api/v1/tenants/acme/rules", noBounds).status == .badRequest)
            let badID = Self.rangeRule.replacingOccurrences(of: #""id": "overheat""#, with: #""id": "a b""#)
            #expect(try await c.send(.post, "/api/v1/tenants/acme/rules", badID).status == .badRequest)
            #expect((try await c.json("/api/v1/tenants/acme/rules") as? [Any])?.isEmpty == true)
        }
        await h.stop()
    }

    /// Issue 19, item 5: deleting a tenant takes its rules out of the engine and its jobs out of the scheduler, so
    /// nothing of it keeps running (or writes into a new file) afterwards.
    @Test func deletingATenantStopsItsRulesAndJobs() async throws {
        let h = try await ServerHarness(rules: true)
        try await h.api { c in
            try await h.seed(c)
            #expect(try await c.send(.post, "/api/v1/tenants/acme/rules", Self.rangeRule).status == .created)
            let job = #"""
                {"id": "hourly", "cron": "0 * * * *", "timeZone": "UTC", "leadMillis": 3600000,
                 "parameters": [{"name": "n", "device": "t-1", "signal": "temp", "reducer": "count"}],
                 "catchUp": {"policy": "none"}}
                """#
            #expect(try await c.send(.post, "/api/v1/tenants/acme/statistics/jobs", job).status == .created)
            #expect(await h.engine?.rules(tenant: "acme").count == 1)
            #expect(try await c.send(.delete, "/api/v1/tenants/acme").status == .noContent)
            #expect(await h.engine?.rules(tenant: "acme").isEmpty == true, "the rule is out of the engine")
            #expect(await h.scheduler?.jobs(tenant: "acme").isEmpty == true, "the job is out of the scheduler")
            #expect(try await c.send(.get, "/api/v1/tenants/acme").status == .notFound)
        }
        await h.stop()
    }

    @Test func statisticsJobsAreAddedRunAndTheirResultsListed() async throws {
        let h = try await ServerHarness(rules: true)
        try await h.api { c in
            try await h.seed(c)
            let job = #"""
                {"id": "hourly", "cron": "0 * * * *", "timeZone": "UTC", "leadMillis": 3600000,
                 "parameters": [{"name": "peak", "device": "t-1", "signal": "temp", "reducer": "max"},
                                {"name": "n", "device": "t-1", "signal": "temp", "reducer": "count"}],
                 "catchUp": {"policy": "none"}}
                """#
            let added = try await c.send(.post, "/api/v1/tenants/acme/statistics/jobs", job)
            #expect(added.status == .created, "\(added.text)")
            #expect(added.object["cron"] as? String == "0 * * * *")
            let jobs = try await c.json("/api/v1/tenants/acme/statistics/jobs") as? [[String: Any]]
            #expect(jobs?.map { $0["id"] as? String } == ["hourly"])

            let issued = try await c.send(.post, "/api/v1/tenants/acme/devices/t-1/tokens", #"{"label": "primary"}"#)
            let token = try #require(issued.object["token"] as? String)
            #expect(try await h.deviceSend(token: token, #"{"temp": 20}"#) == .ok)
            #expect(try await h.deviceSend(token: token, #"{"temp": 24}"#) == .ok)
            try await h.drain()
            let fire = Int64(Date().timeIntervalSince1970 * 1000) + 60_000
            let scheduler = try #require(h.scheduler)
            var result = try await scheduler.runFire(jobID: "hourly", tenant: "acme", fireTime: fire)
            for _ in 0..<400 where result.values["n"] != .number(2) {  // the last commit may still be landing
                try await Task.sleep(for: .milliseconds(5))
                result = try await scheduler.runFire(jobID: "hourly", tenant: "acme", fireTime: fire)
            }

            let results =
                try await c.json("/api/v1/tenants/acme/statistics/jobs/hourly/results?from=0") as? [[String: Any]]
            #expect(results?.count == 1)
            #expect((results?.first?["fireTime"] as? NSNumber)?.int64Value == fire)
            let values = results?.first?["values"] as? [String: Any]
            #expect(values?["peak"] as? Double == 24 && values?["n"] as? Double == 2)
            let csv = try await c.get("/api/v1/tenants/acme/statistics/jobs/hourly/results?format=csv")
            #expect(
                csv.text
                    == "jobID,fireTime,windowStart,windowEnd,n,peak\nhourly,\(fire),\(result.windowStart),\(result.windowEnd),2.0,24.0\n",
                "\(csv.text)")
            #expect(
                try await c.get("/api/v1/tenants/acme/statistics/jobs/hourly/results?format=lp").status == .badRequest)
            #expect(
                (try await c.json("/api/v1/tenants/acme/statistics/jobs/hourly/results?to=\(fire)") as? [Any])?.isEmpty
                    == true)
            #expect(try await c.get("/api/v1/tenants/acme/statistics/jobs/hourly/results?from=x").status == .badRequest)

            let closure = job.replacingOccurrences(
                of: #""catchUp""#, with: #""calculation": {"closure": true}, "catchUp""#)
            #expect(try await c.send(.post, "/api/v1/tenants/acme/statistics/jobs", closure).status == .badRequest)
            let badCron = job.replacingOccurrences(of: "0 * * * *", with: "every hour")
            #expect(try await c.send(.post, "/api/v1/tenants/acme/statistics/jobs", badCron).status == .badRequest)

            #expect(try await c.send(.delete, "/api/v1/tenants/acme/statistics/jobs/hourly").status == .noContent)
            #expect(try await c.send(.delete, "/api/v1/tenants/acme/statistics/jobs/hourly").status == .notFound)
            #expect((try await c.json("/api/v1/tenants/acme/statistics/jobs") as? [Any])?.isEmpty == true)
            // results outlive their job
            #expect((try await c.json("/api/v1/tenants/acme/statistics/jobs/hourly/results") as? [Any])?.count == 1)
        }
        await h.stop()
    }

    @Test func rulesAndJobsAddedInCodeWithClosuresAreListedWithoutTheirClosure() async throws {
        let h = try await ServerHarness(rules: true)
        let engine = try #require(h.engine)
        let scheduler = try #require(h.scheduler)
        try await h.api { c in
            try await h.seed(c)
            let rule = JointRule(id: "both", parameters: [.init(name: "t", device: "t-1", signal: "temp")]) { p in
                (p["t"] ?? nil).map { $0 > 30 } ?? false
            }
            try await engine.add(.joint(rule), tenant: "acme")
            let job = StatisticsJob(
                id: "daily", cron: try CronExpression("0 0 * * *"), leadMillis: 86_400_000,
                parameters: [.init(name: "m", device: "t-1", signal: "temp", reducer: .mean)]
            ) { p in ["m": .number((p["m"] ?? nil) ?? 0)] }
            try await scheduler.add(job, tenant: "acme")

            let rules = try await c.json("/api/v1/tenants/acme/rules") as? [[String: Any]]
            #expect(rules?.first?["kind"] as? String == "joint")
            #expect((rules?.first?["condition"] as? [String: Any])?["closure"] as? Bool == true)
            let jobs = try await c.json("/api/v1/tenants/acme/statistics/jobs") as? [[String: Any]]
            #expect(jobs?.first?["id"] as? String == "daily" && jobs?.first?["cron"] as? String == "0 0 * * *")
            #expect((jobs?.first?["calculation"] as? [String: Any])?["closure"] as? Bool == true)
            #expect(try await c.get("/api/v1/tenants/acme/statistics/jobs/daily").status == .ok)
        }
        await h.stop()
    }

    @Test func theEndpointsAnswer404WhenNotConfigured() async throws {
        let h = try await ServerHarness()
        try await h.api { c in
            try await h.seed(c)
            for (method, uri): (HTTPRequest.Method, String) in [
                (.get, "/api/v1/tenants/acme/rules"), (.post, "/api/v1/tenants/acme/rules"),
                (.delete, "/api/v1/tenants/acme/rules/x"), (.get, "/api/v1/tenants/acme/alarms"),
                (.get, "/api/v1/tenants/acme/alarms/x"), (.post, "/api/v1/tenants/acme/alarms/x/ack"),
                (.get, "/api/v1/tenants/acme/statistics/jobs"), (.post, "/api/v1/tenants/acme/statistics/jobs"),
                (.get, "/api/v1/tenants/acme/statistics/jobs/x/results"),
            ] {
                let r = try await c.send(method, uri, method == .post ? Self.rangeRule : nil)
                #expect(r.status == .notFound && r.errorCode == "not_found", "\(method) \(uri): \(r.text)")
                #expect(r.text.contains("not configured"), "\(method) \(uri): \(r.text)")
            }
        }
        await h.stop()
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
