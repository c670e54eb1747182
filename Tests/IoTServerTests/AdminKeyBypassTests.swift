import Foundation
import HTTPTypes
import HummingbirdTesting
import IoTServer
import Testing

/// Issue 17: `GET //api/v1/tenants` answered without the admin key (the key middleware tested the raw path
/// for `/api/`, the router skips empty segments). Every operation that `openapi.yaml` documents under `/api`
/// goes through spellings of its path, over a socket, with no key and with a wrong key: each answer is 401 or
/// 404, and nothing changes.
@Suite struct AdminKeyBypassTests {
    /// The documented operations under `/api`: (method, path template).
    static func documentedOperations() throws -> [(HTTPRequest.Method, String)] {
        let spec = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/IoTServer/API/openapi.yaml")
        let text = try String(contentsOf: spec, encoding: .utf8)
        var operations: [(HTTPRequest.Method, String)] = []
        var path: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("components:") { break }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                path = String(line.dropFirst(2).dropLast())
            } else if let p = path, p.hasPrefix("/api"), line.hasPrefix("    "), !line.hasPrefix("     "),
                let method = HTTPRequest.Method(String(line.dropFirst(4).dropLast()).uppercased()),
                ["GET", "POST", "PUT", "DELETE", "PATCH"].contains(method.rawValue), line.hasSuffix(":")
            {
                operations.append((method, p))
            }
        }
        return operations
    }

    /// The spellings of one path that a router or a proxy may treat as the same route.
    static func variants(_ path: String) -> [String] {
        let rest = path.dropFirst("/api".count)  // "/v1/…"
        let afterV1 = path.dropFirst("/api/v1".count)
        return [
            path, "/" + path, "//" + path, "/api/" + rest, "/%61pi" + rest, "/api/v1/../v1" + afterV1,
            "/API" + rest, path + "/", "/api/./v1" + afterV1, path + "?x=1",
        ]
    }

    @Test func everyDocumentedOperationNeedsTheKeyWhateverThePathsSpelling() async throws {
        let operations = try Self.documentedOperations()
        #expect(operations.count >= 60, "openapi.yaml lists \(operations.count) /api operations")
        let h = try await ServerHarness(rules: true)
        try await h.api { c in
            try await h.seed(c)
            func snapshot() async throws -> [String] {
                var out: [String] = []
                for uri in [
                    "/api/v1/tenants", "/api/v1/tenants/acme/products", "/api/v1/tenants/acme/devices",
                    "/api/v1/tenants/acme/rules", "/api/v1/tenants/acme/statistics/jobs",
                    "/api/v1/tenants/acme/devices/t-1/credentials", "/api/v1/tenants/acme/devices/t-1/latest",
                ] {
                    let r = try await c.get(uri)
                    out.append("\(uri) \(r.status.code) \(r.text)")
                }
                return out
            }
            let before = try await snapshot()
            let values = [
                "{tenant}": "acme", "{uid}": "t-1", "{id}": "x", "{signal}": "temp", "{name}": "p",
                "{label}": "l", "{token}": "tok", "{recipient}": "r", "{username}": "u", "{to}": "1",
                "{file}": "summary.csv",
            ]
            var checked = 0
            for (method, template) in operations {
                var path = template
                for (k, v) in values { path = path.replacingOccurrences(of: k, with: v) }
                #expect(!path.contains("{"), "a parameter of \(template) has no test value")
                let body: String? = method == .get || method == .delete ? nil : #"{"id": "evil", "uid": "evil"}"#
                for uri in Self.variants(path) {
                    for key in [nil, "wrong-key"] {
                        let r: TestClient.Response
                        do {
                            r = try await c.send(method, uri, body, key: key)
                        } catch {
                            Issue.record("\(method) \(uri): \(error)")
                            continue
                        }
                        #expect(
                            r.status == .unauthorized || r.status == .notFound,
                            "\(method) \(uri) with \(key ?? "no key") answered \(r.status.code): \(r.text)")
                        checked += 1
                    }
                }
            }
            #expect(checked >= 60 * 10 * 2)
            #expect(try await snapshot() == before, "a request without the key changed state")
            // A documented path asked with another method: 405 with Allow (after the key check).
            let patch = try await c.send(.patch, "/api/v1/tenants")
            #expect(patch.status == .methodNotAllowed && patch.headers[.allow] == "GET, POST", "\(patch.text)")
            #expect(try await c.send(.patch, "/api/v1/tenants", key: nil).status == .unauthorized)
            let health = try await c.send(.delete, "/healthz", key: nil)
            #expect(health.status == .methodNotAllowed && health.headers[.allow] == "GET")
            #expect(try await c.send(.get, "/api/v1/no-such-thing").status == .notFound)
            // The key still opens every spelling the router matches.
            #expect(try await c.send(.get, "//api/v1/tenants").status == .ok)
            #expect(try await c.send(.get, "/api/v1/tenants/").status == .ok)
        }
        await h.stop()
    }
}

/// Issue 17: a request header holding a NUL byte got no answer from the management listener, and the
/// connection stayed open (over 320 s).
@Suite struct ControlCharacterHeaderTests {
    @Test func aNULInAHeaderIsAnswered400AndTheConnectionClosed() async throws {
        let h = try await ServerHarness()
        defer { Task { await h.stop() } }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(h.apiPort).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(rc == 0)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let request: [UInt8] =
            Array("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a".utf8) + [0] + Array("b\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 400 "), "\(text)")
        #expect(text.contains("control character"), "\(text)")
    }
}
