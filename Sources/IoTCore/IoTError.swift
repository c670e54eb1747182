/// The error every IoTCore contract throws: a code to switch on, a message that says what to do, and
/// the native code of the C library or system call underneath, when there is one.
///
/// ```swift
/// do { _ = try parser.parse(message) }
/// catch let error where error.code == .malformedPayload { print(error.message) }
/// ```
public struct IoTError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is. Extensible: new codes may be added in minor versions.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case malformedPayload = "malformed_payload"
            case unknownDevice = "unknown_device"
            case unknownSignal = "unknown_signal"
            case invalidValue = "invalid_value"
            case unauthorized
            case forbidden
            case backpressure
            case rateLimited = "rate_limited"
            case payloadTooLarge = "payload_too_large"
            case notFound = "not_found"
            case conflict
            case invalidArgument = "invalid_argument"
            case storage
            case journal
            case timeout
            case script
            case unavailable
            case shutdown
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// The payload cannot be read; the message says where and why.
        public static let malformedPayload = Code(.malformedPayload)
        /// The record names a device that is not registered (and the tenant does not auto-register).
        public static let unknownDevice = Code(.unknownDevice)
        /// The record names a signal the device does not have (and the tenant does not auto-register).
        public static let unknownSignal = Code(.unknownSignal)
        /// A value cannot be converted to its signal's type, or is out of range.
        public static let invalidValue = Code(.invalidValue)
        /// Credentials are missing, unknown or revoked.
        public static let unauthorized = Code(.unauthorized)
        /// The caller is authenticated but the scope does not cover the target.
        public static let forbidden = Code(.forbidden)
        /// The pipeline is full; retry after ``IoTError/retryAfterMillis``. Nothing was accepted.
        public static let backpressure = Code(.backpressure)
        /// The sender is over its rate limit; retry after ``IoTError/retryAfterMillis``. Nothing was accepted.
        public static let rateLimited = Code(.rateLimited)
        /// The payload exceeds a configured limit.
        public static let payloadTooLarge = Code(.payloadTooLarge)
        /// The thing asked for does not exist.
        public static let notFound = Code(.notFound)
        /// The change conflicts with existing state (duplicate id, one open alarm per rule and originator).
        public static let conflict = Code(.conflict)
        /// An argument is out of its documented range.
        public static let invalidArgument = Code(.invalidArgument)
        /// The store failed; ``IoTError/nativeCode`` holds the SQLite result code when there is one.
        public static let storage = Code(.storage)
        /// The journal could not be written or read; ``IoTError/nativeCode`` holds `errno`.
        public static let journal = Code(.journal)
        /// An operation ran out of time.
        public static let timeout = Code(.timeout)
        /// A script failed to compile or run.
        public static let script = Code(.script)
        /// A dependency (broker, database, peer) is unavailable.
        public static let unavailable = Code(.unavailable)
        /// The component is shutting down and takes no more work.
        public static let shutdown = Code(.shutdown)

        /// A stable, snake_case name, used as the `reason` label of counters.
        public var name: String { value.rawValue }
        public var description: String { value.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A sentence for a person: what went wrong and what to do.
    public var message: String
    /// The native code underneath (SQLite result code, `errno`), when there is one.
    public var nativeCode: Int32?
    /// For ``Code/backpressure`` and ``Code/rateLimited``: how long to wait before retrying, in milliseconds.
    public var retryAfterMillis: Int64?

    /// Creates an error.
    public init(_ code: Code, _ message: String, nativeCode: Int32? = nil, retryAfterMillis: Int64? = nil) {
        self.code = code
        self.message = message
        self.nativeCode = nativeCode
        self.retryAfterMillis = retryAfterMillis
    }

    public var description: String {
        var s = "\(code.name): \(message)"
        if let nativeCode { s += " (native code \(nativeCode))" }
        return s
    }

    /// Shorthand for ``Code/malformedPayload``.
    public static func malformed(_ message: String) -> IoTError { IoTError(.malformedPayload, message) }
}
