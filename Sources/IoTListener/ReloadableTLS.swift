package import HummingbirdCore
package import IoTCore
package import Logging
package import NIOCore
package import NIOSSL
import Synchronization

/// The SSL context of one running listener, made again from the same files by
/// ``ListenerTLS/reloadCertificates()`` (`iotd` calls it on SIGHUP): connections accepted afterwards use
/// the new certificate, open connections keep theirs.
package final class TLSContextSource: Sendable {
    /// The files it is made from.
    package let tls: ListenerTLS
    private let current: Mutex<NIOSSLContext>

    /// The context of `tls`, registered for reloads while this source lives.
    ///
    /// - Throws: what ``ListenerTLS/makeContext()`` throws.
    package init(_ tls: ListenerTLS) throws(IoTError) {
        self.tls = tls
        current = Mutex(try tls.makeContext())
        TLSContextSource.live.withLock { $0[ObjectIdentifier(self)] = Weak(source: self) }
    }

    deinit {
        let id = ObjectIdentifier(self)
        _ = TLSContextSource.live.withLock { $0.removeValue(forKey: id) }
    }

    /// The context for the next connection.
    package var context: NIOSSLContext { current.withLock { $0 } }

    /// Makes the context again from the files; on an error the current one stays.
    package func reload() throws(IoTError) {
        let fresh = try tls.makeContext()
        current.withLock { $0 = fresh }
    }

    private struct Weak: Sendable {
        weak var source: TLSContextSource?
    }

    /// The sources of the running listeners.
    private static let live = Mutex<[ObjectIdentifier: Weak]>([:])

    static var running: [TLSContextSource] { live.withLock { $0.values.compactMap(\.source) } }
}

extension ListenerTLS {
    /// What ``reloadCertificates()`` did.
    public struct Reload: Sendable, Hashable {
        /// Listeners now serving the certificate read from their files.
        public var reloaded: Int
        /// Listeners that keep their previous certificate, each with why (a missing file, a key that does
        /// not belong to the certificate).
        public var failures: [String]
    }

    /// Reads the certificate, key and client CA files of every running TLS listener (HTTP, WebSocket, TCP,
    /// the management API) again. Connections accepted afterwards get the new certificate; open ones are not
    /// touched. A listener whose files do not load keeps its previous certificate and is named in
    /// ``Reload/failures``. `iotd` calls it on SIGHUP, as nginx reloads certificates: renew with certbot or
    /// an ACME client, then `kill -HUP`.
    public static func reloadCertificates() -> Reload {
        var result = Reload(reloaded: 0, failures: [])
        for source in TLSContextSource.running {
            do {
                try source.reload()
                result.reloaded += 1
            } catch {
                result.failures.append("\(source.tls.certificatePath): \(error.message)")
            }
        }
        return result
    }
}

/// Hummingbird's `TLSChannel`, with the SSL context taken from a ``TLSContextSource`` for each connection.
package struct ReloadableTLSChannel<BaseChannel: ServerChildChannel>: ServerChildChannel {
    package typealias Value = BaseChannel.Value
    let source: TLSContextSource
    var baseChannel: BaseChannel

    package init(_ baseChannel: BaseChannel, source: TLSContextSource) {
        self.baseChannel = baseChannel
        self.source = source
    }

    package func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let context = source.context
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        }.flatMap {
            self.baseChannel.setup(channel: channel, logger: logger)
        }
    }

    package func handle(value: BaseChannel.Value, logger: Logger) async {
        await baseChannel.handle(value: value, logger: logger)
    }
}

extension ReloadableTLSChannel: HTTPChannelHandler where BaseChannel: HTTPChannelHandler {
    package var responder: HTTPChannelHandler.Responder { baseChannel.responder }
}
