import IoTYAML
import Testing
import Yams

/// Issue 18, item 3: an unknown key of a configuration is an error naming the key.
@Suite struct StrictYAMLDecoderTests {
    struct Listener: Decodable {
        var host: String?
        var port: Int
        var maxBodyBytes: Int?
    }
    struct Settings: Decodable {
        var http: Listener?
        var tcp: [Listener]?
        var headers: [String: String]?
    }

    func decode(_ text: String) throws(ConfigurationDecodingError) -> Settings {
        let node: Node
        do { node = try Yams.compose(yaml: text) ?? Node([(Node, Node)]()) } catch {
            Issue.record("not YAML: \(error)")
            return Settings()
        }
        return try StrictYAMLDecoder.decode(Settings.self, from: node)
    }

    @Test func knownKeysDecodeAndAbsentOptionalKeysAreFine() throws {
        let s = try decode(
            "http: { port: 8080 }\ntcp: [{ port: 9000, host: 0.0.0.0 }]\nheaders: { X-A: b, anything: c }")
        #expect(s.http?.port == 8080 && s.http?.host == nil)
        #expect(s.tcp?.first?.host == "0.0.0.0")
        #expect(s.headers == ["X-A": "b", "anything": "c"], "a map's keys are its data, never unknown")
    }

    @Test func anUnknownKeyIsNamedWithItsPathAndTheNearestKnownOne() {
        for (text, path, hint) in [
            ("htp: { port: 1 }", "htp", "did you mean http?"),
            ("http: { port: 1, maxBodyByte: 10 }", "http.maxBodyByte", "did you mean maxBodyBytes?"),
            ("tcp: [{ port: 1 }, { port: 2, prot: 3 }]", "tcp[1].prot", "did you mean port?"),
        ] {
            #expect(
                performing: { try decode(text) },
                throws: { error in
                    guard let error = error as? ConfigurationDecodingError else { return false }
                    return error.path == path && error.message.contains(hint) && error.message.contains("keys here:")
                })
        }
    }

    @Test func typeErrorsNameTheKeyInWords() {
        #expect(
            performing: { try decode("tcp: [{ port: x }]") },
            throws: { error in
                (error as? ConfigurationDecodingError)?.description == "tcp[0].port: expected a whole number"
            })
        #expect(
            performing: { try decode("http: { host: h }") },
            throws: { error in
                (error as? ConfigurationDecodingError)?.description == "http.port: missing; this key is required here"
            })
    }
}
