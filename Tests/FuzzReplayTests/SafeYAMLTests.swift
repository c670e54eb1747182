import IoTYAML
import Testing
import Yams

/// The configuration fuzz target's crash (`Fuzz/Crashes/configuration/crash-464db48…`): Yams reads a plain
/// `-3333333333333333333:3` as a base-60 integer with unchecked arithmetic and traps. SafeYAML reads such a
/// scalar as a string.
@Suite struct SafeYAMLTests {
    struct Listener: Decodable {
        var port: Int?
        var at: String?
        var small: UInt8?
    }

    @Test func anOverflowingBase60NumberIsATypeErrorNotATrap() throws {
        for text in [
            "port: -3333333333333333333:3", "port: 1:2:3:4:5:6:7:8:9:10:11:12", "small: 4:16", "port: 1_0:3_0",
        ] {
            let node = try #require(try SafeYAML.compose(text))
            #expect(throws: DecodingError.self, "\(text)") { try YAMLDecoder().decode(Listener.self, from: node) }
        }
    }

    @Test func otherValuesAreReadAsBefore() throws {
        let node = try #require(try SafeYAML.compose("port: 8080\nat: 12:30\nsmall: 0x10"))
        let listener = try YAMLDecoder().decode(Listener.self, from: node)
        #expect(listener.port == 8080)
        #expect(listener.at == "12:30", "a string setting keeps its text")
        #expect(listener.small == 16)
        let nested = try #require(try SafeYAML.compose("a: [1:30, {b: 2:0}]\nc: \"7:00\""))
        guard case .mapping(let top) = nested, case .sequence(let list)? = top["a"],
            case .mapping(let inner) = list[1]
        else {
            Issue.record("unexpected shape: \(nested)")
            return
        }
        #expect(list[0].scalar?.style == .doubleQuoted && inner["b"]?.scalar?.style == .doubleQuoted)
        #expect(top["c"]?.scalar?.string == "7:00")
    }
}
