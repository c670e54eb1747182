public import IoTCore
import Synchronization

/// New data for dashboards, as it is committed: a ``IoTCore/PointObserver`` that fans each committed
/// batch out to subscribers, filtered by tenant and device.
///
/// Pass it to the ``IoTCore/Ingestor`` as an observer and to the ``ManagementServer``, which serves it as
/// a WebSocket at `GET /api/v1/tenants/{tenant}/live?device=<uid>` (repeat `device` for several; omit it
/// for every device of the tenant). Each committed batch becomes one text frame
/// `{"type":"points","points":[{"device","signal","time","value"}]}`.
///
/// A subscriber that cannot keep up loses the oldest frames beyond ``bufferedBatches`` rather than
/// slowing ingest down.
///
/// ```swift
/// let live = LiveFeed()
/// let ingestor = Ingestor(journal: journal, points: points, registry: registry, observers: [live])
/// let api = ManagementServer(..., liveFeed: live)
/// ```
public final class LiveFeed: PointObserver {
    private struct Subscriber {
        var tenant: TenantID
        var devices: Set<String>?
        var continuation: AsyncStream<String>.Continuation
    }
    private struct State {
        var next: UInt64 = 1
        var subscribers: [UInt64: Subscriber] = [:]
    }
    private let state = Mutex(State())
    /// Frames kept per subscriber that has not read them yet. Default 256.
    public let bufferedBatches: Int

    /// Creates a feed with no subscribers.
    public init(bufferedBatches: Int = 256) {
        self.bufferedBatches = bufferedBatches
    }

    /// Subscribes to the points of `tenant` (only `devices`, when given). The stream ends when the
    /// subscription is cancelled (the consuming task ends) or ``unsubscribe(_:)`` is called.
    public func subscribe(tenant: TenantID, devices: Set<String>?) -> (id: UInt64, frames: AsyncStream<String>) {
        let (stream, continuation) = AsyncStream.makeStream(
            of: String.self, bufferingPolicy: .bufferingNewest(bufferedBatches))
        let id = state.withLock { s in
            let id = s.next
            s.next += 1
            s.subscribers[id] = Subscriber(tenant: tenant, devices: devices, continuation: continuation)
            return id
        }
        continuation.onTermination = { [weak self] _ in self?.unsubscribe(id) }
        return (id, stream)
    }

    /// Ends a subscription.
    public func unsubscribe(_ id: UInt64) {
        let removed = state.withLock { $0.subscribers.removeValue(forKey: id) }
        removed?.continuation.finish()
    }

    /// Subscribers right now.
    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// The tenants with a subscriber right now (for a relay that brings other instances' points, such as
    /// `IoTPostgres.PostgresLiveRelay`).
    public var watchedTenants: Set<TenantID> { state.withLock { Set($0.subscribers.values.map(\.tenant)) } }

    public func pointsCommitted(_ batch: PointBatch) async {
        let targets = state.withLock { s in s.subscribers.values.filter { $0.tenant == batch.tenant } }
        guard !targets.isEmpty else { return }
        for subscriber in targets {
            let points =
                subscriber.devices.map { wanted in batch.points.filter { wanted.contains($0.device) } } ?? batch.points
            guard !points.isEmpty else { continue }
            subscriber.continuation.yield(Self.frame(points))
        }
    }

    static func frame(_ points: [Point]) -> String {
        var out = #"{"type":"points","points":["#
        for (i, p) in points.enumerated() {
            if i > 0 { out += "," }
            let value: String
            switch p.value {
            case .number(let v): value = v.isFinite ? "\(v)" : "null"
            case .bool(let b): value = b ? "true" : "false"
            case .text(let t): value = jsonString(t)
            }
            out +=
                #"{"device":\#(jsonString(p.device)),"signal":\#(jsonString(p.signal)),"time":\#(p.time),"value":\#(value)}"#
        }
        return out + "]}"
    }
}
