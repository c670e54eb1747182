import Foundation
import IoTTestSupport
import IoTTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 22, item 7: SIGHUP makes `iotd serve` read its file again. The HTTPS listener serves the renewed
/// certificate to new connections while an open keep-alive connection carries on; a changed parser, an added
/// and a removed rule take effect; a broken file changes nothing and the process keeps serving.
@Suite(.serialized) struct ReloadTests {
    @Test func sighupReloadsCertificatesParsersAndRulesWithoutDroppingConnections() async throws {
        try await onOwnThread {
            let iotd = IotdProcess("iotd-reload")
            let dir = iotd.directory.path
            func certificate(_ name: String) throws {
                let p = try ChildProcess([
                    "/usr/bin/env", "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).pem", "-days", "2",
                    "-subj", "/CN=\(name)", "-addext", "subjectAltName=IP:127.0.0.1",
                ])
                #expect(p.wait() == 0)
            }
            try certificate("first")
            try certificate("second")
            func install(_ name: String) throws {
                for ext in ["pem", "key"] {
                    let data = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(name).\(ext)"))
                    try data.write(to: URL(fileURLWithPath: "\(dir)/server.\(ext)"))
                }
            }
            try install("first")
            func yaml(parserScale: Int, rule: String) -> String {
                iotd.preamble(http: "tls: { certificate: \(dir)/server.pem, privateKey: \(dir)/server.key }")
                    + """
                    parsers:
                      - name: scaled
                        language: lua
                        source: |
                          function parse(msg) return { temp = tonumber(msg.payload) * \(parserScale) } end
                    tenants:
                      - id: acme
                        products: [{ id: thermo, signals: [{ name: temp }], parser: scaled }]
                        devices: [{ uid: t-1, product: thermo }]
                        rules:
                          - { kind: range, id: \(rule), devices: { product: thermo }, signal: temp, max: 50,
                              alarmWhen: outside, severity: major, debounce: { count: 1 }, hysteresis: 0 }
                    """
            }
            try iotd.configure(yaml(parserScale: 1, rule: "hot"))
            let server = try iotd.start()
            defer { iotd.stop() }
            let token = try iotd.issueToken(tenant: "acme", device: "t-1")

            // A device on one keep-alive HTTPS connection: it posts, waits for the go file, posts again on the
            // same connection, then opens a new connection. It prints the certificate's CN each time.
            let go = dir + "/go"
            let script = """
                import http.client, ssl, os, time
                ctx = ssl.create_default_context(cafile=None)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                def cn(conn):
                    der = conn.sock.getpeercert(binary_form=True)
                    return "second" if b"second" in der else ("first" if b"first" in der else "?")
                def post(conn, value):
                    conn.request("POST", "/api/v1/devices/t-1/telemetry", body=str(value),
                                 headers={"Authorization": "Bearer \(token)", "Content-Type": "text/plain"})
                    r = conn.getresponse(); r.read(); return r.status
                c = http.client.HTTPSConnection("127.0.0.1", \(iotd.httpPort), context=ctx)
                print("before", post(c, 7), cn(c), flush=True)
                while not os.path.exists("\(go)"): time.sleep(0.05)
                print("same", post(c, 8), cn(c), flush=True)
                n = http.client.HTTPSConnection("127.0.0.1", \(iotd.httpPort), context=ctx)
                print("new", post(n, 9), cn(n), flush=True)
                """
            let device = try ChildProcess(["/usr/bin/env", "python3", "-c", script])
            defer { device.stop(signal: SIGKILL) }
            #expect(device.readLine(timeoutSeconds: 30) == "before 200 first")

            // The renewed certificate, a parser that scales by 10 and the rule renamed: then SIGHUP.
            try install("second")
            try iotd.configure(yaml(parserScale: 10, rule: "very-hot"))
            #expect(kill(server.pid, SIGHUP) == 0)
            try eventually("the rules follow the file", seconds: 10) {
                let rules = try iotd.api("GET", "/api/v1/tenants/acme/rules").text
                return rules.contains(#""very-hot""#) && !rules.contains(#""hot""#)
            }
            #expect(FileManager.default.createFile(atPath: go, contents: Data()))
            #expect(device.readLine(timeoutSeconds: 30) == "same 200 first", "the open connection carries on")
            #expect(
                device.readLine(timeoutSeconds: 30) == "new 200 second", "a new connection gets the new certificate")
            #expect(device.wait(timeoutSeconds: 30) == 0)
            try eventually("the new parser stored 8 × 10 and 9 × 10", seconds: 10) {
                let series = try iotd.api("GET", "/api/v1/tenants/acme/devices/t-1/series/temp").text
                return series.contains(#""value":7"#) && series.contains(#""value":80"#)
                    && series.contains(#""value":90"#)
            }

            // A file that does not parse changes nothing; the process keeps serving and reloads the next good one.
            try iotd.configure("tenants: [ {")
            #expect(kill(server.pid, SIGHUP) == 0)
            usleep(500_000)
            #expect(try iotd.api("GET", "/readyz").status == 200)
            #expect(try iotd.api("GET", "/api/v1/tenants/acme/rules").text.contains(#""very-hot""#))
            try iotd.configure(yaml(parserScale: 10, rule: "hot"))
            #expect(kill(server.pid, SIGHUP) == 0)
            try eventually("the next good file is applied", seconds: 10) {
                let rules = try iotd.api("GET", "/api/v1/tenants/acme/rules").text
                return rules.contains(#""hot""#) && !rules.contains(#""very-hot""#)
            }
        }
    }

}
