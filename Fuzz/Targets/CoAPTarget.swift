import CIoTCoAP
import IoTCore
import IoTProtocols

extension FuzzTarget {
    /// A CoAP request as the CoAP listener reads it. The bytes are one UDP datagram: libcoap parses it into a
    /// PDU (`coap_pdu_parse`, as on receive), then the listener's request reading runs on it: the Uri-Path
    /// (`coap_get_uri_path`) and Uri-Query (`coap_get_query`) into ``IoTCoAP/CoAPTelemetryRoute``, the
    /// Content-Format option into a media type, the payload (`coap_get_data_large`) into the parser the
    /// listener picks for that format, and a failure into the ``IoTCoAP/CoAPReply`` error body, which must
    /// read back as JSON naming the same message.
    public static func fuzzCoAP(_ data: [UInt8]) {
        _ = libcoapStarted
        guard let pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_EMPTY_CODE, 0, data.count + 8) else { return }
        defer { coap_delete_pdu(pdu) }
        guard coap_pdu_parse(COAP_PROTO_UDP, data, data.count, pdu) != 0 else { return }
        let request = CoAPRequestFields(pdu)
        do throws(IoTError) {
            let route = try CoAPTelemetryRoute.parse(path: request.path, query: request.query)
            precondition(
                !route.token.isEmpty, "an empty token was read from path '\(request.path)' query '\(request.query)'")
            let parser: any Parser
            switch request.contentFormat {
            case nil, CoAPContentFormat.json: parser = JSONParser()
            case CoAPContentFormat.senmlJSON: parser = SenMLParser()
            default: throw IoTError(.malformedPayload, "Content-Format \(request.contentFormat ?? 0) is not supported")
            }
            _ = try parser.parse(
                InboundMessage(
                    transport: "coap", deviceUID: "dev-1", topic: request.path,
                    contentType: CoAPContentFormat.mediaType(request.contentFormat), payload: request.payload,
                    receivedAt: 1_700_000_000_000))
        } catch {
            checkErrorReply(error)
        }
    }

    /// The error reply's body must be JSON whose `message` is the error's message.
    private static func checkErrorReply(_ error: IoTError) {
        let reply = CoAPReply.error(error)
        precondition((400..<600).contains(reply.code), "error reply code \(reply.code)")
        let records: [DeviceRecord]
        do {
            records = try JSONParser().parse(InboundMessage(transport: "coap", deviceUID: "dev-1", payload: reply.body))
        } catch {
            preconditionFailure(
                "the error reply is not JSON (\(error.message)): \(String(decoding: reply.body, as: UTF8.self))")
        }
        precondition(
            records.count == 1 && records[0].values["message"] == .text(error.message),
            "the error reply does not carry the message: \(String(decoding: reply.body, as: UTF8.self))")
    }
}

/// libcoap's start-up, once, with its logging silenced (level 0, `LOG_EMERG`): a malformed datagram is logged
/// at warning level.
private let libcoapStarted: Void = {
    coap_startup()
    coap_set_log_level(0)
}()

/// What the listener's request handler reads from a request PDU (its private helpers, with the same libcoap calls).
private struct CoAPRequestFields {
    var path = ""
    var query = ""
    var contentFormat: Int?
    var payload: [UInt8] = []

    init(_ pdu: OpaquePointer) {
        if let string = coap_get_uri_path(pdu) {
            path = String(
                decoding: UnsafeBufferPointer(start: string.pointee.s, count: string.pointee.length), as: UTF8.self)
            coap_delete_string(string)
        }
        if let string = coap_get_query(pdu) {
            query = String(
                decoding: UnsafeBufferPointer(start: string.pointee.s, count: string.pointee.length), as: UTF8.self)
            coap_delete_string(string)
        }
        var iterator = coap_opt_iterator_t()
        if let option = coap_check_option(pdu, coap_option_num_t(COAP_OPTION_CONTENT_FORMAT), &iterator) {
            contentFormat = Int(coap_decode_var_bytes(coap_opt_value(option), Int(coap_opt_length(option))))
        }
        var length = 0
        var data: UnsafePointer<UInt8>?
        var offset = 0
        var total = 0
        _ = coap_get_data_large(pdu, &length, &data, &offset, &total)
        if length > 0, let data { payload = Array(UnsafeBufferPointer(start: data, count: length)) }
        _ = coap_pdu_get_token(pdu)
    }
}
