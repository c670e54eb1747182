public import IoTCore
import Synchronization

/// A ``Journal`` in memory, for tests of transports and the ingestor without a disk.
///
/// It can be told to fail (``failAppends(_:)``) to test what a transport does when the journal cannot
/// be written.
public final class InMemoryJournal: BatchJournal {
    private struct State {
        var entries: [JournalEntry] = []
        var last: UInt64 = 0
        var trimmed: UInt64 = 0
        var failing = false
    }
    private let state = Mutex(State())

    /// Creates an empty journal.
    public init() {}

    public var lastSequence: UInt64 { state.withLock { $0.last } }

    /// Entries still held (not trimmed).
    public var entries: [JournalEntry] { state.withLock { $0.entries } }

    /// The highest sequence trimmed so far.
    public var trimmedThrough: UInt64 { state.withLock { $0.trimmed } }

    /// Makes every append throw ``IoTError/Code/journal`` while `failing` is `true`.
    public func failAppends(_ failing: Bool) { state.withLock { $0.failing = failing } }

    public func append(tenant: TenantID, points: [Point]) throws(IoTError) -> UInt64 {
        try state.withLock { (s) throws(IoTError) -> UInt64 in
            if s.failing { throw IoTError(.journal, "in-memory journal told to fail", nativeCode: 28, domain: .posix) }
            s.last += 1
            s.entries.append(JournalEntry(sequence: s.last, tenant: tenant, points: points))
            return s.last
        }
    }

    public func append(batch entries: [(tenant: TenantID, points: [Point])]) throws(IoTError) -> UInt64 {
        try state.withLock { (s) throws(IoTError) -> UInt64 in
            if s.failing { throw IoTError(.journal, "in-memory journal told to fail", nativeCode: 28, domain: .posix) }
            let first = s.last + 1
            for e in entries {
                s.last += 1
                s.entries.append(JournalEntry(sequence: s.last, tenant: e.tenant, points: e.points))
            }
            return first
        }
    }

    public func replay(after sequence: UInt64, _ body: (JournalEntry) throws -> Void) throws {
        for entry in entries where entry.sequence > sequence { try body(entry) }
    }

    public func trim(through sequence: UInt64) throws(IoTError) {
        state.withLock { s in
            s.trimmed = max(s.trimmed, sequence)
            s.last = max(s.last, sequence)
            s.entries.removeAll { $0.sequence <= sequence }
        }
    }
}
