public import ServiceLifecycle

/// A source of device messages: MQTT client, HTTP listener, CoAP server, Modbus poller, serial line.
///
/// A transport is a `Service`: `run()` serves until cancelled (graceful shutdown) and then returns after
/// it stopped taking new messages and every message it accepted was handed to the ``IngestGateway``.
///
/// ## Implementing a transport
/// - Submit every message to the ``IngestGateway`` (``IngestGateway/submit(_:)``) and acknowledge the
///   device only when it answers ``IngestOutcome/stored(_:_:)``: then the data is in the journal.
/// - On ``IoTError/Code/backpressure`` do not acknowledge; tell the device to retry (HTTP 503 with
///   `Retry-After`, stop reading the socket for ``IoTError/retryAfterMillis``).
/// - On any other refusal the message is rejected and already counted; answer the device with the
///   error's message and carry on with the next message. One bad message never closes the connection of
///   another device.
/// - Never block the cooperative thread pool: blocking C calls run on their own thread.
/// - For the two common shapes of device I/O, subclass ``PollingTransport`` or ``StreamTransport``
///   instead of starting from scratch.
public protocol Transport: Service {
    /// The name used in messages and counters (`http`, `mqtt`, `modbus`, …).
    var name: String { get }
}
