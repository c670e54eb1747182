/// How a certificate credential identifies a device's TLS client certificate.
public enum CertificateMatch: String, Sendable, Hashable, Codable, CaseIterable {
    /// The SHA-256 fingerprint of the certificate's DER encoding: 64 lowercase hex digits. Matches exactly
    /// one certificate; a renewed certificate needs a new credential.
    case fingerprint
    /// The certificate's subject in RFC 4514 form (`O=Acme,CN=meter-1`, as
    /// `openssl x509 -noout -subject -nameopt RFC2253` prints it). Matches every certificate the listener's
    /// client CA issued with that subject, so renewals keep working.
    case subject

    /// The value in the form it is stored and looked up in.
    ///
    /// A fingerprint may be given as `openssl x509 -fingerprint -sha256` prints it (`AB:CD:…`, with or
    /// without a `sha256 Fingerprint=` prefix): colons and spaces are removed and it is lowercased. A subject
    /// is trimmed.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` saying what a valid value looks like.
    public func normalize(_ value: String) throws(IoTError) -> String {
        switch self {
        case .fingerprint:
            var text = value
            if let equals = text.lastIndex(of: "=") { text = String(text[text.index(after: equals)...]) }
            let hex = text.lowercased().filter { $0 != ":" && $0 != " " && $0 != "\n" && $0 != "\t" }
            guard hex.count == 64, hex.allSatisfy({ $0.isHexDigit }) else {
                throw IoTError(
                    .invalidArgument,
                    "a certificate fingerprint is the SHA-256 of the DER certificate: 64 hex digits (colons allowed), as `openssl x509 -noout -fingerprint -sha256 -in cert.pem` prints it"
                )
            }
            return hex
        case .subject:
            let subject = value.trimmingWhitespace()
            guard !subject.isEmpty, subject.utf8.count <= 1_024, subject.contains("=") else {
                throw IoTError(
                    .invalidArgument,
                    "a certificate subject is an RFC 4514 name such as \"O=Acme,CN=meter-1\" (1–1024 bytes), as `openssl x509 -noout -subject -nameopt RFC2253 -in cert.pem` prints it"
                )
            }
            return subject
        }
    }
}

/// A device's certificate credential as stored: which certificate (by fingerprint or subject) identifies
/// the device on TLS listeners that ask for client certificates.
public struct StoredCertificate: Sendable, Hashable {
    /// The device the certificate identifies.
    public var device: DeviceIdentity
    /// Whether ``value`` is a fingerprint or a subject.
    public var match: CertificateMatch
    /// The normalized fingerprint or subject (``CertificateMatch/normalize(_:)``); unique across devices.
    public var value: String
    /// The label (`"primary"`, `"rotation-2026-11"`); unique per device.
    public var label: String
    /// When it was added (UTC ms).
    public var createdAt: Int64

    /// Creates a stored certificate credential.
    public init(device: DeviceIdentity, match: CertificateMatch, value: String, label: String, createdAt: Int64) {
        self.device = device
        self.match = match
        self.value = value
        self.label = label
        self.createdAt = createdAt
    }

    /// What is shown about it.
    public var info: CertificateInfo { CertificateInfo(match: match, value: value, label: label, createdAt: createdAt) }
}

/// What is shown about a certificate credential (a fingerprint or subject is not a secret).
public struct CertificateInfo: Sendable, Hashable, Codable {
    /// Whether ``value`` is a fingerprint or a subject.
    public var match: CertificateMatch
    /// The fingerprint or subject.
    public var value: String
    /// The label.
    public var label: String
    /// When it was added (UTC ms).
    public var createdAt: Int64

    /// Creates certificate info.
    public init(match: CertificateMatch, value: String, label: String, createdAt: Int64) {
        self.match = match
        self.value = value
        self.label = label
        self.createdAt = createdAt
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
