import IoTCore
import IoTRules
import Testing

@Suite struct TemplateTests {
    @Test func placeholdersDottedPathsAndEscape() throws {
        let t = try Template("Device ${device_name} (${device.uid}) costs $5, literal $${x} and ${ spaced }.")
        #expect(t.variables == ["device_name", "device.uid", "spaced"])
        let out = t.render(["device_name": "pump", "device.uid": "p-1", "spaced": "ok"])
        #expect(out == "Device pump (p-1) costs $5, literal ${x} and ok.")
    }
}
