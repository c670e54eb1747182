import Crypto
import Foundation
public import IoTCore

/// The key that encrypts backup sets (AES-256-GCM), read from a file the operator keeps apart from the backups.
///
/// The file holds the 32 bytes of the key: raw, as 64 hexadecimal digits, or in base64 (a trailing newline is
/// allowed). Make one with `head -c 32 /dev/urandom > /etc/iotd/backup.key && chmod 600 /etc/iotd/backup.key`.
/// A set records the key's ``id`` (not the key), so restoring with another key is a clear error.
public struct BackupKey: Sendable {
    let key: SymmetricKey
    /// A fingerprint of the key: 16 hexadecimal digits of SHA-256 over a fixed label and the key.
    public let id: String

    /// A key from its 32 bytes.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` when there are not 32 bytes.
    public init(bytes: [UInt8]) throws(IoTError) {
        guard bytes.count == 32 else {
            throw IoTError(
                .invalidArgument,
                "a backup key is 32 bytes (AES-256), not \(bytes.count); make one with head -c 32 /dev/urandom > FILE")
        }
        key = SymmetricKey(data: bytes)
        var hasher = SHA256()
        hasher.update(data: Array("iotd backup key v1".utf8))
        hasher.update(data: bytes)
        id = BackupFile.hex(hasher.finalize()).prefix(16).description
    }

    /// Reads a key file: 32 raw bytes, 64 hexadecimal digits, or base64.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/invalidArgument`` naming the file when it cannot be read or holds no key.
    public init(file path: String) throws(IoTError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw IoTError(.invalidArgument, "cannot read the backup key file \(path); check the path and permissions")
        }
        let raw = [UInt8](data)
        if raw.count == 32 {
            try self.init(bytes: raw)
            return
        }
        let text = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.count == 64, let bytes = BackupFile.unhex(text) {
            try self.init(bytes: bytes)
        } else if let decoded = Data(base64Encoded: text), decoded.count == 32 {
            try self.init(bytes: [UInt8](decoded))
        } else {
            throw IoTError(
                .invalidArgument,
                "the backup key file \(path) holds no 32-byte key (raw, 64 hex digits or base64); make one with head -c 32 /dev/urandom > \(path)"
            )
        }
    }
}
