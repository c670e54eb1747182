import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Examples/SerialSensor (a device on a serial line, written on StreamTransport) against a pseudo-terminal
/// pair made by socat; both processes are started and stopped by PID.
@Suite("Serial line example (socat pty pair)", .serialized)
struct SerialExampleTests {
    @Test("lines written on the sensor's side are journaled, stored and acknowledged; a bad line gets ERR")
    func serialLine() async throws {
        let dir = "/tmp/serial-test-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard access("/usr/bin/socat", X_OK) == 0 else {
            Issue.record("socat is missing: apt-get install socat (scripts/lib.sh lists it in APT_TEST_PACKAGES)")
            return
        }
        let socat = try ChildProcess([
            "/usr/bin/socat", "pty,raw,echo=0,link=\(dir)/host", "pty,raw,echo=0,link=\(dir)/device",
        ])
        defer { socat.stop(signal: SIGKILL) }
        for _ in 0..<500 where access(dir + "/host", F_OK) != 0 || access(dir + "/device", F_OK) != 0 {
            try await Task.sleep(for: .milliseconds(10))
        }
        let example = Peer(
            try ChildProcess([
                try ChildProcess.builtProduct("SerialSensorExample"), "--device", dir + "/host", "--seconds", "10",
                "--dir", dir + "/data",
            ]))
        defer { example.stop(signal: SIGKILL) }
        #expect(await example.readLine() == "serving \(dir)/host")

        let sensor = Peer(
            try ChildProcess([
                "/usr/bin/env", "python3", "-u", DeviceHarness.peerScript, "serial", dir + "/device",
                "--send", #"{"temp": 1.5}"#, "--send", "{broken", "--send", #"{"temp": 2.5}"#, "--wait", "8",
            ]))
        defer { sensor.stop(signal: SIGKILL) }
        // The example serves for 10 s and the sensor waits 8 s for its replies: a loaded machine (the suite
        // runs in parallel on 2 cores) once took longer than 4 s to start both and answer.
        var replies: [String] = []
        for _ in 0..<3 { if let r = await sensor.next("REPLY") { replies.append(r) } }
        #expect(replies.count == 3, "\(replies)")
        #expect(replies.first?.hasPrefix("REPLY OK ") == true, "\(replies)")
        #expect(replies.dropFirst().first?.hasPrefix("REPLY ERR malformed_payload ") == true, "\(replies)")
        #expect(replies.last?.hasPrefix("REPLY OK ") == true, "\(replies)")
        let summary = await example.rest()
        #expect(summary.contains("stored 2: 1.5 2.5"), "\(summary)")
        #expect(summary.contains("received 3 stored 2 rejected 1"), "\(summary)")
    }
}
