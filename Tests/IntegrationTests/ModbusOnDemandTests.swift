import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 20, item 7: `iotd serve` with no `modbus:` section makes its Modbus poller when the first device is
/// added through the management API, and polls a real device (pymodbus, PyPI).
@Suite(.serialized) struct ModbusOnDemandTests {
    @Test func aDeviceAddedThroughTheAPIIsPolledWithoutAModbusSection() async throws {
        try await onOwnThread {
            let root = String(#filePath.prefix(upTo: #filePath.range(of: "/Tests/")!.lowerBound))
            let devicePort = ChildProcess.freeLoopbackPort()
            let device = try ChildProcess([
                "/usr/bin/env", "python3", "-u", root + "/Tests/Support/peers/pymodbus_device.py", "--tcp",
                String(devicePort), "h:3=42",
            ])
            defer { device.stop(signal: SIGKILL) }
            let ready = device.readLine(timeoutSeconds: 30)
            try #require(ready?.hasPrefix("ready ") == true, "pymodbus did not start: \(ready ?? "no output")")
            let iotd = IotdProcess("iotd-modbus-on-demand")
            try iotd.configure(
                iotd.preamble()
                    + "tenants: [{ id: lab, products: [{ id: meter, signals: [{ name: v }] }], devices: [{ uid: m-1, product: meter }] }]\n"
            )
            try iotd.start()
            defer { iotd.stop() }
            let base = "/api/v1/tenants/lab/modbus/devices"
            let empty = try iotd.api("GET", base)
            #expect(empty.status == 200 && empty.text == "[]", "\(empty.status) \(empty.text)")
            let created = try iotd.api(
                "POST", base,
                #"{"uid":"m-1","tcp":{"host":"127.0.0.1","port":\#(devicePort)},"unitId":1,"intervalMillis":200,"registers":[{"signal":"v","address":3}]}"#
            )
            #expect(created.status == 201, "\(created.text)")
            var latest = ""
            for _ in 0..<100 {
                latest = try iotd.api("GET", "/api/v1/tenants/lab/devices/m-1/latest").text
                if latest.contains("42") { break }
                usleep(100_000)
            }
            #expect(latest.contains(#""v""#) && latest.contains("42"), "\(latest)")
            let listed = try iotd.api("GET", base + "/m-1").text
            #expect(listed.contains(#""failures":0"#) && !listed.contains(#""lastError""#), "\(listed)")
        }
    }
}
