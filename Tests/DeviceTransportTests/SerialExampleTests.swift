import Foundation
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
                try ChildProcess.builtProduct("SerialSensorExample"), "--device", dir + "/host", "--seconds", "4",
                "--dir", dir + "/data",
            ]))
        defer { example.stop(signal: SIGKILL) }
        #expect(await example.readLine() == "serving \(dir)/host")

        let fd = open(dir + "/device", O_RDWR | O_NOCTTY)
        try #require(fd >= 0, "cannot open the sensor's side of the pty pair")
        defer { close(fd) }
        var tio = termios()
        tcgetattr(fd, &tio)
        cfmakeraw(&tio)
        tcsetattr(fd, TCSANOW, &tio)
        let sensor = LineReader(fd: fd)
        try await Task.sleep(for: .milliseconds(300))  // the example opens its side
        for line in [#"{"temp": 1.5}"#, "{broken", #"{"temp": 2.5}"#] {
            let bytes = Array((line + "\n").utf8)
            #expect(write(fd, bytes, bytes.count) == bytes.count)
        }
        let replies = try await offPool { (0..<3).map { _ in sensor.line(timeoutMillis: 5_000) } }
        #expect(replies[0]?.hasPrefix("OK ") == true, "\(replies)")
        #expect(replies[1]?.hasPrefix("ERR malformed_payload ") == true, "\(replies)")
        #expect(replies[2]?.hasPrefix("OK ") == true, "\(replies)")
        #expect(await example.next("stored") == "stored 2: 1.5 2.5")
        #expect(await example.next("received") == "received 3 stored 2 rejected 1")
    }
}

/// Reads lines from a descriptor with a timeout (poll(2)).
final class LineReader: @unchecked Sendable {
    let fd: Int32
    private var buffer: [UInt8] = []
    init(fd: Int32) { self.fd = fd }

    func line(timeoutMillis: Int32) -> String? {
        while true {
            if let i = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<i], as: UTF8.self)
                buffer.removeFirst(i + 1)
                return line
            }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, timeoutMillis) > 0 else { return nil }
            var chunk = [UInt8](repeating: 0, count: 1024)
            let n = read(fd, &chunk, 1024)
            guard n > 0 else { return nil }
            buffer += chunk[..<n]
        }
    }
}
