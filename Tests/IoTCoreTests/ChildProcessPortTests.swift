import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The loopback ports that tests give to the peers they start are free, and not from the kernel's
/// ephemeral range, which every outgoing connection of the other tests running in parallel takes its
/// local port from.
@Suite struct ChildProcessPortTests {
    static func ephemeralRange() throws -> ClosedRange<Int> {
        let text = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        try #require(fields.count == 2)
        return fields[0]...fields[1]
    }

    /// Binds (and for TCP listens on) 127.0.0.1:`port`; the descriptor, or -1.
    static func listen(_ port: Int, type: Int32) -> Int32 {
        let fd = socket(AF_INET, type, 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc != 0 || (type == Int32(SOCK_STREAM.rawValue) && Glibc.listen(fd, 1) != 0) {
            close(fd)
            return -1
        }
        return fd
    }

    @Test func tcpAndUDPPortsAreFreeAndOutsideTheEphemeralRange() throws {
        let ephemeral = try Self.ephemeralRange()
        for (type, pick) in [
            (Int32(SOCK_STREAM.rawValue), ChildProcess.freeLoopbackPort),
            (Int32(SOCK_DGRAM.rawValue), ChildProcess.freeLoopbackUDPPort),
        ] {
            var seen = Set<Int>()
            for _ in 0..<20 {
                let port = pick()
                #expect(!ephemeral.contains(port), "port \(port) is in the ephemeral range \(ephemeral)")
                #expect(port >= 1_024 && port <= 65_535)
                let fd = Self.listen(port, type: type)
                #expect(fd >= 0, "port \(port) could not be bound")
                if fd >= 0 { close(fd) }
                seen.insert(port)
            }
            #expect(seen.count > 1, "the ports are picked at random")
        }
    }
}
