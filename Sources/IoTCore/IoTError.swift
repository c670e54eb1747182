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

        /// The code whose ``name`` is `name` (one sent by another process), or `nil` for a name this version does
        /// not know.
        public init?(name: String) {
            guard let value = Value(rawValue: name) else { return nil }
            self.value = value
        }
        public var description: String { value.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A sentence for a person: what went wrong and what to do.
    public var message: String
    /// The native code underneath (SQLite result code, `errno`, a libmosquitto or libcurl code), when there is one.
    public var nativeCode: Int32?
    /// Where ``nativeCode`` comes from: which table to look it up in.
    public var nativeDomain: NativeDomain?
    /// For ``Code/backpressure`` and ``Code/rateLimited``: how long to wait before retrying, in milliseconds.
    public var retryAfterMillis: Int64?

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - nativeCode: the code of the C library or system call underneath, if any.
    ///   - domain: where `nativeCode` comes from (give it whenever `nativeCode` is given).
    public init(
        _ code: Code, _ message: String, nativeCode: Int32? = nil, domain: NativeDomain? = nil,
        retryAfterMillis: Int64? = nil
    ) {
        self.code = code
        self.message = message
        self.nativeCode = nativeCode
        self.nativeDomain = nativeCode == nil ? nil : domain
        self.retryAfterMillis = retryAfterMillis
    }

    /// `code: message`, and the native code with its domain (`(SQLite code 5)`, `(errno 28)`).
    public var description: String {
        var s = "\(code.name): \(message)"
        if let nativeCode {
            switch nativeDomain {
            case .some(.posix): s += " (errno \(nativeCode))"
            case .some(let domain): s += " (\(domain) code \(nativeCode))"
            case nil: s += " (native code \(nativeCode))"
            }
        }
        return s
    }

    /// The library or interface an ``IoTError/nativeCode`` comes from.
    public struct NativeDomain: Hashable, Sendable, CustomStringConvertible {
        /// The domain's name as errors print it.
        public let name: String
        /// A domain of one's own (a custom transport's C library).
        public init(_ name: String) { self.name = name }
        /// `errno` of a system call.
        public static let posix = NativeDomain("errno")
        /// An SQLite result code (extended where SQLite gives one).
        public static let sqlite = NativeDomain("SQLite")
        /// A libmosquitto `MOSQ_ERR_*` code.
        public static let libmosquitto = NativeDomain("libmosquitto")
        /// A libmodbus error (`errno` or `MODBUS_ENOBASE` + exception code).
        public static let libmodbus = NativeDomain("libmodbus")
        /// A libcurl `CURLcode`.
        public static let libcurl = NativeDomain("libcurl")
        /// A vendor API's own error code in its JSON reply (DingTalk `errcode`, Feishu `code`).
        public static let vendor = NativeDomain("vendor API")
        /// A child process's exit status.
        public static let process = NativeDomain("exit status")
        public var description: String { name }
    }

    /// Shorthand for ``Code/malformedPayload``.
    public static func malformed(_ message: String) -> IoTError { IoTError(.malformedPayload, message) }
}
