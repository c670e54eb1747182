import CIoTCoAP
import IoTCore

/// Counts the DTLS handshakes that fail on the CoAP DTLS listener, as the TLS listeners count refused
/// handshakes: each through the listener's refusal callback (a refused submission to the
/// ``IoTCore/IngestGateway`` with ``IoTCore/IoTError/Code/unauthorized``), once per handshake.
///
/// libcoap 4.3.1 reports a new DTLS session on its first ClientHello (`COAP_EVENT_SERVER_SESSION_NEW`, the
/// session of type "hello"), turns the same session into a server session once the client has answered the
/// cookie exchange, and reports `COAP_EVENT_DTLS_CONNECTED` when the handshake completes. A server session
/// that ends before that (`COAP_EVENT_DTLS_ERROR`, `COAP_EVENT_DTLS_CLOSED` or `COAP_EVENT_SERVER_SESSION_DEL`,
/// whichever comes first) is a refused handshake:
/// - an unknown PSK identity: the identity callback returns no key and OpenSSL fails the handshake at once;
/// - a wrong key: OpenSSL drops the client's Finished (DTLS discards records it cannot decrypt), so the
///   handshake ends only when OpenSSL's DTLS retransmissions run out: 26, 58 or 118 s after the client
///   gave up in our runs (5 to 7 periods of a timer that doubles from 1 s; the client's own
///   retransmissions decide how many).
///
/// Used on the CoAP I/O thread only (libcoap calls the event handler and the identity callback from
/// `coap_io_process`), so it needs no lock.
final class CoAPHandshakeCounter {
    /// Server sessions in their handshake → why it failed, once known.
    private var open: [UInt: String?] = [:]
    private let onRefused: @Sendable (IoTError) -> Void

    init(onRefused: @escaping @Sendable (IoTError) -> Void) {
        self.onRefused = onRefused
    }

    /// A libcoap event of `session`.
    func event(_ session: OpaquePointer, _ event: coap_event_t) {
        guard coap_session_get_proto(session) == COAP_PROTO_DTLS else { return }
        let key = UInt(bitPattern: session)
        switch event {
        case COAP_EVENT_SERVER_SESSION_NEW:
            open[key] = .some(nil)
        case COAP_EVENT_DTLS_CONNECTED:
            open[key] = nil
        case COAP_EVENT_DTLS_ERROR, COAP_EVENT_DTLS_CLOSED, COAP_EVENT_SERVER_SESSION_DEL:
            // A session still of type "hello" never answered the cookie: not a handshake attempt (it may be a
            // spoofed address), so not counted.
            guard let reason = open.removeValue(forKey: key), coap_session_get_type(session) == COAP_SESSION_TYPE_SERVER
            else { return }
            onRefused(
                IoTError(
                    .unauthorized,
                    reason
                        ?? "DTLS handshake failed: the client's pre-shared key does not match its PSK identity (or it gave up); give the device the key configured for its identity in coap.dtls.keys"
                ))
        default:
            break
        }
    }

    /// The identity callback found no key for `identity`: the handshake of `session` fails.
    func unknownIdentity(_ session: OpaquePointer, _ identity: String) {
        let key = UInt(bitPattern: session)
        guard open[key] != nil else { return }
        let shown = identity.count > 64 ? String(identity.prefix(64)) + "…" : identity
        open[key] = .some(
            "DTLS handshake refused: PSK identity \"\(shown)\" is not configured; add it to coap.dtls.keys or give the device a configured identity"
        )
    }
}

/// libcoap's event handler of the listener's context: a file-scope C function (never actor-isolated) that
/// finds the server through the context's app data.
let coapListenerEventHandler: coap_event_handler_t = { session, event in
    guard let session, let context = coap_session_get_context(session), let server = coap_get_app_data(context) else {
        return 0
    }
    Unmanaged<CoAPServer>.fromOpaque(server).takeUnretainedValue().handshakeCounter?.event(session, event)
    return 0
}
