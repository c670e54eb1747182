#if canImport(Glibc)
    import Glibc
#endif

/// A small blocking HTTP/1.1 client with keep-alive, for tests, simulators and load generators that talk
/// to a listener on this machine. One instance is one connection; use one per thread.
///
/// It speaks just enough HTTP for that job (Content-Length and chunked responses, no TLS, no redirects).
///
/// ```swift
/// let client = try LoopbackHTTPClient(port: 8080)
/// let response = try client.request("POST", "/api/v1/\(token)/telemetry", body: Array(#"{"temp": 21}"#.utf8))
/// print(response.status)
/// ```
public final class LoopbackHTTPClient {
    /// A response.
    public struct Response: Sendable {
        /// The status code.
        public var status: Int
        /// Header names in lowercase → values.
        public var headers: [String: String]
        /// The body.
        public var body: [UInt8]
        /// The body as UTF-8 text.
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// A connection or protocol failure.
    public struct Failure: Error, CustomStringConvertible {
        /// What went wrong.
        public var description: String
    }

    private let host: String
    private let port: Int
    private let timeoutSeconds: Int
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []
    private var start = 0

    private let sourceAddress: String?
    /// How many connections this client has opened (the first, then one per reconnect).
    public private(set) var connections = 0

    /// Connects to `host:port` (IPv4). A response that does not arrive within `timeoutSeconds` (each read
    /// waits at most that long) fails the request instead of hanging the caller. `sourceAddress` binds the
    /// connection's own end first (`127.0.0.2`: any 127/8 address is this machine's), so that one test plays
    /// several clients.
    public init(host: String = "127.0.0.1", port: Int, timeoutSeconds: Int = 30, sourceAddress: String? = nil) throws {
        self.host = host
        self.port = port
        self.timeoutSeconds = max(1, timeoutSeconds)
        self.sourceAddress = sourceAddress
        try connect()
    }

    deinit { if fd >= 0 { close(fd) } }

    private func connect() throws {
        connections += 1
        if fd >= 0 { close(fd) }
        buffer.removeAll(keepingCapacity: true)
        start = 0
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var wait = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        if let sourceAddress {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, sourceAddress, &local.sin_addr)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else {
                let message = String(cString: strerror(errno))
                close(fd)
                fd = -1
                throw Failure(description: "bind to \(sourceAddress): \(message)")
            }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, host, &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            fd = -1
            throw Failure(description: "connect to \(host):\(port): \(message)")
        }
    }

