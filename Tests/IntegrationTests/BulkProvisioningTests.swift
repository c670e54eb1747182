import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 22, item 8: `POST /api/v1/tenants/{tenant}/devices/bulk` on `iotd serve` (SQLite): 10,000 devices with
/// their tokens in one call, each token good for ingest at once; all-or-nothing refusals that name the device.
/// (`iot-bench provision` measures the time.)
@Suite(.serialized) struct BulkProvisioningTests {
    @Test func tenThousandDevicesWithTheirTokensInOneCall() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-bulk")
            try iotd.configure(
                iotd.preamble() + """
                    tenants: [{ id: acme, products: [{ id: meter, signals: [{ name: kwh }] }], devices: [{ uid: old-1, product: meter }] }]
                    """)
            try iotd.start()
            defer { iotd.stop() }
            func bulk(_ uids: [String], product: String = "meter") throws -> (status: Int, text: String) {
                let devices = uids.map { #"{"uid":"\#($0)","product":"\#(product)","tags":{"site":"north"}}"# }
                return try iotd.api(
                    "POST", "/api/v1/tenants/acme/devices/bulk", #"{"devices":[\#(devices.joined(separator: ","))]}"#)
            }
            // Refusals, all or nothing.
            let twice = try bulk(["n-1", "n-2", "n-1"])
            #expect(
                twice.status == 400 && twice.text.contains("devices[2]") && twice.text.contains("twice"), "\(twice)")
            let exists = try bulk(["n-1", "old-1"])
            #expect(exists.status == 409 && exists.text.contains("old-1"), "\(exists)")
            let product = try bulk(["n-1"], product: "nope")
            #expect(product.status == 400 && product.text.contains("nope"), "\(product)")
            let invalid = try bulk(["n 1"])
            #expect(invalid.status == 400 && invalid.text.contains("devices[0]"), "\(invalid)")
            #expect(
                try iotd.api("GET", "/api/v1/tenants/acme/devices").text.components(separatedBy: #""uid""#).count == 2)

            let uids = (0..<10_000).map { "m-\($0)" }
            let created = try bulk(uids)
            #expect(created.status == 201, "\(created.status) \(created.text.prefix(300))")
            let answer = try #require(try JSONSerialization.jsonObject(with: Data(created.text.utf8)) as? [String: Any])
            #expect(answer["created"] as? Int == 10_000)
            let devices = try #require(answer["devices"] as? [[String: String]])
            #expect(devices.map { $0["uid"] } == uids)
            let tokens = devices.compactMap { $0["token"] }
            #expect(tokens.count == 10_000 && Set(tokens).count == 10_000)
            #expect(
                try iotd.api("GET", "/api/v1/tenants/acme/devices").text.components(separatedBy: #""uid""#).count - 1
                    == 10_001)
            let listed = try iotd.api("GET", "/api/v1/tenants/acme/devices/m-9999/tokens").text
            #expect(listed.contains(#""bulk""#), "\(listed)")
            // Tokens work for ingest straight away, and each names its own device.
            let client = try LoopbackHTTPClient(port: iotd.httpPort)
            for i in [0, 4_321, 9_999] {
                let r = try client.request(
                    "POST", "/api/v1/devices/m-\(i)/telemetry",
                    headers: ["Authorization": "Bearer \(tokens[i])", "Content-Type": "application/json"],
                    body: Array(#"{"kwh": \#(i)}"#.utf8))
                #expect(r.status == 200, "m-\(i): \(r.status) \(r.text)")
            }
            let wrong = try client.request(
                "POST", "/api/v1/devices/m-1/telemetry",
                headers: ["Authorization": "Bearer \(tokens[2])", "Content-Type": "application/json"],
                body: Array(#"{"kwh": 1}"#.utf8))
            #expect(wrong.status == 403, "m-2's token for m-1: \(wrong.status)")
        }
    }
}
