/// One message as a transport received it, before parsing.
public struct InboundMessage: Sendable, Hashable {
    /// The transport's name (`http`, `mqtt`, `coap`, `tcp`, or a custom one).
    public var transport: String
    /// The connected unit, when the transport knows it (authenticated device, MQTT client id, topic part).
    public var deviceUID: String?
    /// The MQTT topic or the URI path, when there is one.
    public var topic: String?
    /// The declared content type (`application/json`, `application/senml+json`), when there is one.
    public var contentType: String?
    /// The payload bytes.
    public var payload: [UInt8]
    /// When the transport received the message (UTC ms). The ``Ingestor`` sets it from its clock when
    /// `nil`. Parsers resolve relative times against it (SenML) and leave records without time `nil`.
    public var receivedAt: Int64?
    /// Whether the sender is a gateway (``GatewayScope``), once the ``Ingestor`` knows the sender: `false`
    /// makes the JSON parser's ``JSONParser/Layout/auto`` read the device form only, since a device that is
    /// not a gateway speaks only for itself. `nil` (a transport's own message, or an unknown sender): as
    /// the parser's layout says.
    public var fromGateway: Bool?

    /// Creates a message.
    public init(
        transport: String, deviceUID: String? = nil, topic: String? = nil, contentType: String? = nil, payload: [UInt8],
        receivedAt: Int64? = nil
    ) {
        self.transport = transport
        self.deviceUID = deviceUID
        self.topic = topic
        self.contentType = contentType
        self.payload = payload
        self.receivedAt = receivedAt
    }

    /// Creates a message from a UTF-8 string payload.
    public init(
        transport: String, deviceUID: String? = nil, topic: String? = nil, contentType: String? = nil, text: String,
        receivedAt: Int64? = nil
    ) {
        self.init(
            transport: transport, deviceUID: deviceUID, topic: topic, contentType: contentType,
            payload: Array(text.utf8),
            receivedAt: receivedAt)
    }
}
