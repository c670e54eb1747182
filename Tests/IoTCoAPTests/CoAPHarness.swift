import Foundation
import IoTCore
import IoTProtocols
import IoTStorage
import IoTTestSupport
import IoTTesting
import Logging
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A ``CoAPTransport`` on free loopback ports over an ``IngestHarness`` (in-memory stores; tenant `acme`, product
/// `thermo`, devices `t-1` and `t-2`), with token authentication; stopped by ``stop()``.
final class CoAPHarness: Sendable {
    static let tenant = IngestHarness.tenant
    static let pskIdentity = "gateway-1"
    static let pskKey = "correct horse battery staple"
    let ingest: IngestHarness
    let tokens = TokenAuthenticator(credentials: InMemoryCredentialStore())
    let coap: CoAPTransport
    let port: Int
    let dtlsPort: Int?
    var registry: any RegistryStore { ingest.registry }
    var points: any PointStore { ingest.points }
    var ingestor: Ingestor { ingest.ingestor }

    init(maxBodyBytes: Int = 64 * 1024, dtls: Bool = false, ingestorConfiguration: Ingestor.Configuration = .init())
        async throws
    {
        ingest = try await IngestHarness(
            configuration: ingestorConfiguration, devices: ["t-1", "t-2"], systemClock: true, authenticator: tokens,
            start: false)
        let coap = CoAPTransport(
            configuration: .init(
                port: 0, dtls: dtls ? .init(port: 0, keys: [Self.pskIdentity: Self.pskKey]) : nil,
                maxBodyBytes: maxBodyBytes),
            ingestor: ingest.ingestor, authenticator: tokens, logger: Logger(label: "coap-test"))
        self.coap = coap
        try await ingest.start([coap])
        port = try await coap.listeningPort()
        dtlsPort = dtls ? try await coap.dtlsListeningPort() : nil
    }

    func stop() async {
        await ingest.stop()
    }

    func identity(_ uid: String) -> DeviceIdentity { DeviceIdentity(tenant: Self.tenant, deviceUID: uid) }

    func token(_ uid: String = "t-1") async throws -> String {
        try await tokens.issueToken(for: identity(uid), label: "test-\(Int.random(in: 0..<1_000_000))", now: 0)
    }

    /// The latest stored values of a device's signal.
    func latest(_ uid: String, _ signal: String) async throws -> SignalValue? {
        try await points.latest(.tenant(Self.tenant), device: uid, signals: [signal]).first?.value
    }

    /// Waits until the point store holds `signal` of `uid` (commits are batched after the receipt).
    func waitForPoint(_ uid: String, _ signal: String) async throws -> SignalValue? {
        for _ in 0..<200 {
            if let v = try await latest(uid, signal) { return v }
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// The ingestor's stored-message count once it reaches `count` (or after 2 s, whatever it is then): the
    /// count moves when the batch commits, after the device already has its 2.04.
    func storedCount(reaching count: Int) async throws -> Int {
        for _ in 0..<200 where ingestor.statistics.stored < count {
            try await Task.sleep(for: .milliseconds(10))
        }
        return ingestor.statistics.stored
    }
}

/// Runs a command line through `/bin/sh` (stderr merged into stdout) on a thread of its own and returns
/// its output lines; the child is started and reaped by this call.
func runPeer(_ command: String) async throws -> [String] {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<[String], any Error>) in
        Thread.detachNewThread {
            do {
                let child = try ChildProcess(["/bin/sh", "-c", command + " 2>&1"])
                var lines: [String] = []
                while let line = child.readLine() { lines.append(line) }
                child.stop(signal: SIGKILL)  // already gone, unless its output timed out
                c.resume(returning: lines)
            } catch {
                c.resume(throwing: error)
            }
        }
    }
}

let peerScript: String = {
    var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast()
    return parts.joined(separator: "/") + "/Peers/coap_peer.py"
}()

/// Starts the aiocoap observable server (`coap_peer.py server`) on `port`, or on a port it picks right before
/// binding when `port` is 0; waits for its "ready" line and returns the process and its port.
func startAiocoapServer(port: Int = 0) throws -> (ChildProcess, Int) {
    let server = try ChildProcess(["/usr/bin/env", "python3", "-u", peerScript, "server", String(port)])
    guard let line = server.readLine(), line.hasPrefix("ready "), let bound = Int(line.dropFirst(6)),
        port == 0 || bound == port
    else {
        server.stop(signal: SIGKILL)
        throw ObserveTestError(
            description: "the aiocoap server did not start on port \(port) (0: any); see its output above")
    }
    return (server, bound)
}

/// `aiocoap` request: `"<code> <payload>"`.
func aiocoap(_ method: String, _ uri: String, _ payload: String, format: Int? = 50) async throws -> String {
    let lines = try await runPeer(
        "python3 -u '\(peerScript)' request \(method) '\(uri)' '\(payload)' \(format.map(String.init) ?? "-")")
    return lines.last ?? ""
}

/// libcoap's `coap-client-notls` (or `-openssl` with extra arguments): its output lines.
func coapClient(_ arguments: String, binary: String = "coap-client-notls") async throws -> String {
    try await runPeer("\(binary) -B 5 \(arguments)").joined(separator: "\n")
}
