import Foundation
public import IoTCore

/// Downlink to a device connected to another instance of one PostgreSQL: the management API of any instance
/// reaches a device whose WebSocket or TCP connection is held by another.
///
/// ``send(_:to:)`` asks the other instances through ``PostgresInstanceCalls/callAny(_:_:timeout:)``; each that
/// holds a connection of the device sends the payload on it (through its ``IoTCore/DeviceSessions``) and answers
/// how many got it; the first answer, or none within ``Configuration/timeout``, is the result.
///
/// ```swift
/// let calls = PostgresInstanceCalls(storage: storage, instanceID: "iotd-1")   // run it in the ServiceGroup
/// let downlink = PostgresDownlinkRelay(calls: calls, sessions: sessions)
/// let routes = DownlinkRoutes(sessions: sessions, elsewhere: { try await downlink.send($0, to: $1) })
/// ```
public final class PostgresDownlinkRelay: Sendable {
    /// How long a request waits for an answer.
    public struct Configuration: Sendable {
        /// Default 2 s.
        public var timeout: Duration
        /// Creates a configuration.
        public init(timeout: Duration = .seconds(2)) { self.timeout = timeout }
    }

    let calls: PostgresInstanceCalls
    let configuration: Configuration

    static let operation = "downlink"

    /// A downlink as sent to the other instances: tenant, device, payload in base64.
    struct Request: Codable {
        var t: TenantID
        var d: String
        var b: String
    }

    /// Creates a relay for the device connections `sessions` holds, answering the other instances' downlinks
    /// through `calls`.
    public init(
        calls: PostgresInstanceCalls, sessions: DeviceSessions, configuration: Configuration = Configuration()
    ) {
        self.calls = calls
        self.configuration = configuration
        calls.handle(Self.operation) { body throws(IoTError) in
            guard let r = try? JSONDecoder().decode(Request.self, from: Data(body.utf8)),
                let bytes = Data(base64Encoded: r.b)
            else { throw IoTError(.invalidArgument, "a downlink from another instance could not be read") }
            let delivered = await sessions.send(Array(bytes), to: DeviceIdentity(tenant: r.t, deviceUID: r.d))
            guard delivered > 0 else { throw IoTError(.notFound, "the device has no connection here") }
            return String(delivered)
        }
    }

    /// Sends `payload` to the connections of `device` held by other instances; returns how many got it (0 when
    /// no instance answered within the timeout).
    ///
    /// - Throws: ``IoTCore/IoTError/Code/payloadTooLarge`` when the payload does not fit in one notification
    ///   (about 5,500 bytes), ``IoTCore/IoTError/Code/unavailable`` before the calls listen or when PostgreSQL
    ///   cannot be reached.
    public func send(_ payload: [UInt8], to device: DeviceIdentity) async throws(IoTError) -> Int {
        let request = Request(t: device.tenant, d: device.deviceUID, b: Data(payload).base64EncodedString())
        let body = String(decoding: (try? JSONEncoder().encode(request)) ?? Data(), as: UTF8.self)
        do {
            let answer = try await calls.callAny(Self.operation, body, timeout: configuration.timeout)
            return answer.flatMap { Int($0) } ?? 0
        } catch  where error.code == .payloadTooLarge {
            throw IoTError(
                .payloadTooLarge,
                "a downlink to a device connected to another instance carries at most about 5,500 bytes; send less")
        }
    }
}
