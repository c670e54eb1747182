/// Turns one inbound message into records. Pure and synchronous, so it is trivial to test.
///
/// ```swift
/// let records = try JSONParser().parse(InboundMessage(transport: "http", deviceUID: "t-1", text: #"{"temp": 21.5}"#))
/// ```
///
/// ## Implementing a parser
/// - Throw ``IoTError`` with code ``IoTError/Code/malformedPayload`` and a message naming what is wrong
///   (where, and what was expected) for input you cannot read. Never crash, never log-and-drop, never
///   return part of a message you could not read entirely: the ingestor rejects a message as a whole.
/// - Return records in payload order. Leave ``DeviceRecord/time`` `nil` when the payload has no time;
///   the ingestor stamps server time before journaling.
/// - Use ``InboundMessage/deviceUID`` as the record's device unless the payload names another one
///   (gateway payloads); throw when neither is known.
/// - Be safe to call from many threads at once (`Sendable`, no shared mutable state).
/// - Check an implementation with `IoTTesting.ParserVerifier` (golden cases, truncation, garbage).
public protocol Parser: Sendable {
    /// A short name, used in configuration and counters (`json`, `senml`).
    var name: String { get }
    /// Parses one message into records.
    func parse(_ message: InboundMessage) throws(IoTError) -> [DeviceRecord]
}
