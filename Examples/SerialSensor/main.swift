// A device on a serial line: a sensor that writes one JSON object per line and expects "OK <sequence>" or
// "ERR <code> <message>" back for each, after the message is in the journal.
//
// `SerialLineTransport` subclasses IoTCore's `StreamTransport`: it only says how to open the line (raw mode,
// 8N1, no echo, via termios) and what to answer; the base class reads, frames by line, hands each message
// to the real `Ingestor` (journal + SQLite store), writes the ack only after the receipt, skips oversize
// frames, and reopens the line with backoff when it goes away.
//
//   socat -d -d pty,raw,echo=0,link=/tmp/sensor-host pty,raw,echo=0,link=/tmp/sensor-device &
//   swift run SerialSensorExample --device /tmp/sensor-host --seconds 30
//   echo '{"temp": 21.5}' > /tmp/sensor-device        # the sensor's side; "OK 1" comes back on it
import IoTCore
import IoTStorage
import Logging

#if canImport(Glibc)
    import Glibc
#endif

final class SerialLineTransport: StreamTransport, @unchecked Sendable {
    let path: String

    init(path: String, identity: DeviceIdentity, ingestor: Ingestor, logger: Logger) {
        self.path = path
        super.init(
            name: "serial", identity: identity, parser: JSONParser(),
            configuration: .init(
                maxFrameBytes: 4_096, reconnectInitialDelay: .milliseconds(200), reconnectMaxDelay: .seconds(2)),
            ingestor: ingestor, logger: logger)
    }

    override func connect() async throws -> any ByteStream {
        let fd = open(path, O_RDWR | O_NOCTTY)
        guard fd >= 0 else {
            throw IoTError(.unavailable, "cannot open \(path): \(String(cString: strerror(errno)))", nativeCode: errno)
        }
        var tio = termios()
        if tcgetattr(fd, &tio) == 0 {
            cfmakeraw(&tio)
            cfsetispeed(&tio, speed_t(B115200))
            cfsetospeed(&tio, speed_t(B115200))
            tio.c_cflag |= tcflag_t(CLOCAL | CREAD)
            _ = tcsetattr(fd, TCSANOW, &tio)
        }
        logger.info("serial line open", metadata: ["path": "\(path)"])
        return FileDescriptorStream(descriptor: fd)
    }

    override func acknowledgement(for result: Result<Receipt, IoTError>) -> [UInt8]? {
        switch result {
        case .success(let receipt): Array("OK \(receipt.sequence)\n".utf8)
        case .failure(let error):
            Array("ERR \(error.code.name) \(error.message.split(separator: "\n").joined(separator: " "))\n".utf8)
        }
    }
}

/// Writes a line to stdout at once (print is block-buffered into a pipe).
func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

var seconds = 3
var device = "/dev/ttyUSB0"
var directory = "/tmp/serial-sensor-example-\(getpid())"
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    if a == "--seconds", let v = args.next().flatMap({ Int($0) }) { seconds = v }
    if a == "--device", let v = args.next() { device = v }
    if a == "--dir", let v = args.next() { directory = v }
}

var logger = Logger(label: "example")
logger.logLevel = .warning
let storage = try SQLiteStorage(configuration: .init(directory: directory), logger: logger)
let registry = SQLiteRegistryStore(storage: storage)
let points = SQLitePointStore(storage: storage)
let journal = try FileJournal(configuration: .init(directory: directory + "/journal"), logger: logger)
let sensor = DeviceIdentity(tenant: "lab", deviceUID: "serial-sensor")
try await registry.saveTenant(Tenant(id: sensor.tenant))
try await registry.saveProduct(.tenant(sensor.tenant), Product(id: "thermo", signals: [Signal(name: "temp")]))
try await registry.saveDevice(.tenant(sensor.tenant), Device(uid: sensor.deviceUID, product: "thermo"))

let ingestor = Ingestor(journal: journal, pointStore: points, registry: registry, logger: logger)
let line = SerialLineTransport(path: device, identity: sensor, ingestor: ingestor, logger: logger)
say("serving \(device)")
try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await ingestor.run() }
    group.addTask { try await line.run() }
    try await Task.sleep(for: .seconds(seconds))
    group.cancelAll()
}
let stored = try await points.range(
    .tenant(sensor.tenant), series: SeriesKey(device: sensor.deviceUID, signal: "temp"), from: 0, to: .max, limit: nil,
    order: .ascending)
say("stored \(stored.count): \(stored.map { $0.value.description }.joined(separator: " "))")
let s = ingestor.statistics
say("received \(s.received) stored \(s.stored) rejected \(s.rejectedTotal)")
