import Foundation
import IoTTestSupport
import IoTTesting
import Testing

/// Issue 22, item 7: `Examples/systemd/iotd.service` is a unit systemd accepts (`systemd-analyze verify`, with
/// the built iotd in place of `/usr/local/bin/iotd`), and its `ExecStartPre` check passes a good configuration.
@Suite struct SystemdUnitTests {
    static let unit: String = {
        var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/Examples/systemd/iotd.service"
    }()

    @Test func theExampleUnitVerifies() async throws {
        try await onOwnThread {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else {
                Issue.record("systemd-analyze is missing: apt-get install systemd (scripts/lib.sh lists it)")
                return
            }
            let dir = TemporaryDirectory("iotd-unit")
            let iotd = try ChildProcess.builtProduct("iotd")
            let text = try String(contentsOfFile: Self.unit, encoding: .utf8)
            #expect(text.contains("RestartPreventExitStatus=78"), "a configuration error is not restarted")
            try text.replacingOccurrences(of: "/usr/local/bin/iotd", with: iotd)
                .write(toFile: dir.path + "/iotd.service", atomically: false, encoding: .utf8)
            let verify = try ChildProcess([
                "/bin/sh", "-c", #"exec systemd-analyze verify "$0" 2>&1"#, dir.path + "/iotd.service",
            ])
            var output: [String] = []
            while let line = verify.readLine(timeoutSeconds: 30) { output.append(line) }
            #expect(verify.wait() == 0 && output.isEmpty, "systemd-analyze verify: \(output)")
        }
    }
}
