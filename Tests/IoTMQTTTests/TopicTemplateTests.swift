import IoTCore
import Testing

@testable import IoTMQTT

@Suite struct TopicTemplateTests {
    @Test func namesTheDeviceOfATopicThatFits() throws {
        let t = try TopicTemplate("devices/{uid}/telemetry")
        #expect(t.filter == "devices/+/telemetry")
        #expect(t.deviceUID(in: "devices/pump-7/telemetry") == "pump-7")
        #expect(t.deviceUID(in: "devices/Pümpe-ü/telemetry") == "Pümpe-ü")
        #expect(t.deviceUID(in: "devices//telemetry") == nil)  // an empty uid
        #expect(t.deviceUID(in: "devices/pump-7") == nil)  // a level short
        #expect(t.deviceUID(in: "devices/pump-7/telemetry/x") == nil)  // a level over
        #expect(t.deviceUID(in: "devices/pump-7/telemetr") == nil)
        #expect(t.deviceUID(in: "devices/pump-7/telemetryy") == nil)
        #expect(t.deviceUID(in: "device/pump-7/telemetry") == nil)
        #expect(t.deviceUID(in: "") == nil)
    }

    @Test func wildcardsMatchAnyLevelAndTheRest() throws {
        let t = try TopicTemplate("site/+/{uid}/#")
        #expect(t.filter == "site/+/+/#")
        #expect(t.deviceUID(in: "site/a/d1/x/y") == "d1")
        #expect(t.deviceUID(in: "site/a/d1") == "d1")  // `#` also matches the parent level, as in MQTT
        #expect(t.deviceUID(in: "site//d1/x") == "d1")
        #expect(t.deviceUID(in: "site/a") == nil)
        let first = try TopicTemplate("{uid}")
        #expect(first.deviceUID(in: "d9") == "d9")
        #expect(first.deviceUID(in: "d9/x") == nil)
        #expect(first.deviceUID(in: "/") == nil)
    }

    @Test func refusesTemplatesThatNameNoOneDevice() {
        #expect(throws: IoTError.self) { try TopicTemplate("devices/+/telemetry") }
        #expect(throws: IoTError.self) { try TopicTemplate("{uid}/{uid}") }
        #expect(throws: IoTError.self) { try TopicTemplate("devices/#/{uid}") }
        #expect(throws: IoTError.self) { try TopicTemplate("devices/x{uid}") }
    }

    /// The byte-level matcher agrees with a plain level-by-level reading on random topics.
    @Test func agreesWithALevelByLevelReading() throws {
        let templates = try ["devices/{uid}/telemetry", "{uid}", "a/+/{uid}/#", "+/{uid}", "x/{uid}/+/y"].map(
            TopicTemplate.init)
        let words = ["devices", "telemetry", "a", "x", "y", "", "d1", "ü", "+", "pump-7"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            let topic = (0..<Int.random(in: 1...5, using: &rng)).map { _ in words.randomElement(using: &rng)! }
                .joined(separator: "/")
            for t in templates {
                #expect(t.deviceUID(in: topic) == reference(t, topic), "\(t) on '\(topic)'")
            }
        }
    }

    private func reference(_ t: TopicTemplate, _ topic: String) -> String? {
        var uid: Substring?
        var parts = topic.split(separator: "/", omittingEmptySubsequences: false)[...]
        for level in t.levels {
            if case .rest = level { return uid.map(String.init) }
            guard let part = parts.popFirst() else { return nil }
            switch level {
            case .literal(let s): if Array(part.utf8) != s { return nil }
            case .uid:
                if part.isEmpty { return nil }
                uid = part
            case .any, .rest: break
            }
        }
        return parts.isEmpty ? uid.map(String.init) : nil
    }
}
