public import IoTCore
public import Logging
import Synchronization

/// The ``DynamicSecurityChannel`` over the platform's own ``MQTTClient``: one connection, subscribed to
/// ``DynamicSecurityProvisioner/responseTopic``, publishing requests to
/// ``DynamicSecurityProvisioner/controlTopic`` and matching answers by their correlation data, so
/// several requests can be in flight at once.
///
/// ```swift
/// let channel = try MQTTDynamicSecurityChannel(
///     configuration: .init(host: "127.0.0.1", port: 1883, clientID: "iotd-dynsec", username: "admin",
///                          password: adminPassword, cleanSession: true))
/// let provisioner = DynamicSecurityProvisioner(configuration: .init(name: "mosquitto"), channel: channel)
/// ```
///
/// The client connects on the first request and reconnects by itself; a broker that refuses the admin
/// login makes every request fail with ``IoTCore/IoTError/Code/unavailable`` naming the broker's reason.
public final class MQTTDynamicSecurityChannel: DynamicSecurityChannel {
    let client: MQTTClient
    private let started = Atomic<Bool>(false)
    private let waiters = Waiters()

    /// Requests waiting for their answer, by correlation.
    final class Waiters: Sendable {
        private let map = Mutex<[String: CheckedContinuation<[UInt8]?, Never>]>([:])
        func put(_ key: String, _ continuation: CheckedContinuation<[UInt8]?, Never>) {
            map.withLock { $0[key] = continuation }
        }
        /// Resumes and forgets the waiter of `key`, if it is still waiting.
        func resume(_ key: String, with answer: [UInt8]?) {
            map.withLock { $0.removeValue(forKey: key) }?.resume(returning: answer)
        }
    }

    /// Creates the channel's client (a clean session: answers to requests of an earlier run are useless).
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` for an invalid configuration.
    public init(
        configuration: MQTTClient.Configuration, group: MQTTEventLoopGroup? = nil,
        logger: Logger = Logger(label: "iot.mqtt.dynsec")
    ) throws(IoTError) {
        var configuration = configuration
        configuration.cleanSession = true
        client = try MQTTClient(configuration: configuration, group: group, logger: logger)
        let waiters = self.waiters
        _ = try client.subscribe(DynamicSecurityProvisioner.responseTopic, qos: 1) { message in
            guard let response = try? DynamicSecurityResponse(payload: message.payload),
                let correlation = response.entries.first?.correlationData,
                let slash = correlation.lastIndex(of: "/")
            else { return }
            waiters.resume(String(correlation[..<slash]), with: message.payload)
        }
    }

    /// Sends `request` and waits for its answer.
    public func exchange(_ request: [UInt8], correlation: String, timeout: Duration) async throws(IoTError) -> [UInt8] {
        if !started.exchange(true, ordering: .relaxed) { client.start() }
        do {
            try await client.waitUntilReady(timeoutMillis: timeout.inMilliseconds)
        } catch {
            throw IoTError(
                error.code == .timeout ? .timeout : .unavailable,
                "cannot reach the broker's dynamic-security control topic: \(error.message)")
        }
        let waiters = self.waiters
        let client = self.client
        let answer: [UInt8]? = await withCheckedContinuation { continuation in
            waiters.put(correlation, continuation)
            // The deadline runs from the send, not from the broker's PUBACK: a QoS 1 publish whose broker went
            // away waits for the reconnection to deliver it, which may never come.
            Task {
                do {
                    try await client.publish(topic: DynamicSecurityProvisioner.controlTopic, payload: request, qos: 1)
                } catch {
                    waiters.resume(correlation, with: nil)
                }
            }
            Task {
                try? await Task.sleep(for: timeout)
                waiters.resume(correlation, with: nil)
            }
        }
        guard let answer else {
            throw IoTError(
                .timeout,
                "the broker did not answer the dynamic-security request within \(timeout.inMilliseconds) ms; check that mosquitto loads mosquitto_dynamic_security.so and that the admin account may use $CONTROL/dynamic-security/#"
            )
        }
        return answer
    }

    /// Disconnects the channel's client.
    public func close() async {
        await client.stop()
    }
}
