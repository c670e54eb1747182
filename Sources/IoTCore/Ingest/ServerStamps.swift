import Synchronization

/// The server times of records that carry no device time: per device strictly increasing, so that two such
/// records never share a (series, time) and the second does not overwrite the first.
///
/// A record is stamped with the time its message was received; when the device's previous server-stamped
/// record already has that time or a later one (several messages within one millisecond, or several
/// records in one message), it gets the next millisecond instead. A device sending more than 1,000 such
/// records a second therefore runs ahead of the clock by the excess; such a device should send its own times.
/// The last stamp is kept per device in 64 shards with at most `maxDevices` in all; a device whose last stamp
/// is already in the past is forgotten first (its next stamp cannot collide with it).
final class ServerStamps: Sendable {
    private static let shardCount = 64
    private final class Shard: Sendable {
        let last = Mutex<[DeviceIdentity: Int64]>([:])
    }
    private let shards: [Shard]
    private let maxPerShard: Int

    init(maxDevices: Int = 100_000) {
        shards = (0..<Self.shardCount).map { _ in Shard() }
        maxPerShard = max(1, maxDevices / Self.shardCount)
    }

    /// The server time of the next record of `device` (tenant and identification code) received at `receivedAt`.
    func next(tenant: TenantID, device: String, receivedAt: Int64) -> Int64 {
        let key = DeviceIdentity(tenant: tenant, deviceUID: device)
        var hasher = Hasher()
        hasher.combine(key)
        let shard = shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(Self.shardCount))]
        return shard.last.withLock { last in
            let previous = last[key]
            let time = max(receivedAt, (previous ?? .min).saturatingAdd(1))
            if previous == nil && last.count >= maxPerShard {
                last = last.filter { $0.value >= receivedAt }
                if last.count >= maxPerShard { last.removeAll(keepingCapacity: true) }
            }
            last[key] = time
            return time
        }
    }
}
