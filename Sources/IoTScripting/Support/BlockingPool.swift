import Dispatch
import IoTCore
import Synchronization

/// A bounded set of reusable resources (interpreter states, worker processes), handed to one caller at a
/// time. A caller beyond the capacity waits, blocking its thread: every use is bounded by the engine's
/// time limit, so the wait is bounded by the queue length times that limit.
final class BlockingPool<Resource: Sendable>: Sendable {
    private struct State {
        var idle: [Resource] = []
        var closed = false
    }

    private let slots: DispatchSemaphore
    private let state = Mutex(State())
    private let make: @Sendable () throws(IoTError) -> Resource

    /// Creates a pool of at most `capacity` resources, made on first use by `make`.
    init(capacity: Int, make: @escaping @Sendable () throws(IoTError) -> Resource) {
        slots = DispatchSemaphore(value: max(1, capacity))
        self.make = make
    }

    /// Takes an idle resource, makes one, or waits for one to be released.
    func acquire() throws(IoTError) -> Resource {
        slots.wait()
        let (closed, idle) = state.withLock { s -> (Bool, Resource?) in
            s.closed ? (true, nil) : (false, s.idle.popLast())
        }
        if closed {
            slots.signal()
            throw IoTError(.shutdown, "the script engine was shut down")
        }
        if let idle { return idle }
        do {
            return try make()
        } catch {
            slots.signal()
            throw error
        }
    }

    /// Gives a resource back. Returns `false` (and keeps nothing) when `reuse` is false or the pool is
    /// closed: the caller then disposes of the resource.
    @discardableResult
    func release(_ resource: Resource, reuse: Bool) -> Bool {
        let kept = state.withLock { s -> Bool in
            guard reuse, !s.closed else { return false }
            s.idle.append(resource)
            return true
        }
        slots.signal()
        return kept
    }

    /// Runs `body` with a resource; `body` returns whether the resource is still fit for reuse.
    func with<T>(_ body: (Resource) throws(IoTError) -> (T, reusable: Bool)) throws(IoTError) -> T {
        let resource = try acquire()
        let result: (T, reusable: Bool)
        do {
            result = try body(resource)
        } catch {
            release(resource, reuse: true)
            throw error
        }
        release(resource, reuse: result.reusable)
        return result.0
    }

    /// Closes the pool and returns the idle resources for disposal. Busy ones are refused on release.
    func close() -> [Resource] {
        state.withLock { s in
            s.closed = true
            defer { s.idle.removeAll() }
            return s.idle
        }
    }

    /// The idle resources, for maintenance that must touch each of them (may be empty).
    func forEachIdle(_ body: (Resource) -> Void) {
        state.withLock { s in s.idle.forEach(body) }
    }
}
