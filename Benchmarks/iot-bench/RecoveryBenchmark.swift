import Foundation
import IoTCore
import IoTStorage
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Disaster recovery (issue 22, item 4): a data directory of 10 million points with a full backup set, a burst of
/// 1 million more shipped, then 2,000 points/s journaled and committed while ``JournalShipper`` ships every 5 s; the data directory is lost;
/// ``DataBackup/restore(from:to:at:key:force:)`` builds a new one and an ``Ingestor`` starts on it and commits the
/// shipped records. Prints the recovery point (the data a crash at the worst moment loses: the interval plus the
/// longest shipment; goal ≤ 10 s) and the recovery time (restore, start and replay; goal ≤ 30 s for 10 million
/// points), beside `cp -a` of the same restored directory in the same run.
func runRecoveryBenchmark(_ options: BenchOptions) async throws {
    let total = options.points ?? (options.smoke ? 100_000 : 10_000_000)
    let seconds = options.smoke ? 3.0 : 30.0
    let every = options.smoke ? 1.0 : 5.0
    print(
        "== recovery: \(grouped(Double(total))) points, full set, \(Int(seconds)) s at 2,000 points/s shipped every \(Int(every)) s, restored"
    )
    let bench = try await BenchTenant("recovery", options: options)
    defer { removeTree(bench.directory) }
    let data = bench.directory + "/data"
    let repository = bench.directory + "/backups"
    let points = SQLitePointStore(storage: bench.storage)
    let journal = try FileJournal(configuration: .init(directory: data + "/journal"), logger: bench.logger)
    let devices = (0..<1_000).map { "d-\($0)" }
    func point(_ i: Int) -> Point {
        Point(
            device: devices[i % devices.count], signal: "temp",
            time: 1_700_000_000_000 + Int64(i / devices.count) * 1_000,
            value: .number(Double(i % 997)))
    }

    // The data set, committed as the ingestor commits it (a journal watermark per batch).
    var t = monotonicSeconds()
    var i = 0
    while i < total {
        let n = min(50_000, total - i)
        let sequence = journal.lastSequence + 1
        try await points.write(
            PointBatch(tenant: bench.tenant, points: (i..<(i + n)).map(point), journalSequence: sequence))
        try journal.trim(through: sequence)
        i += n
    }
    let loadSeconds = monotonicSeconds() - t
    t = monotonicSeconds()
    let full = try await onThread {
        try DataBackup.create(dataDirectory: data, repository: repository, version: "bench")
    }
    let fullSeconds = monotonicSeconds() - t
    let fullBytes = full.files.reduce(0) { $0 + $1.bytes }

    // A burst after the full set, shipped: what a restore replays beside the paced records (so the replay rate
    // is measured on enough records).
    let shipper = try JournalShipper(journal: journal, repository: repository)
    let burst = options.smoke ? 10_000 : 1_000_000
    for first in stride(from: 0, to: burst, by: 10) {
        let batch = (first..<(first + 10)).map { point(total + $0) }
        let sequence = try journal.append(tenant: bench.tenant, points: batch)
        if first % 10_000 == 9_990 {
            try await points.write(
                PointBatch(
                    tenant: bench.tenant, points: ((first - 9_990)..<(first + 10)).map { point(total + $0) },
                    journalSequence: sequence))
            try journal.trim(through: sequence)
        }
    }
    let burstSequence = journal.lastSequence
    try shipper.ship()

    // 2,000 points/s, 200 messages of 10 points each per second, journaled then committed in batches.
    var shipSeconds: [Double] = []
    var lastShipmentStart = 0.0
    let start = monotonicSeconds()
    var nextShip = start + every
    var pending: [Point] = []
    var message = 0
    while monotonicSeconds() - start < seconds {
        let due = start + Double(message) / 200
        let wait = due - monotonicSeconds()
        if wait > 0 { usleep(useconds_t(wait * 1e6)) }
        let batch = (0..<10).map { point(total + burst + message * 10 + $0) }
        let sequence = try journal.append(tenant: bench.tenant, points: batch)
        pending += batch
        message += 1
        if message % 20 == 0 {
            try await points.write(PointBatch(tenant: bench.tenant, points: pending, journalSequence: sequence))
            try journal.trim(through: sequence)
            pending.removeAll()
        }
        if monotonicSeconds() >= nextShip {
            lastShipmentStart = monotonicSeconds()
            try shipper.ship()
            shipSeconds.append(monotonicSeconds() - lastShipmentStart)
            nextShip += every
        }
    }
    let killed = monotonicSeconds()
    let lostAtKill = killed - lastShipmentStart
    let shippedMessages = Int(shipper.lastShipped - burstSequence)
    await bench.storage.close()
    removeTree(data)

    // Restore, start, replay.
    let restored = bench.directory + "/restored"
    t = monotonicSeconds()
    let restoration = try await onThread { try DataBackup.restore(from: repository, to: restored, force: false) }
    let restoreSeconds = monotonicSeconds() - t
    let replayStart = monotonicSeconds()
    let storage = try SQLiteStorage(configuration: .init(directory: restored))
    let store = SQLitePointStore(storage: storage)
    let replayJournal = try FileJournal(configuration: .init(directory: restored + "/journal"), logger: bench.logger)
    let ingestor = Ingestor(
        journal: replayJournal, pointStore: store, registry: SQLiteRegistryStore(storage: storage), logger: bench.logger
    )
    let running = Task { try await ingestor.run() }
    try await ingestor.waitUntilReady()
    while try await store.committedSequence(tenant: bench.tenant) < restoration.journalThrough {
        try await Task.sleep(for: .milliseconds(5))
    }
    let recoverySeconds = monotonicSeconds() - t
    let replaySeconds = monotonicSeconds() - replayStart
    running.cancel()
    _ = try? await running.value
    let stored = try await onThread { try countPoints(restored + "/tenants/bench.sqlite") }
    await storage.close()
    let expected = total + burst + shippedMessages * 10
    guard stored == expected else {
        throw BenchError("\(stored) points after the restore, \(expected) acknowledged and shipped")
    }
    t = monotonicSeconds()
    guard shell("cp -a '\(restored)' '\(bench.directory)/copied' && sync") != nil else { throw BenchError("cp failed") }
    let copySeconds = monotonicSeconds() - t

    let worst = every + (shipSeconds.max() ?? 0)
    print(
        String(
            format:
                "load: %@ points in %.1f s | full set: %.1f s, %.0f MB | shipments: %d, longest %.1f ms, mean %.1f ms",
            grouped(Double(total)), loadSeconds, fullSeconds, Double(fullBytes) / 1e6, shipSeconds.count,
            (shipSeconds.max() ?? 0) * 1_000, shipSeconds.reduce(0, +) / Double(max(1, shipSeconds.count)) * 1_000))
    print(
        String(
            format:
                "recovery point: at most %.1f s of data (every %.0f s + the longest shipment; %.1f s at this kill; goal ≤ 10 s)",
            worst, every, lostAtKill))
    print(
        String(
            format:
                "recovery time: %.1f s for %@ points (restore %.1f s; start and replay of %@ records, %@ points, %.1f s: %@ points/s; goal ≤ 30 s) | cp -a of the restored directory: %.1f s (%.1f× the copy)",
            recoverySeconds, grouped(Double(stored)), restoreSeconds, grouped(Double(restoration.journalRecords)),
            grouped(Double(stored - total)), replaySeconds, grouped(Double(stored - total) / replaySeconds),
            copySeconds,
            recoverySeconds / max(copySeconds, 0.001)))
}

/// `SELECT count(*) FROM points` on a tenant database.
private func countPoints(_ path: String) throws -> Int {
    guard let text = shell("sqlite3 '\(path)' 'SELECT count(*) FROM points'") else {
        throw BenchError("sqlite3 could not count the points of \(path) (apt-get install sqlite3)")
    }
    guard let count = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw BenchError("sqlite3 answered \(text)")
    }
    return count
}
