import Foundation
import NIOCore
import NIOPosix

/// Sends bytes exactly as given over a new loopback connection and reads one response, for requests a
/// well-behaved client would not send (a body shorter than its `Content-Length`, chunked bodies).
enum RawHTTP {
    struct Timeout: Error {}

    /// The status code and the whole response text.
    static func exchange(port: Int, _ request: String, timeout: Duration = .seconds(10)) async throws -> (Int, String) {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let text = try await withThrowingTaskGroup(of: String.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    try await outbound.write(ByteBuffer(string: request))
                    var text = ""
                    for try await chunk in inbound {
                        text += String(buffer: chunk)
                        if isComplete(text) { break }
                    }
                    return text
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw Timeout()
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
        let status = text.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
        return (status, text)
    }

    /// Whether `text` holds a response head and the body its `Content-Length` announces.
    private static func isComplete(_ text: String) -> Bool {
        guard let headEnd = text.range(of: "\r\n\r\n") else { return false }
        let head = text[..<headEnd.lowerBound].lowercased()
        let length =
            head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        return text[headEnd.upperBound...].utf8.count >= length
    }
}
