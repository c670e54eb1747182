import Foundation
public import IoTCore
public import Logging
public import ServiceLifecycle
import Synchronization

/// Downlink to a device connected to another instance of one PostgreSQL: the management API of any instance
/// reaches a device whose WebSocket or TCP connection is held by another.
///
/// ``send(_:to:)`` asks the other instances with `pg_notify` on the channel `iot_downlink`; each that holds a
/// connection of the device sends the payload on it (through its ``IoTCore/DeviceSessions``) and answers how many
/// got it; the first answer, or none within ``Configuration/timeout``, is the result.
///
/// ```swift
/// let downlink = PostgresDownlinkRelay(storage: storage, instanceID: "iotd-1", sessions: sessions)
/// let routes = DownlinkRoutes(sessions: sessions, elsewhere: { try await downlink.send($0, to: $1) })
/// // Run the relay in the ServiceGroup.
/// ```
public final class PostgresDownlinkRelay: Service {
    /// How long a request waits for an answer.
    public struct Configuration: Sendable {
        /// Default 2 s.
        public var timeout: Duration
        /// Creates a configuration.
        public init(timeout: Duration = .seconds(2)) { self.timeout = timeout }
    }

    let storage: PostgresStorage
    let instanceID: String
    let sessions: DeviceSessions
    let configuration: Configuration
    let logger: Logger
    private let pending = Mutex<[String: CheckedContinuation<Int, Never>]>([:])
    private let listening = Atomic<Bool>(false)

    static let channel = "iot_downlink"

    /// Creates a relay for the device connections `sessions` holds; nothing is heard before ``run()``.
    public init(
        storage: PostgresStorage, instanceID: String, sessions: DeviceSessions,
        configuration: Configuration = Configuration(), logger: Logger = Logger(label: "iot.downlink")
    ) {
        self.storage = storage
        self.instanceID = instanceID
        self.sessions = sessions
        self.configuration = configuration
        self.logger = logger
    }

    /// A request (`k` "q": tenant, device, payload in base64) or an answer (`k` "a": how many got it).
    struct Message: Codable {
        var k: String
        var r: String
        var from: String
        var to: String?
        var t: TenantID?
        var d: String?
        var b: String?
        var n: Int?
    }

    /// Sends `payload` to the connections of `device` held by other instances; returns how many got it (0 when
    /// no instance answered within the timeout).
    ///
    /// - Throws: ``IoTCore/IoTError/Code/payloadTooLarge`` when the payload does not fit in one notification
    ///   (about 5,500 bytes), ``IoTCore/IoTError/Code/unavailable`` before ``run()`` listens or when PostgreSQL
    ///   cannot be reached.
    public func send(_ payload: [UInt8], to device: DeviceIdentity) async throws(IoTError) -> Int {
        guard listening.load(ordering: .acquiring) else {
            throw IoTError(.unavailable, "the downlink relay is not listening yet; retry in a moment")
        }
        let id = UUID().uuidString
        let message = Message(
            k: "q", r: id, from: instanceID, t: device.tenant, d: device.deviceUID,
            b: Data(payload).base64EncodedString())
        let text = Self.encode(message)
        guard text.utf8.count < 7_900 else {
            throw IoTError(
                .payloadTooLarge,
                "a downlink to a device connected to another instance carries at most about 5,500 bytes; send less")
        }
        let timeout = configuration.timeout
        return await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
            pending.withLock { $0[id] = continuation }
            Task {
                do {
                    try await storage.notify(Self.channel, text, logger: logger)
                } catch {
                    logger.warning("downlink not relayed to the other instances", metadata: ["error": "\(error)"])
                    self.answer(id, 0)
                    return
                }
                try? await Task.sleep(for: timeout)
                self.answer(id, 0)
            }
        }
    }

    private func answer(_ id: String, _ delivered: Int) {
        pending.withLock { $0.removeValue(forKey: id) }?.resume(returning: delivered)
    }

    static func encode(_ message: Message) -> String {
        (try? String(decoding: JSONEncoder().encode(message), as: UTF8.self)) ?? "{}"
    }

    /// Listens for requests and answers until graceful shutdown.
    public func run() async throws {
        let decoder = JSONDecoder()
        await cancelWhenGracefulShutdown {
            await self.storage.listen(
                on: Self.channel, logger: self.logger, onListening: { self.listening.store(true, ordering: .releasing) }
            ) { payload in
                guard let m = try? decoder.decode(Message.self, from: Data(payload.utf8)), m.from != self.instanceID
                else { return }
                if m.k == "a" {
                    if m.to == self.instanceID { self.answer(m.r, m.n ?? 0) }
                    return
                }
                guard let tenant = m.t, let uid = m.d, let bytes = m.b.flatMap({ Data(base64Encoded: $0) }) else {
                    return
                }
                let delivered = await self.sessions.send(
                    Array(bytes), to: DeviceIdentity(tenant: tenant, deviceUID: uid))
                guard delivered > 0 else { return }
                let reply = Message(k: "a", r: m.r, from: self.instanceID, to: m.from, n: delivered)
                try? await self.storage.notify(Self.channel, Self.encode(reply), logger: self.logger)
            }
        }
        listening.store(false, ordering: .releasing)
    }
}