    /// Sends a request and reads the response. Reconnects once if the server closed the idle connection.
    public func request(_ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8] = []) throws
        -> Response
    {
        do {
            return try send(method, path, headers: headers, body: body)
        } catch let error as Failure where error.description.hasPrefix("closed") {
            try connect()
            return try send(method, path, headers: headers, body: body)
        }
    }

    /// A request to send with others in one write (``pipeline(_:)``).
    public struct Request: Sendable {
        /// `POST`, `GET`, …
        public var method: String
        /// The path and query.
        public var path: String
        /// Header names → values (`Host` and `Content-Length` are added).
        public var headers: [String: String]
        /// The body.
        public var body: [UInt8]

        /// A request of `method` for `path`.
        public init(_ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8] = []) {
            self.method = method
            self.path = path
            self.headers = headers
            self.body = body
        }
    }

    /// Sends `requests` in one write, without waiting for a response in between (HTTP/1.1 pipelining), then
    /// reads their responses, in the order they arrive.
    public func pipeline(_ requests: [Request]) throws -> [Response] {
        if fd < 0 { try connect() }
        try writeAll(requests.flatMap { encode($0.method, $0.path, headers: $0.headers, body: $0.body) })
        return try requests.map { _ in try readResponse() }
    }

    private func send(_ method: String, _ path: String, headers: [String: String], body: [UInt8]) throws -> Response {
        if fd < 0 { try connect() }
        try writeAll(encode(method, path, headers: headers, body: body))
        return try readResponse()
    }

    private func encode(_ method: String, _ path: String, headers: [String: String], body: [UInt8]) -> [UInt8] {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nContent-Length: \(body.count)\r\n"
        if headers["Content-Type"] == nil && !body.isEmpty { head += "Content-Type: application/json\r\n" }
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }

    private func readResponse() throws -> Response {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else {
            throw Failure(description: "bad status line '\(statusLine)'")
        }
        var responseHeaders: [String: String] = [:]
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].drop(while: { $0 == " " })
                responseHeaders[name] = String(value)
            }
        }
        var responseBody: [UInt8] = []
        if let length = responseHeaders["content-length"].flatMap({ Int($0) }) {
            responseBody = try readBytes(length)
        } else if responseHeaders["transfer-encoding"]?.lowercased() == "chunked" {
            while true {
                let sizeLine = try readLine()
                guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else {
                    throw Failure(description: "bad chunk size '\(sizeLine)'")
                }
                if size == 0 {
                    while try !readLine().isEmpty {}
                    break
                }
                responseBody += try readBytes(size)
                _ = try readLine()
            }
        }
        if responseHeaders["connection"]?.lowercased() == "close" {
            close(fd)
            fd = -1
        }
        return Response(status: status, headers: responseHeaders, body: responseBody)
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "closed: send failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    private func fill() throws {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 16_384, 0) }
            if n > 0 {
                buffer.append(contentsOf: chunk[0..<n])
                return
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                throw Failure(description: "no response from \(host):\(port) within \(timeoutSeconds) s")
            }
            throw Failure(description: "closed by the server")
        }
    }

    private func readLine() throws -> String {
        while true {
            if let i = buffer[start...].firstIndex(of: 0x0A) {
                var end = i
                if end > start && buffer[end - 1] == 0x0D { end -= 1 }
                let line = String(decoding: buffer[start..<end], as: UTF8.self)
                start = i + 1
                return line
            }
            try fill()
        }
    }

    private func readBytes(_ n: Int) throws -> [UInt8] {
        while buffer.count - start < n { try fill() }
        let out = Array(buffer[start..<start + n])
        start += n
        return out
    }
}

/// A ``LoopbackHTTPClient`` for `async` code: each request runs on a fresh connection, on a thread of its
/// own. A blocking read on one of the few threads of Swift's cooperative pool can starve the very server
/// it waits for when that server runs in the same process (a test of a management API); this cannot.
///
/// ```swift
/// let api = AsyncLoopbackHTTPClient(port: try await server.listeningPort())
/// let response = try await api.request("GET", "/healthz")
/// ```
public struct AsyncLoopbackHTTPClient: Sendable {
    /// The host (IPv4).
    public let host: String
    /// The port.
    public let port: Int

    /// A client of `host:port`; nothing connects before a request.
    public init(host: String = "127.0.0.1", port: Int) {
        self.host = host
        self.port = port
    }

    /// One request, as ``LoopbackHTTPClient/request(_:_:headers:body:)``.
    public func request(_ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8] = [])
        async throws -> LoopbackHTTPClient.Response
    {
        let (host, port) = (self.host, self.port)
        return try await withCheckedThrowingContinuation { continuation in
            let job = ThreadJob {
                continuation.resume(
                    with: Result {
                        try LoopbackHTTPClient(host: host, port: port).request(
                            method, path, headers: headers, body: body)
                    })
            }
            if let error = job.start() { continuation.resume(throwing: error) }
        }
    }
}

/// A closure run once on a detached thread of its own.
private final class ThreadJob: Sendable {
    let body: @Sendable () -> Void

    init(_ body: @escaping @Sendable () -> Void) { self.body = body }

    /// Starts the thread; returns an error when it cannot (then `body` never runs).
    func start() -> LoopbackHTTPClient.Failure? {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { arg in
                Unmanaged<ThreadJob>.fromOpaque(arg!).takeRetainedValue().body()
                return nil
            }, context)
        guard rc == 0 else {
            Unmanaged<ThreadJob>.fromOpaque(context).release()
            return LoopbackHTTPClient.Failure(
                description: "cannot start a thread for the request (pthread_create returned \(rc))")
        }
        pthread_detach(thread)
        return nil
    }
}
