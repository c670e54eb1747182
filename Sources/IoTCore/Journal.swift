/// One journaled message: the points of one accepted message, already resolved, converted and stamped.
public struct JournalEntry: Sendable, Hashable {
    /// The journal sequence number, assigned by ``Journal/append(tenant:points:)``; strictly increasing.
    public var sequence: UInt64
    /// The tenant whose store receives the points.
    public var tenant: TenantID
    /// The points, each with its time already set (device time or server time).
    public var points: [Point]

    /// Creates an entry.
    public init(sequence: UInt64, tenant: TenantID, points: [Point]) {
        self.sequence = sequence
        self.tenant = tenant
        self.points = points
    }
}

/// The write-ahead log in front of the point store. A device is acknowledged once its message is here.
///
/// ## Implementing a journal
/// - ``append(tenant:points:)`` is synchronous and thread-safe: a C library's own thread (libmosquitto's
///   `on_message`) may call it. It returns only when the entry is as durable as the journal's policy
///   promises (written to the OS for a process-crash policy, `fdatasync`ed for a power-loss policy), with
///   a sequence number greater than every earlier one.
/// - ``replay(after:_:)`` calls `body` with every intact entry whose sequence is greater than `after`, in
///   order. A torn or corrupt tail (a crash mid-write) ends the replay there; it is not an error.
/// - ``trim(through:)`` may discard entries up to and including a sequence once the store committed
///   them; it may keep more. Trimming through a sequence above ``lastSequence`` advances the numbering:
///   the next entry gets a greater sequence (used when the store is ahead of a lost journal).
/// - Thread-safe throughout: `Sendable`.
public protocol Journal: Sendable {
    /// Appends one entry and returns its sequence number once it is durable.
    func append(tenant: TenantID, points: [Point]) throws(IoTError) -> UInt64
    /// Replays every entry after `sequence`, in order.
    func replay(after sequence: UInt64, _ body: (JournalEntry) throws -> Void) throws
    /// Allows the journal to discard entries up to and including `sequence`.
    func trim(through sequence: UInt64) throws(IoTError)
    /// The sequence of the last entry appended or replayed (0 when empty).
    var lastSequence: UInt64 { get }
}

/// A journal that can append several entries in one write, all or none: transports that receive
/// messages in bursts (an MQTT read pass) journal a burst with one system call.
///
/// ``IngestGateway/submitBlocking(_:onCacheMiss:)`` uses it when the journal conforms; with any other
/// ``Journal`` it appends the messages one at a time.
public protocol BatchJournal: Journal {
    /// Appends `entries` with consecutive sequence numbers, durable together, and returns the first
    /// sequence; when it throws, none of them was appended.
    func append(batch entries: [(tenant: TenantID, points: [Point])]) throws(IoTError) -> UInt64
}
