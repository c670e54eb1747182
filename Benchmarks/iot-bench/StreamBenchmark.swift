import Foundation
import IoTCore
import IoTProtocols
import IoTStorage
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// WebSocket and raw TCP messages/s into the durable store (file journal + SQLite), each acknowledged
/// after its journal receipt, over many connections (one device each, every client waits for the ack
/// before its next message); side by side in the same run with the HTTP listener's single-point
/// requests/s (`wrk`, keep-alive) on the same store. Clients are plain blocking sockets on threads of this
/// process, so server and clients share the machine's cores.
func runStreamBenchmark(_ options: BenchOptions) async throws {
    let seconds = options.smoke ? 1.0 : 8.0
    let connections = options.smoke ? 4 : 64
    let base = options.directory + "/stream"
    removeTree(base)
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    print(
        "== stream: \(connections) connections, one message in flight each, ack after the journal receipt, \(Int(seconds)) s each"
    )

    let storage = try SQLiteStorage(configuration: .init(directory: base), logger: logger)
    let journal = try FileJournal(configuration: .init(directory: base + "/journal"), logger: logger)
    let registry = SQLiteRegistryStore(storage: storage)
    let points = SQLitePointStore(storage: storage)
    let sessions = DeviceSessions()
    let auth = DeviceAuthService(
        credentials: SQLiteCredentialStore(storage: storage), sessions: sessions, logger: logger)
    let tenant: TenantID = "bench"
    try await registry.saveTenant(Tenant(id: tenant))
    try await registry.saveProduct(.tenant(tenant), Product(id: "p", signals: [Signal(name: "temp")]))
    var tokens: [String] = []
    for i in 0..<connections {
        try await registry.saveDevice(.tenant(tenant), Device(uid: "dev-\(i)", product: "p"))
        tokens.append(
            try await auth.issueToken(
                for: DeviceIdentity(tenant: tenant, deviceUID: "dev-\(i)"), label: "bench", now: 0))
    }
    let ingestor = Ingestor(journal: journal, pointStore: points, registry: registry, logger: logger)
    let tcp = TCPTransport(
        configuration: .init(port: 0), ingestor: ingestor, authenticator: auth, sessions: sessions, logger: logger)
    let ws = WebSocketTransport(
        configuration: .init(port: 0), ingestor: ingestor, authenticator: auth, sessions: sessions, logger: logger)
    let http = HTTPIngestTransport(
        configuration: .init(port: 0),
        gateway: DefaultIngestGateway(ingestor: ingestor, authenticator: auth, logger: logger), logger: logger)
    let services = Task {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await ingestor.run() }
            group.addTask { try await tcp.run() }
            group.addTask { try await ws.run() }
            group.addTask { try await http.run() }
            try await group.next()
            group.cancelAll()
        }
    }
    while !ingestor.isReady { try await Task.sleep(for: .milliseconds(5)) }
    let tcpPort = try await tcp.listeningPort()
    let wsPort = try await ws.listeningPort()
    let httpPort = try await http.listeningPort()

    let tcpRate = try runClients(connections: connections, seconds: seconds, offset: 0) { i in
        try TCPBenchClient(port: tcpPort, token: tokens[i])
    }
    print("tcp (lines):  \(grouped(tcpRate)) messages/s acked")
    let wsRate = try runClients(connections: connections, seconds: seconds, offset: 1 << 40) { i in
        try WSBenchClient(port: wsPort, token: tokens[i])
    }
    print("websocket:    \(grouped(wsRate)) messages/s acked")
    var httpRate = 0.0
    if shell("command -v wrk") != nil {
        httpRate = try wrk(
            url: "http://127.0.0.1:\(httpPort)/api/v1/\(tokens[0])/telemetry", script: singlePointScript(),
            seconds: Int(seconds.rounded(.up)), connections: connections, dir: base)
        print("http (wrk, single point, same store, token cache 1 s): \(grouped(httpRate)) req/s")
        print(
            String(format: "ratio tcp / http: %.2f×   websocket / http: %.2f×", tcpRate / httpRate, wsRate / httpRate))
    } else {
        print("http reference skipped: wrk is not installed (apt-get install wrk)")
    }
    while ingestor.queueDepth > 0 { try await Task.sleep(for: .milliseconds(5)) }
    let s = ingestor.statistics
    guard s.isBalanced, s.rejectedTotal == 0, s.stored > 0 else {
        print("FAILED: accounting \(s)")
        exit(1)
    }
    services.cancel()
    _ = try? await services.value
    removeTree(base)
}

/// A benchmark client: one message, wait for its ack.
protocol StreamBenchClient {
    /// Sends one single-point message with device time `ts` and waits for its ack; `false` on an error ack.
    mutating func roundTrip(ts: Int64) throws -> Bool
    func close()
}

