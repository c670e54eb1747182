import Foundation
import IoTCore
import Testing

@Suite struct SignalValueTests {
    @Test(arguments: [
        (SignalValue.text("21.5"), SignalType.number, SignalValue?.some(.number(21.5))),
        (.text("abc"), .number, nil),
        (.number(.nan), .number, nil),
        (.number(1), .bool, .bool(true)),
        (.number(2), .bool, nil),
        (.text(" ON "), .bool, .bool(true)),
        (.bool(false), .number, .number(0)),
        (.number(3), .text, .text("3.0")),
    ])
    func conversion(value: SignalValue, type: SignalType, expected: SignalValue?) {
        #expect(value.converted(to: type) == expected)
    }
}

@Suite struct ModelDecodingTests {
    @Test func handWrittenModelsNeedOnlyTheirIdentifiers() throws {
        let json = #"{"id": "thermo", "signals": [{"name": "temp", "unit": "°C"}, {"name": "on", "type": "bool"}]}"#
        let product = try JSONDecoder().decode(Product.self, from: Data(json.utf8))
        #expect(
            product
                == Product(id: "thermo", signals: [Signal(name: "temp", unit: "°C"), Signal(name: "on", type: .bool)]))
        let device = try JSONDecoder().decode(Device.self, from: Data(#"{"uid": "t-1", "product": "thermo"}"#.utf8))
        #expect(device == Device(uid: "t-1", product: "thermo"))
        // What is encoded decodes back to the same value.
        let full = Device(
            uid: "d", product: "p", name: "n", tags: ["a": "b"], department: "x", pushIntervalMillis: 5,
            signals: [Signal(name: "s")], createdAt: 9)
        #expect(try JSONDecoder().decode(Device.self, from: JSONEncoder().encode(full)) == full)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(Device.self, from: Data(#"{"uid": "t-1"}"#.utf8))
        }
    }
}
