import IoTCore
import IoTTesting
import ScaleDevice
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ScaleTransportTests {
    @Test func linesAreStoredAndAnsweredAfterTheJournalReceipt() async throws {
        let h = try await IngestHarness(start: false)
        // The harness's product has no `weight`; a product of your own would name it.
        try await h.registry.saveProduct(
            h.scope,
            Product(id: "thermo", signals: IngestHarness.product.signals + [Signal(name: "weight", unit: "kg")]))
        h.ingestor.invalidate(tenant: IngestHarness.tenant)
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let device = fds[0]
        let scale = ScaleTransport(
            device: DeviceIdentity(tenant: IngestHarness.tenant, deviceUID: "t-1"), ingestor: h.ingestor
        ) {
            FileDescriptorStream(descriptor: device)
        }
        let peer = FileDescriptorStream(descriptor: fds[1])
        try await h.withRunning([scale]) {
            try await peer.write(Array("W,12.5,kg\nW,800,g\nW,oops\n".utf8))
            var answers = ""
            while answers.split(separator: "\n").count < 3, let chunk = try await peer.read() {
                answers += String(decoding: chunk, as: UTF8.self)
            }
            #expect(answers == "OK\nOK\nERR malformed_payload\n")
            let points = try await h.waitForPoints("t-1", "weight", count: 2)
            #expect(
                points.map(\.value) == [.number(12.5), .number(0.8)],
                "two lines, two points: never one overwriting the other")
            await peer.close()
        }
    }
}
