import CIoTCoAP
import IoTCore
import IoTProtocols
import Testing

@testable import IoTCoAP

#if canImport(Glibc)
    import Glibc
#endif

/// The I/O thread's wait reads a burst of queued datagrams in a few waits, not one wait each, and reads
/// one at a time again once the burst is gone (a real libcoap context and UDP socket on loopback).
@Suite("CoAP datagram reader")
struct CoAPDatagramReaderTests {
    /// Counts the requests libcoap hands to the resource handler.
    final class Counter: @unchecked Sendable {
        // @unchecked Sendable: only touched on the test's thread, inside `coap_io_do_epoll`.
        var requests = 0
    }

    @Test("15 queued NON requests are all answered within 4 waits; then one alone sets the reads back to 1")
    func burstIsReadInFewWaits() throws {
        let ctx = try coapContext()
        defer { coap_free_context(ctx) }
        let port = try CoAPServer.bindEndpoint(ctx, host: "127.0.0.1", port: 0, proto: COAP_PROTO_UDP) {
            () throws(IoTError) in
            try CoAPServer.freeUDPPort(host: "127.0.0.1")
        }
        let counter = Counter()
        let handler: coap_method_handler_t = { resource, _, _, _, response in
            guard let resource, let response, let data = coap_resource_get_userdata(resource) else { return }
            Unmanaged<Counter>.fromOpaque(data).takeUnretainedValue().requests += 1
            coap_pdu_set_code(response, ciot_coap_response_code(204))
        }
        let resource = coap_resource_unknown_init2(handler, 0)
        coap_register_request_handler(resource, COAP_REQUEST_POST, handler)
        coap_resource_set_userdata(resource, Unmanaged.passUnretained(counter).toOpaque())
        coap_add_resource(ctx, resource)

        let device = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(device >= 0)
        defer { close(device) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(device, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var server = sockaddr_in()
        server.sin_family = sa_family_t(AF_INET)
        server.sin_port = UInt16(port).bigEndian
        server.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        func send(messageID: UInt16) {
            // NON POST, no token, Uri-Path "t".
            let datagram: [UInt8] = [
                0x50, 0x02, UInt8(messageID >> 8), UInt8(messageID & 0xFF), 0xB1, UInt8(ascii: "t"),
            ]
            let sent = withUnsafePointer(to: &server) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(device, datagram, datagram.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            #expect(sent == datagram.count)
        }
        func answers(_ expected: Int) -> Int {
            var buffer = [UInt8](repeating: 0, count: 64)
            var got = 0
            for _ in 0..<expected {
                let n = recv(device, &buffer, buffer.count, 0)
                guard n >= 4 else { break }
                if buffer[1] == 0x44 { got += 1 }  // 2.04
            }
            return got
        }

        // A loopback send is queued on the server's socket before `sendto` returns.
        for id in 1...15 { send(messageID: UInt16(id)) }
        var reader = CoAPDatagramReader(epollFD: coap_context_get_coap_fd(ctx))
        for _ in 0..<4 {
            reader.waitAndProcess(ctx, prepareFirst: true) { counter.requests }
        }
        // One read per wait would have answered 4; the reads double: 1 + 2 + 4 + 8.
        #expect(counter.requests == 15)
        #expect(reader.reads == CoAPDatagramReader.maxReadsPerWait)
        #expect(answers(15) == 15)

        // Nothing queued but one request: it is answered, and the next wait reads one datagram.
        send(messageID: 100)
        reader.waitAndProcess(ctx, prepareFirst: false) { counter.requests }
        #expect(counter.requests == 16)
        #expect(reader.reads == 1)
        #expect(answers(1) == 1)
    }
}

/// Port 0: a port picked for the listener can be taken by another socket before libcoap binds it; the
/// next pick is tried (a real libcoap context; the taken port is held by a plain UDP socket).
@Suite("CoAP endpoint binding")
struct CoAPEndpointBindTests {
    /// A UDP socket bound to a free loopback port, and that port.
    static func holdPort() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        try #require(ok)
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    @Test("a picked port that another socket took is skipped; a configured port in use is a clear error")
    func takenPortIsSkipped() throws {
        let ctx = try coapContext()
        defer { coap_free_context(ctx) }
        let taken = try Self.holdPort()
        defer { close(taken.fd) }

        var picks: [Int] = []
        let bound = try CoAPServer.bindEndpoint(ctx, host: "127.0.0.1", port: 0, proto: COAP_PROTO_UDP) {
            () throws(IoTError) in
            let port = picks.isEmpty ? taken.port : try CoAPServer.freeUDPPort(host: "127.0.0.1")
            picks.append(port)
            return port
        }
        #expect(picks.count == 2)
        #expect(picks.first == taken.port)
        #expect(bound == picks.last)
        #expect(bound != taken.port)

        // A port that was configured is not replaced by another one.
        let error = #expect(throws: IoTError.self) {
            try CoAPServer.bindEndpoint(ctx, host: "127.0.0.1", port: taken.port, proto: COAP_PROTO_UDP) {
                () throws(IoTError) in
                Issue.record("a configured port must not be picked again")
                return 0
            }
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("is the port in use?") == true)
    }
}

/// A libcoap context that logs nothing below emergencies; the caller frees it (`coap_free_context`).
private func coapContext() throws -> OpaquePointer {
    coap_startup()
    coap_set_log_level(coap_log_t(LOG_EMERG))
    return try #require(coap_new_context(nil))
}
