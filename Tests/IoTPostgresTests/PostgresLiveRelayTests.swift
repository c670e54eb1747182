import Foundation
import IoTCore
import Testing

@testable import IoTPostgres

/// The live relay's payloads: every finite point of a batch, in order, in payloads PostgreSQL's NOTIFY takes
/// (under 8,000 bytes), whatever the batch's size.
@Suite struct PostgresLiveRelayTests {
    @Test func aBatchIsSplitIntoPayloadsUnderTheLimitKeepingEveryPoint() throws {
        let points = (0..<3_000).map { i in
            Point(
                device: "d-\(i % 7)", signal: "s", time: Int64(i),
                value: i % 3 == 0 ? .text(String(repeating: "é", count: i % 50)) : .number(Double(i)))
        }
        let odd = [Point(device: "d", signal: "s", time: 1, value: .number(.nan))]
        let huge = [Point(device: "d", signal: "s", time: 2, value: .text(String(repeating: "x", count: 9_000)))]
        let batch = PointBatch(tenant: "acme", points: points + odd + huge, journalSequence: 3)
        let payloads = PostgresLiveRelay.payloads(of: batch, from: "i1")
        #expect(payloads.count > 1)
        #expect(payloads.allSatisfy { $0.utf8.count <= PostgresStorage.maxPayloadBytes })
        let decoded = try payloads.map {
            try JSONDecoder().decode(PostgresLiveRelay.Message.self, from: Data($0.utf8))
        }
        #expect(decoded.allSatisfy { $0.i == "i1" && $0.t == "acme" })
        #expect(
            decoded.flatMap(\.p) == points,
            "every point once, in order; NaN and a point too big for one payload left out")
    }

    /// The rule relay's payloads keep infinities (a range rule's `max` is exceeded by +∞), as text JSON can carry.
    @Test func theRuleRelayCarriesNonFiniteNumbersToTheOwner() throws {
        let points = [
            Point(device: "d", signal: "s", time: 1, value: .number(.infinity)),
            Point(device: "d", signal: "s", time: 2, value: .number(-.infinity)),
            Point(device: "d", signal: "s", time: 3, value: .number(2.5)),
        ]
        let encoder = PostgresRuleRelay.encoder()
        let payloads = PostgresStorage.payloads(of: points) {
            try? encoder.encode(PostgresRuleRelay.Message(i: "i1", to: "i2", t: "acme", p: $0))
        }
        let decoded = try payloads.map {
            try PostgresRuleRelay.decoder().decode(PostgresRuleRelay.Message.self, from: Data($0.utf8))
        }
        #expect(decoded.map(\.to) == ["i2"])
        #expect(decoded.flatMap { $0.p ?? [] } == points)
    }
}
