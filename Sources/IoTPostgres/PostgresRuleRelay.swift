import Foundation
public import IoTCore
public import Logging
public import ServiceLifecycle

/// Carries points and alarm changes between the instances of one PostgreSQL to the instance that evaluates
/// their originator's rules (an `IoTRules.RuleEngine` with a ``IoTCore/ClusterOwnership``).
///
/// ``forward(_:to:)`` sends points with `pg_notify` on the channel `iot_rules`, addressed to one instance and split
/// into payloads under PostgreSQL's 8,000-byte limit (numbers that JSON cannot say, such as infinity, are sent as
/// text and read back); every instance listens and hands what is addressed to it to `deliverPoints`. Only points
/// of series that feed a rule owned elsewhere are sent, so a cluster whose devices reach the instance that owns
/// them sends nothing. Delivery is at most once: what an owner that dies had not yet evaluated is stored all the
/// same, and its successor continues from the state saved last.
///
/// ```swift
/// let relay = PostgresRuleRelay(
///     storage: storage, instanceID: "iotd-1", deliverPoints: { await rules.forwardedPoints($0) },
///     deliverAlarm: { await rules.alarmChangedElsewhere(tenant: $0, ruleID: $1, originator: $2) })
/// await rules.setForwarding(relay)
/// // Run the relay in the ServiceGroup.
/// ```
public final class PostgresRuleRelay: RuleForwarding, Service {
    let storage: PostgresStorage
    let instanceID: String
    let deliverPoints: @Sendable (PointBatch) async -> Void
    let deliverAlarm: @Sendable (TenantID, String, String) async -> Void
    let logger: Logger

    static let channel = "iot_rules"

    /// Creates a relay; nothing is received before ``run()``.
    ///
    /// - Parameters:
    ///   - instanceID: this instance (`cluster.instanceID`); only notifications addressed to it are delivered.
    ///   - deliverPoints: where points sent to this instance go (the rule engine's `forwardedPoints`).
    ///   - deliverAlarm: where alarm changes sent to this instance go, as (tenant, rule id, originator) (the rule
    ///     engine's `alarmChangedElsewhere`).
    public init(
        storage: PostgresStorage, instanceID: String,
        deliverPoints: @escaping @Sendable (PointBatch) async -> Void,
        deliverAlarm: @escaping @Sendable (TenantID, String, String) async -> Void,
        logger: Logger = Logger(label: "iot.rules.relay")
    ) {
        self.storage = storage
        self.instanceID = instanceID
        self.deliverPoints = deliverPoints
        self.deliverAlarm = deliverAlarm
        self.logger = logger
    }

    /// One notification: from, to, tenant, and points or an alarm's (rule, originator).
    struct Message: Codable {
        var i: String
        var to: String
        var t: TenantID
        var p: [Point]?
        var r: String?
        var o: String?
    }

    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return e
    }

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return d
    }

    /// Sends `batch` to `instance`.
    public func forward(_ batch: PointBatch, to instance: String) async {
        let encoder = Self.encoder()
        let payloads = PostgresStorage.payloads(of: batch.points) {
            try? encoder.encode(Message(i: instanceID, to: instance, t: batch.tenant, p: $0))
        }
        for payload in payloads { await send(payload, "points") }
    }

    /// Tells `instance` that an alarm of (`ruleID`, `originator`) changed in the store.
    public func alarmChanged(tenant: TenantID, ruleID: String, originator: String, to instance: String) async {
        guard
            let data = try? Self.encoder().encode(
                Message(i: instanceID, to: instance, t: tenant, r: ruleID, o: originator))
        else { return }
        await send(String(decoding: data, as: UTF8.self), "an alarm change")
    }

    private func send(_ payload: String, _ what: String) async {
        do {
            try await storage.notify(Self.channel, payload, logger: logger)
        } catch {
            logger.warning(
                "\(what) not sent to the instance that evaluates their rules", metadata: ["error": "\(error)"])
        }
    }

    /// Listens for what other instances send this one, until graceful shutdown.
    public func run() async throws {
        let decoder = Self.decoder()
        await cancelWhenGracefulShutdown {
            await self.storage.listen(on: Self.channel, logger: self.logger) { payload in
                guard let m = try? decoder.decode(Message.self, from: Data(payload.utf8)), m.to == self.instanceID
                else { return }
                if let points = m.p {
                    await self.deliverPoints(PointBatch(tenant: m.t, points: points, journalSequence: 0))
                } else if let rule = m.r, let originator = m.o {
                    await self.deliverAlarm(m.t, rule, originator)
                }
            }
        }
    }
}
