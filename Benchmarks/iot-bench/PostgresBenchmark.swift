import Foundation
import IoTCluster
import IoTCore
import IoTMQTT
import IoTPostgres
import IoTStorage
import IoTTestSupport
import Logging
import NIOCore
import PostgresNIO

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 24, item 8, in one run on one PostgreSQL that the benchmark starts itself (`initdb`/`pg_ctl` on a free
/// port, as the tests do):
/// - the PostgreSQL point store's points/s (10k-point batches: series ids, points, rollups, the journal watermark
///   in one transaction) against a raw `COPY` and a raw multi-row `INSERT … SELECT FROM unnest(…)` of the same
///   points into the same `points(series, ts, kind, num, txt)` table, 10k rows per transaction (goal ≥ 0.7×),
///   interleaved in rounds (each round's points to all three, in a rotating order), after one untimed warm-up
///   batch each;
/// - one instance's pipeline (journal, ingestor, stores) on PostgreSQL against the same pipeline on SQLite;
/// - the Redis commands per ingested message while a cluster coordinator runs beside that pipeline (goal: 0 on
///   the data path), against the commands of an idle window of the same length.
/// Data as in `ingest`: 100 devices × 10 signals, one sample per second, from the current time on (as devices
/// send it: the store builds a minute's rollup rows once it has closed, and that closing, of everything the data
/// touches, is timed as part of the store's share).
func runPostgresBenchmark(_ options: BenchOptions) async throws {
    let total = options.points ?? (options.smoke ? 20_000 : 1_000_000)
    let devices = 100
    let signals = 10
    print("== postgres: \(grouped(Double(total))) points (\(devices) devices × \(signals) signals)")
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    let server = try await onThread { try PostgresServer() }
    defer { server.stop() }

    // The store and the raw references, interleaved: the points are written in rounds, each round's share to
    // each of the three in a rotating order, so that PostgreSQL's own pace (checkpoints, WAL growth, autovacuum)
    // weighs on all three alike.
    let rounds = options.smoke ? 2 : 5
    let perRound = (total / rounds + 9_999) / 10_000 * 10_000
    let start = Int64(Date().timeIntervalSince1970 * 1000)
    // Point i; a negative `shift` moves it back (the warm-up's points, an hour before the measured ones).
    func point(_ i: Int, shift: Int64 = 0) -> Point {
        Point(
            device: "dev\((i / signals) % devices)", signal: "s\(i % signals)",
            time: start + shift + Int64(i / (devices * signals)) * 1000,
            value: .number(20.0 + Double(i % 997) / 10.0))
    }
    func row(_ i: Int, shift: Int64 = 0) -> (Int64, Int64, Double) {
        (
            Int64((i / signals) % devices * signals + i % signals + 1),
            start + shift + Int64(i / (devices * signals)) * 1000, 20.0 + Double(i % 997) / 10.0
        )
    }
    var seconds = [0.0, 0.0, 0.0]  // store, COPY, INSERT
    var roundRatios: [(copy: Double, insert: Double)] = []
    var closing = (seconds: 0.0, minutes: 0)
    try await withPostgres(server, prefix: "store", logger: logger) { storeStorage in
        try await withPostgres(server, prefix: "raw", logger: logger) { storage in
            let store = PostgresPointStore(storage: storeStorage, configuration: .init(instanceID: "bench"))
            for table in ["raw_copy", "raw_insert"] {
                try await storage.client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            CREATE TABLE \(table)(series bigint NOT NULL, ts bigint NOT NULL, kind smallint NOT NULL,
                              num double precision, txt bytea, PRIMARY KEY(series, ts))
                            """), logger: logger)
            }
            var sequence: UInt64 = 0
            // One batch by one of the three ways: the store, COPY, INSERT.
            func write(_ method: Int, _ batch: Range<Int>, shift: Int64 = 0) async throws {
                switch method {
                case 0:
                    sequence += 1
                    try await store.write(
                        PointBatch(
                            tenant: "bench", points: batch.map { point($0, shift: shift) }, journalSequence: sequence))
                case 1:
                    try await storage.client.withConnection { connection in
                        try await connection.copyFrom(
                            table: "raw_copy", columns: ["series", "ts", "kind", "num"], logger: logger
                        ) { writer in
                            var buffer = ByteBuffer()
                            for i in batch {
                                let (s, t, v) = row(i, shift: shift)
                                buffer.writeString("\(s)\t\(t)\t0\t\(v)\n")
                            }
                            try await writer.write(buffer)
                        }
                    }
                default:
                    var binds = PostgresBindings()
                    binds.append(batch.map { row($0, shift: shift).0 })
                    binds.append(batch.map { row($0, shift: shift).1 })
                    binds.append(batch.map { row($0, shift: shift).2 })
                    try await storage.client.query(
                        PostgresQuery(
                            unsafeSQL: """
                                INSERT INTO raw_insert(series, ts, kind, num)
                                SELECT s, t, 0, n FROM unnest($1::int8[], $2::int8[], $3::float8[]) AS u(s, t, n)
                                """, binds: binds), logger: logger)
                }
            }
            // Untimed, one warm-up batch each (one point per series, an hour earlier): connections open, the
            // store's series created (the raw writers are handed their series ids), tables touched.
            for method in 0..<3 { try await write(method, 0..<(devices * signals), shift: -3_600_000) }
            for round in 0..<rounds {
                let range = (round * perRound)..<min(total, (round + 1) * perRound)
                guard !range.isEmpty else { break }
                var took = [0.0, 0.0, 0.0]
                for k in 0..<3 {
                    let method = (round + k) % 3
                    let t0 = monotonicSeconds()
                    for start in stride(from: range.lowerBound, to: range.upperBound, by: 10_000) {
                        try await write(method, start..<min(range.upperBound, start + 10_000))
                    }
                    took[method] = monotonicSeconds() - t0
                }
                for m in 0..<3 { seconds[m] += took[m] }
                roundRatios.append((took[1] / took[0], took[2] / took[0]))
            }
            // The minute and hour rollups of everything written, built once those minutes close: part of the
            // store's cost.
            let t0 = monotonicSeconds()
            let built = try await store.closeRollups(tenant: "bench", before: point(total - 1).time + 3_600_000)
            closing = (monotonicSeconds() - t0, built)
            seconds[0] += closing.seconds
        }
    }
    let storeRate = Double(total) / seconds[0]
    let copyRate = Double(total) / seconds[1]
    let insertRate = Double(total) / seconds[2]
    print("sdk   PostgresPointStore.write, 10k points/batch:      \(grouped(storeRate)) points/s")
    print(
        String(
            format: "      (of which closing the minutes: %.3f s for %d minute rows; round ratios leave it out)",
            closing.seconds, closing.minutes))
    print("raw   COPY FROM STDIN, same table, 10k rows/txn:       \(grouped(copyRate)) points/s")
    print("raw   INSERT … unnest, same table, 10k rows/txn:       \(grouped(insertRate)) points/s")

    // One instance's pipeline on each storage, with a cluster coordinator on Redis beside the PostgreSQL one.
    let redis = try RedisServer()
    defer { redis.stop() }
    let counter = try RedisClient(url: redis.url)
    func redisCalls() async throws -> Int {
        let info = try await counter.command("INFO", "commandstats").string ?? ""
        return info.split(whereSeparator: \.isNewline).reduce(0) { sum, line in
            guard line.hasPrefix("cmdstat_"), !line.hasPrefix("cmdstat_info:"),
                let calls = line.split(separator: ",").first?.split(separator: "=").last.flatMap({ Int($0) })
            else { return sum }
            return sum + calls
        }
    }

    let messages = total / signals
    let (pgPipeline, pgSeconds, pgRedis) = try await withPostgres(server, prefix: "pipe", logger: logger) { storage in
        let registry = PostgresRegistryStore(storage: storage)
        let store = PostgresPointStore(storage: storage, configuration: .init(instanceID: "bench"))
        let journal = try FileJournal(
            configuration: .init(directory: options.directory + "/pg-journal"), logger: logger)
        let ingestor = Ingestor(journal: journal, pointStore: store, registry: registry, logger: logger)
        let manager = MQTTClientManager(ingestor: ingestor, logger: logger)
        let coordinator = try ClusterCoordinator(
            configuration: .init(url: redis.url, instanceID: "bench"), manager: manager,
            logger: logger)
        let coordinating = Task { try await coordinator.run() }
        // An idle window, then the same length of ingest: the difference is what ingest costs in Redis.
        try await Task.sleep(for: .seconds(1))
        let idle0 = try await redisCalls()
        let i0 = monotonicSeconds()
        try await Task.sleep(for: .seconds(2))
        let idleRate = Double(try await redisCalls() - idle0) / (monotonicSeconds() - i0)
        guard try await coordinator.clusterStatus().instances.contains(where: { $0.id == "bench" && $0.alive }) else {
            throw BenchError("the cluster coordinator did not register with Redis")
        }
        let before = try await redisCalls()
        let (rate, seconds, _) = try await pipelineRate(
            ingestor: ingestor, registry: registry, store: store, messages: messages, devices: devices,
            signals: signals)
        let during = try await redisCalls() - before
        coordinating.cancel()
        await manager.stopAll()
        return (rate, seconds, (during: during, idlePerSecond: idleRate))
    }
    let sqliteStorage = try SQLiteStorage(
        configuration: .init(directory: options.directory + "/sqlite-pipe"), logger: logger)
    let (sqlitePipeline, _, _) = try await pipelineRate(
        ingestor: Ingestor(
            journal: try FileJournal(
                configuration: .init(directory: options.directory + "/sqlite-pipe/journal"), logger: logger),
            pointStore: SQLitePointStore(storage: sqliteStorage), registry: SQLiteRegistryStore(storage: sqliteStorage),
            logger: logger),
        registry: SQLiteRegistryStore(storage: sqliteStorage), store: SQLitePointStore(storage: sqliteStorage),
        messages: messages, devices: devices, signals: signals)
    print("sdk   one instance, journal+ingestor on PostgreSQL:    \(grouped(pgPipeline)) points/s")
    print("sdk   one instance, journal+ingestor on SQLite:        \(grouped(sqlitePipeline)) points/s")
    let expectedIdle = pgRedis.idlePerSecond * pgSeconds
    print(
        String(
            format:
                "redis %d commands while %@ messages were ingested in %.2f s; idle rate %.1f/s would give %.0f: %.4f per message beyond the heartbeats",
            pgRedis.during, grouped(Double(messages)), pgSeconds, pgRedis.idlePerSecond, expectedIdle,
            max(0, Double(pgRedis.during) - expectedIdle) / Double(messages)))
    func spread(_ ratios: [Double]) -> String {
        let sorted = ratios.sorted()
        return String(
            format: "rounds %@, median %.2f×", sorted.map { String(format: "%.2f", $0) }.joined(separator: " "),
            sorted[sorted.count / 2])
    }
    print(
        String(format: "ratio store / raw COPY: %.2f×   (goal ≥ 0.70×; ", storeRate / copyRate)
            + spread(roundRatios.map(\.copy)) + ")")
    print(
        String(format: "ratio store / raw INSERT unnest: %.2f×   (goal ≥ 0.70×; ", storeRate / insertRate)
            + spread(roundRatios.map(\.insert)) + ")")
    print(String(format: "ratio one instance PostgreSQL / SQLite: %.2f×", pgPipeline / sqlitePipeline))
    await counter.close()
}

/// A storage on `server` with its own schema prefix, closed after `body`.
private func withPostgres<T: Sendable>(
    _ server: PostgresServer, prefix: String, logger: Logger, _ body: (PostgresStorage) async throws -> T
) async throws -> T {
    let storage = try PostgresStorage(
        configuration: .init(url: server.url, schemaPrefix: prefix, maximumConnections: 4), logger: logger)
    let running = Task { try await storage.run() }
    do {
        try await storage.waitUntilReachable()
        let result = try await body(storage)
        running.cancel()
        await storage.close()
        return result
    } catch {
        running.cancel()
        await storage.close()
        throw error
    }
}
