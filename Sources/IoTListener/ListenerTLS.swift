public import IoTCore
package import NIOSSL

/// TLS for a device listener (HTTP, WebSocket, TCP): the server's certificate and key, and whether devices
/// must present a client certificate issued by a configured CA. TLS 1.2 is the minimum version.
///
/// A verified client certificate identifies a device when its SHA-256 fingerprint or its subject is
/// registered as a certificate credential of the device (IoTAuth's `DeviceAuthService.addCertificate(for:match:value:label:now:)`,
/// or `POST /api/v1/tenants/{tenant}/devices/{uid}/credentials/certificates`).
///
/// ```swift
/// var configuration = TCPTransport.Configuration(port: 9443)
/// configuration.tls = ListenerTLS(
///     certificatePath: "/etc/iotd/server.pem", privateKeyPath: "/etc/iotd/server.key",
///     clientCAPath: "/etc/iotd/devices-ca.pem", clientCertificates: .required)
/// ```
///
/// A handshake that fails (no TLS, an expired certificate or one from another CA, no certificate where one
/// is required) closes that connection only, and is counted as rejected: `unauthorized` for a refused
/// client certificate, `malformed_payload` for anything else.
public struct ListenerTLS: Sendable, Hashable {
    /// Whether devices present client certificates.
    public enum ClientCertificates: String, Sendable, Hashable, CaseIterable {
        /// None is asked for; devices authenticate with tokens or passwords inside TLS.
        case none
        /// Asked for; a certificate that is presented must verify against ``ListenerTLS/clientCAPath``,
        /// but devices without one may still authenticate with a token or password.
        case optional
        /// Every connection must present a certificate that verifies against ``ListenerTLS/clientCAPath``;
        /// the handshake fails otherwise.
        case required
    }

    /// The server certificate chain, PEM (the server certificate first, then intermediates).
    public var certificatePath: String
    /// The server's private key, PEM.
    public var privateKeyPath: String
    /// The CA certificates (PEM) that client certificates must chain to; needed unless
    /// ``clientCertificates`` is ``ClientCertificates/none``.
    public var clientCAPath: String?
    /// Whether devices present client certificates. Default ``ClientCertificates/none``.
    public var clientCertificates: ClientCertificates

    /// Creates a TLS configuration.
    public init(
        certificatePath: String, privateKeyPath: String, clientCAPath: String? = nil,
        clientCertificates: ClientCertificates = .none
    ) {
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.clientCAPath = clientCAPath
        self.clientCertificates = clientCertificates
    }

    /// Checks that the files load and fit together; the listeners call it before binding.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` saying which file or setting to fix.
    public func validate() throws(IoTError) {
        _ = try makeContext()
    }

    /// swift-nio-ssl's server configuration: TLS 1.2 minimum, client certificates as configured.
    package func serverConfiguration() throws(IoTError) -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw IoTError(
                .invalidArgument,
                "cannot load the TLS certificate \(certificatePath): \(error); give a PEM certificate chain file")
        }
        guard !chain.isEmpty else {
            throw IoTError(.invalidArgument, "the TLS certificate file \(certificatePath) holds no PEM certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: privateKeyPath, format: .pem)
        } catch {
            throw IoTError(
                .invalidArgument,
                "cannot load the TLS private key \(privateKeyPath): \(error); give an unencrypted PEM private key file")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        switch clientCertificates {
        case .none:
            configuration.certificateVerification = .none
        case .optional:
            configuration.certificateVerification = .optionalVerification
        case .required:
            configuration.certificateVerification = .noHostnameVerification
        }
        if clientCertificates != .none {
            guard let clientCAPath else {
                throw IoTError(
                    .invalidArgument,
                    "client certificates '\(clientCertificates.rawValue)' need clientCAPath: the PEM file of the CA that issues device certificates"
                )
            }
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMFile(clientCAPath)
            } catch {
                throw IoTError(
                    .invalidArgument,
                    "cannot load the client CA \(clientCAPath): \(error); give a PEM CA certificate file")
            }
            guard !roots.isEmpty else {
                throw IoTError(.invalidArgument, "the client CA file \(clientCAPath) holds no PEM certificate")
            }
            configuration.trustRoots = .certificates(roots)
            configuration.sendCANameList = true
        }
        return configuration
    }

    /// The SSL context (certificate and key checked against each other).
    package func makeContext() throws(IoTError) -> NIOSSLContext {
        let configuration = try serverConfiguration()
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw IoTError(
                .invalidArgument,
                "cannot set up TLS with \(certificatePath) and \(privateKeyPath): \(error); check that the key belongs to the certificate"
            )
        }
    }
}

extension ListenerTLS: Decodable {
    private enum CodingKeys: String, CodingKey { case certificate, privateKey, clientCA, clientCertificates }

    /// Reads a listener's `tls:` section: `certificate` and `privateKey` (PEM files, required), `clientCA`, and
    /// `clientCertificates` (`none`, `optional` or `required`; default `required` with a `clientCA`, `none`
    /// without).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let clientCA = try c.decodeIfPresent(String.self, forKey: .clientCA)
        var mode: ClientCertificates = clientCA == nil ? .none : .required
        if let text = try c.decodeIfPresent(String.self, forKey: .clientCertificates) {
            guard let value = ClientCertificates(rawValue: text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .clientCertificates, in: c, debugDescription: "'\(text)' is not none, optional or required")
            }
            mode = value
        }
        self.init(
            certificatePath: try c.decode(String.self, forKey: .certificate),
            privateKeyPath: try c.decode(String.self, forKey: .privateKey), clientCAPath: clientCA,
            clientCertificates: mode)
    }
}