/// Runs `connections` clients on threads for `seconds`; returns acked messages/s over all of them.
private func runClients(
    connections: Int, seconds: Double, offset: Int64, make: (Int) throws -> any StreamBenchClient
) throws -> Double {
    var clients: [any StreamBenchClient] = []
    for i in 0..<connections { clients.append(try make(i)) }
    let total = Mutex(0)
    let failures = Mutex(0)
    let start = monotonicSeconds()
    let deadline = start + seconds
    let group = DispatchGroup()
    for client in clients {
        let box = ClientBox(client)
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            var n: Int64 = 0
            var ok = 0
            while monotonicSeconds() < deadline {
                n += 1
                do {
                    if try box.client.roundTrip(ts: 1_700_000_000_000 + offset + n) {
                        ok += 1
                    } else {
                        failures.withLock { $0 += 1 }
                    }
                } catch {
                    failures.withLock { $0 += 1 }
                    break
                }
            }
            total.withLock { $0 += ok }
        }
    }
    group.wait()
    let elapsed = monotonicSeconds() - start
    for c in clients { c.close() }
    if failures.withLock({ $0 }) > 0 { throw BenchError("\(failures.withLock { $0 }) messages failed") }
    return Double(total.withLock { $0 }) / elapsed
}

/// Hands a client to its thread (only that thread uses it).
private final class ClientBox: @unchecked Sendable {
    var client: any StreamBenchClient
    init(_ client: any StreamBenchClient) { self.client = client }
}

/// A blocking IPv4 loopback socket.
private struct BenchSocket {
    let fd: Int32
    var buffer: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw BenchError("connect to port \(port) failed") }
    }

    func send(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            guard n > 0 else { throw BenchError("write failed") }
            done += n
        }
    }

    /// Reads until `buffer` holds at least `count` bytes.
    mutating func fill(_ count: Int) throws {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while buffer.count < count {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65_536) }
            guard n > 0 else { throw BenchError("connection closed") }
            buffer.append(contentsOf: chunk[..<n])
        }
    }

    mutating func line() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<i], as: UTF8.self)
                buffer.removeFirst(i + 1)
                return line
            }
            try fill(buffer.count + 1)
        }
    }

    func close() { Glibc.close(fd) }
}

private struct TCPBenchClient: StreamBenchClient {
    var socket: BenchSocket

    init(port: Int, token: String) throws {
        socket = try BenchSocket(port: port)
        try socket.send(Array("token:\(token)\n".utf8))
        let reply = try socket.line()
        guard reply.hasPrefix("OK ") else { throw BenchError("TCP handshake refused: \(reply)") }
    }

    mutating func roundTrip(ts: Int64) throws -> Bool {
        try socket.send(Array("{\"ts\":\(ts),\"temp\":\(ts % 100).5}\n".utf8))
        return try socket.line().hasPrefix("OK ")
    }

    func close() { socket.close() }
}

/// A minimal WebSocket client (RFC 6455): upgrade, masked text frames out, text frames in; pings are
/// answered with pongs.
private struct WSBenchClient: StreamBenchClient {
    var socket: BenchSocket

    init(port: Int, token: String) throws {
        socket = try BenchSocket(port: port)
        try socket.send(
            Array(
                ("GET /api/v1/devices/ws HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    + "Authorization: Bearer \(token)\r\n\r\n").utf8))
        var head = ""
        while !head.hasSuffix("\r\n\r\n") {
            try socket.fill(1)
            head.append(Character(UnicodeScalar(socket.buffer.removeFirst())))
        }
        guard head.hasPrefix("HTTP/1.1 101") else { throw BenchError("WebSocket upgrade refused: \(head)") }
    }

    mutating func roundTrip(ts: Int64) throws -> Bool {
        try sendFrame(opcode: 0x1, Array("{\"ts\":\(ts),\"temp\":\(ts % 100).5}".utf8))
        while true {
            let (opcode, payload) = try readFrame()
            switch opcode {
            case 0x1:
                return payload.starts(with: Array(#"{"type":"ack","n":"#.utf8))
                    && !String(decoding: payload, as: UTF8.self).contains(#""ok":false"#)
            case 0x9: try sendFrame(opcode: 0xA, payload)
            case 0x8: throw BenchError("closed by the server")
            default: continue
            }
        }
    }

    func sendFrame(opcode: UInt8, _ payload: [UInt8]) throws {
        var frame: [UInt8] = [0x80 | opcode]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else {
            frame.append(0x80 | 126)
            frame += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        frame += mask
        for (i, b) in payload.enumerated() { frame.append(b ^ mask[i & 3]) }
        try socket.send(frame)
    }

    mutating func readFrame() throws -> (UInt8, [UInt8]) {
        try socket.fill(2)
        let opcode = socket.buffer[0] & 0x0F
        var length = Int(socket.buffer[1] & 0x7F)
        var header = 2
        if length == 126 {
            try socket.fill(4)
            length = Int(socket.buffer[2]) << 8 | Int(socket.buffer[3])
            header = 4
        } else if length == 127 {
            try socket.fill(10)
            length = (2..<10).reduce(0) { $0 << 8 | Int(socket.buffer[$1]) }
            header = 10
        }
        try socket.fill(header + length)
        let payload = Array(socket.buffer[header..<(header + length)])
        socket.buffer.removeFirst(header + length)
        return (opcode, payload)
    }

    func close() { socket.close() }
}
