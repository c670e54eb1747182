import Foundation
import IoTCore
import Logging
import PostgresNIO

extension PostgresStorage {
    /// Hands every notification of `channel` to `handle`, on a connection of its own, listening again after a
    /// lost connection, until the task is cancelled; `onListening` runs each time `LISTEN` took effect.
    func listen(
        on channel: String, logger: Logger, onListening: @escaping @Sendable () -> Void = {},
        _ handle: @escaping @Sendable (String) async -> Void
    ) async {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: channel) { notifications in
                        onListening()
                        for try await n in notifications { await handle(n.payload) }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning(
                    "lost the PostgreSQL listener; listening again",
                    metadata: ["channel": "\(channel)", "error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Sends `payload` on `channel` (`pg_notify`).
    func notify(_ channel: String, _ payload: String, logger: Logger) async throws {
        try await client.query(
            PostgresQuery(unsafeSQL: "SELECT pg_notify($1, $2)", binds: PostgresStorage.binds(channel, payload)),
            logger: logger)
    }

    /// PostgreSQL refuses a notification payload of 8,000 bytes or more.
    static let maxPayloadBytes = 7_500

    /// `points` in chunks whose `encode`d form is under ``maxPayloadBytes`` each (a point too big alone is left
    /// out), in order.
    static func payloads(of points: [Point], encode: ([Point]) -> Data?) -> [String] {
        var out: [String] = []
        var start = 0
        while start < points.count {
            // Grow the chunk while it fits; halve it when it does not.
            var count = min(points.count - start, 64)
            while true {
                guard let data = encode(Array(points[start..<(start + count)])) else { return out }
                if data.count <= maxPayloadBytes || count == 1 {
                    if data.count <= maxPayloadBytes { out.append(String(decoding: data, as: UTF8.self)) }
                    start += count
                    break
                }
                count /= 2
            }
        }
        return out
    }
}
