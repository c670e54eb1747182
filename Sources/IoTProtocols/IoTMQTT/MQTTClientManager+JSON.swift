import Foundation
public import IoTCore

extension MQTTClientManager {
    /// The JSON form of the administration calls, for the management API (`/api/v1/mqtt/clients`):
    /// an ``MQTTClientSpec`` in, a ``Report`` (or an array of them) out.
    ///
    /// - Throws: ``IoTCore/IoTError``: `invalidArgument` for a body that is not a spec, and whatever the
    ///   call throws.
    public func listJSON() throws(IoTError) -> [UInt8] { try Self.encode(list()) }

    /// One client's report as JSON.
    public func reportJSON(id: String) throws(IoTError) -> [UInt8] { try Self.encode(try report(id)) }

    /// Creates a client from a JSON spec; its broker must be allowed by ``Configuration/outbound``.
    public func createJSON(_ body: [UInt8]) async throws(IoTError) -> [UInt8] {
        let spec = try Self.decodeSpec(body)
        try configuration.outbound.check(host: spec.broker.host, what: "MQTT broker")
        return try Self.encode(try await create(spec))
    }

    /// Replaces client `id` with a JSON spec (its `id` field, when present, must match).
    public func updateJSON(id: String, _ body: [UInt8]) async throws(IoTError) -> [UInt8] {
        var spec = try Self.decodeSpec(body, id: id)
        guard spec.id == id else {
            throw IoTError(.invalidArgument, "the body names client '\(spec.id)' but the path names '\(id)'")
        }
        spec.id = id
        try configuration.outbound.check(host: spec.broker.host, what: "MQTT broker")
        return try Self.encode(try await update(spec))
    }

    static func decodeSpec(_ body: [UInt8], id: String? = nil) throws(IoTError) -> MQTTClientSpec {
        var bytes = body
        if let id, var object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any],
            object["id"] == nil
        {
            object["id"] = id
            bytes = (try? JSONSerialization.data(withJSONObject: object)).map { Array($0) } ?? body
        }
        do {
            return try JSONDecoder().decode(MQTTClientSpec.self, from: Data(bytes))
        } catch let DecodingError.keyNotFound(key, context) {
            let path = (context.codingPath + [key]).map(\.stringValue).joined(separator: ".")
            throw IoTError(.invalidArgument, "the MQTT client spec lacks \"\(path)\"")
        } catch let DecodingError.typeMismatch(_, context) {
            throw IoTError(
                .invalidArgument,
                "the MQTT client spec field \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type"
            )
        } catch {
            throw IoTError(.invalidArgument, "the body is not an MQTT client spec: \(error)")
        }
    }

    static func encode(_ value: some Encodable) throws(IoTError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw IoTError(.storage, "cannot encode the MQTT client report: \(error)")
        }
    }
}
