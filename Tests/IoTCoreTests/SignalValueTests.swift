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
