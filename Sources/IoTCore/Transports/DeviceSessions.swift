import Synchronization

/// The live device connections of every transport: who is connected, how to close them, how to send
/// them a downlink message.
///
/// Connection-oriented transports (WebSocket, raw TCP) register each authenticated session and remove
/// it when the connection ends. Revoking a device's credentials calls ``closeSessions(of:)``, which
/// closes every live session of the device at once (the revocation contract: within one second). The
/// management API sends downlink messages through ``send(_:to:)``.
///
/// ```swift
/// let sessions = DeviceSessions()
/// let id = sessions.register(device, transport: "tcp", send: { bytes in try await stream.write(bytes) },
///                            close: { await stream.close() })
/// defer { sessions.unregister(id) }
/// ```
public final class DeviceSessions: Sendable {
    /// A registered session, as listed by ``sessions(of:)``.
    public struct Info: Sendable, Hashable {
        /// The session's id.
        public var id: UInt64
        /// The device.
        public var device: DeviceIdentity
        /// The transport that holds the connection.
        public var transport: String
        /// The peer's address, when known.
        public var address: String
    }

    private struct Entry: Sendable {
        var info: Info
        var send: (@Sendable ([UInt8]) async throws -> Void)?
        var close: @Sendable () async -> Void
    }

    private struct State {
        var next: UInt64 = 1
        var entries: [UInt64: Entry] = [:]
    }
    private let state = Mutex(State())

    /// Creates an empty registry.
    public init() {}

    /// Registers a live session; returns its id for ``unregister(_:)``.
    ///
    /// - Parameters:
    ///   - send: delivers a downlink payload to the device in the transport's framing, or `nil` when the
    ///     transport has no downlink.
    ///   - close: closes the connection; called at most once, from any task.
    public func register(
        _ device: DeviceIdentity, transport: String, address: String = "",
        send: (@Sendable ([UInt8]) async throws -> Void)?, close: @escaping @Sendable () async -> Void
    ) -> UInt64 {
        state.withLock { s in
            let id = s.next
            s.next += 1
            s.entries[id] = Entry(
                info: Info(id: id, device: device, transport: transport, address: address), send: send, close: close)
            return id
        }
    }

    /// Removes a session (the connection ended); unknown ids are ignored.
    public func unregister(_ id: UInt64) {
        _ = state.withLock { $0.entries.removeValue(forKey: id) }
    }

    /// Closes and removes every live session of `device`; returns how many were closed.
    @discardableResult
    public func closeSessions(of device: DeviceIdentity) async -> Int {
        let closing = state.withLock { s -> [Entry] in
            let matching = s.entries.filter { $0.value.info.device == device }
            for id in matching.keys { s.entries[id] = nil }
            return Array(matching.values)
        }
        await withTaskGroup(of: Void.self) { group in
            for entry in closing { group.addTask { await entry.close() } }
        }
        return closing.count
    }

    /// Sends `payload` to every live session of `device` that has a downlink; returns how many got it.
    public func send(_ payload: [UInt8], to device: DeviceIdentity) async -> Int {
        let targets = state.withLock { s in s.entries.values.filter { $0.info.device == device }.compactMap(\.send) }
        var delivered = 0
        for send in targets {
            do {
                try await send(payload)
                delivered += 1
            } catch {
                continue  // the connection is going away; its transport unregisters it
            }
        }
        return delivered
    }

    /// The live sessions of `device`, by id.
    public func sessions(of device: DeviceIdentity) -> [Info] {
        state.withLock { s in s.entries.values.map(\.info).filter { $0.device == device }.sorted { $0.id < $1.id } }
    }

    /// How many sessions are live, over all devices.
    public var count: Int { state.withLock { $0.entries.count } }
}
