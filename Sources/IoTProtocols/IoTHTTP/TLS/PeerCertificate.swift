import Crypto
import IoTAuth
import IoTCore
import NIOCore
import NIOSSL

/// The client certificate a TLS peer presented and the listener verified: what a device is matched by.
struct PeerCertificate: Sendable, Hashable {
    /// SHA-256 of the DER encoding, lowercase hex.
    var fingerprint: String
    /// The subject in RFC 4514 form (`O=Acme,CN=meter-1`), `""` when it cannot be read.
    var subject: String

    init(der: [UInt8]) {
        fingerprint = PasswordHasher.hex(Array(SHA256.hash(data: der)))
        subject = (try? X509Subject.rfc4514(certificate: der)) ?? ""
    }

    /// The credential that resolves it to a device.
    var credential: DeviceCredential { .clientCertificate(fingerprint: fingerprint, subject: subject) }

    /// The verified client certificate of a TLS connection, or `nil` (no TLS, or no certificate presented).
    static func of(_ channel: any Channel) async -> PeerCertificate? {
        let der: [UInt8]? = try? await channel.eventLoop.submit { () -> [UInt8]? in
            guard let certificate = try channel.pipeline.syncOperations.nioSSL_peerCertificate() else { return nil }
            return try certificate.toDERBytes()
        }.get()
        return der.map(PeerCertificate.init(der:))
    }
}

/// Reads the subject of a DER X.509 certificate and writes it in RFC 4514 form, as
/// `openssl x509 -noout -subject -nameopt RFC2253` does for ordinary names: the RDNs last to first,
/// separated by `,`, multi-valued RDNs joined with `+`, short names for the usual attribute types and the
/// dotted OID (value as `#` and hex DER) for others.
enum X509Subject {
    struct Malformed: Error {}

    private struct Element {
        var tag: UInt8
        var content: Range<Int>
        var whole: Range<Int>
    }

    static func rfc4514(certificate der: [UInt8]) throws -> String {
        let certificate = try element(der, at: 0)
        let tbs = try children(der, of: certificate).first.orThrow()
        var fields = try children(der, of: tbs)[...]
        if fields.first?.tag == 0xA0 { fields = fields.dropFirst() }  // [0] version
        // serialNumber, signature, issuer, validity, subject
        guard fields.count >= 5 else { throw Malformed() }
        let subject = fields[fields.startIndex + 4]
        guard subject.tag == 0x30 else { throw Malformed() }
        var rdns: [String] = []
        for set in try children(der, of: subject) {
            guard set.tag == 0x31 else { throw Malformed() }
            var parts: [String] = []
            for pair in try children(der, of: set) {
                let items = try children(der, of: pair)
                guard items.count == 2, items[0].tag == 0x06 else { throw Malformed() }
                parts.append(attribute(oid: oid(Array(der[items[0].content])), value: items[1], in: der))
            }
            rdns.append(parts.joined(separator: "+"))
        }
        return rdns.reversed().joined(separator: ",")
    }

    private static func attribute(oid: String, value: Element, in der: [UInt8]) -> String {
        let names = [
            "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "STREET", "2.5.4.10": "O",
            "2.5.4.11": "OU", "2.5.4.5": "serialNumber", "0.9.2342.19200300.100.1.25": "DC",
            "0.9.2342.19200300.100.1.1": "UID", "1.2.840.113549.1.9.1": "emailAddress",
        ]
        let bytes = Array(der[value.content])
        guard let name = names[oid] else {
            return oid + "=#" + PasswordHasher.hex(Array(der[value.whole]))
        }
        let text: String
        switch value.tag {
        case 0x1E:  // BMPString: UTF-16BE
            var units: [UInt16] = []
            var i = 0
            while i + 1 < bytes.count {
                units.append(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]))
                i += 2
            }
            text = String(decoding: units, as: UTF16.self)
        default:
            text = String(decoding: bytes, as: UTF8.self)
        }
        return name + "=" + escape(text)
    }

    /// RFC 4514 section 2.4 escaping.
    static func escape(_ value: String) -> String {
        var out = ""
        let scalars = Array(value.unicodeScalars)
        for (i, s) in scalars.enumerated() {
            switch s {
            case "\"", "+", ",", ";", "<", ">", "\\":
                out += "\\" + String(s)
            case "#" where i == 0, " " where i == 0 || i == scalars.count - 1:
                out += "\\" + String(s)
            case "\u{0}":
                out += "\\00"
            default:
                out.unicodeScalars.append(s)
            }
        }
        return out
    }

    private static func oid(_ bytes: [UInt8]) -> String {
        guard let first = bytes.first else { return "" }
        var parts = [Int(first) / 40, Int(first) % 40]
        var value = 0
        for b in bytes.dropFirst() {
            value = value << 7 | Int(b & 0x7F)
            if b & 0x80 == 0 {
                parts.append(value)
                value = 0
            }
        }
        return parts.map(String.init).joined(separator: ".")
    }

    private static func children(_ der: [UInt8], of parent: Element) throws -> [Element] {
        var result: [Element] = []
        var i = parent.content.lowerBound
        while i < parent.content.upperBound {
            let e = try element(der, at: i)
            guard e.whole.upperBound <= parent.content.upperBound else { throw Malformed() }
            result.append(e)
            i = e.whole.upperBound
        }
        return result
    }

    private static func element(_ der: [UInt8], at start: Int) throws -> Element {
        guard start + 2 <= der.count else { throw Malformed() }
        let tag = der[start]
        var i = start + 1
        var length = Int(der[i])
        i += 1
        if length & 0x80 != 0 {
            let count = length & 0x7F
            guard count >= 1, count <= 4, i + count <= der.count else { throw Malformed() }
            length = 0
            for _ in 0..<count {
                length = length << 8 | Int(der[i])
                i += 1
            }
        }
        guard i + length <= der.count else { throw Malformed() }
        return Element(tag: tag, content: i..<(i + length), whole: start..<(i + length))
    }
}

extension Optional {
    fileprivate func orThrow() throws -> Wrapped {
        guard let self else { throw X509Subject.Malformed() }
        return self
    }
}
