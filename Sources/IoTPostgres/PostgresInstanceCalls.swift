import Foundation
public import IoTCore
public import Logging
public import ServiceLifecycle
import Synchronization

/// Calls from one instance to another of the same PostgreSQL, with `pg_notify` on the channel `iot_calls`: a
/// request names its target, an operation and a text body; the target runs the handler registered for the
/// operation and answers with its result or its ``IoTCore/IoTError``. The management API uses it to reach what
/// another instance runs (a write to a Modbus device that instance polls). ``callAny(_:_:timeout:)`` asks every
/// other instance and takes the first answer (a downlink to whichever holds the device's connection).
///
/// One per instance: the calls of every instance listen on the same channel.
///
/// ```swift
/// let calls = PostgresInstanceCalls(storage: storage, instanceID: "iotd-1")
/// calls.handle("echo") { body throws(IoTError) in body }
/// let answer = try await calls.call("iotd-2", "echo", "hello")   // run `calls` in the ServiceGroup first
/// ```
public final class PostgresInstanceCalls: Service {
    /// Runs an operation for another instance: the request's body in, the answer's body out.
    public typealias Handler = @Sendable (String) async throws(IoTError) -> String

    let storage: PostgresStorage
    let instanceID: String
    let timeout: Duration
    let logger: Logger
    private let handlers = Mutex<[String: Handler]>([:])
    private let pending = Mutex<[String: CheckedContinuation<Result<String, IoTError>?, Never>]>([:])
    private let listening = Atomic<Bool>(false)

    static let channel = "iot_calls"
    /// The target of ``callAny(_:_:timeout:)``.
    static let everyone = "*"

    /// Creates the calls of `instanceID`; nothing is heard before ``run()``.
    ///
    /// - Parameter timeout: how long ``call(_:_:_:)`` waits for an answer (default 5 s).
    public init(
        storage: PostgresStorage, instanceID: String, timeout: Duration = .seconds(5),
        logger: Logger = Logger(label: "iot.calls")
    ) {
        self.storage = storage
        self.instanceID = instanceID
        self.timeout = timeout
        self.logger = logger
    }

    /// A request (`k` "q": operation and body) or an answer (`k` "a": body, or the error's code and message).
    struct Message: Codable {
        var k: String
        var r: String
        var from: String
        var to: String
        var op: String?
        var b: String?
        var code: String?
    }

    /// Registers what runs `operation` for other instances (replacing an earlier handler).
    public func handle(_ operation: String, _ handler: @escaping Handler) {
        handlers.withLock { $0[operation] = handler }
    }

    /// Runs `operation` on `instance` and returns its answer.
    ///
    /// - Throws: the ``IoTCore/IoTError`` the handler threw there; ``IoTCore/IoTError/Code/unavailable`` when
    ///   the instance did not answer in time, before ``run()`` listens, or when PostgreSQL cannot be reached;
    ///   ``IoTCore/IoTError/Code/payloadTooLarge`` for a request over about 7,500 bytes.
    public func call(_ instance: String, _ operation: String, _ body: String) async throws(IoTError) -> String {
        guard let answer = try await request(instance, operation, body, timeout: timeout) else {
            throw IoTError(
                .unavailable,
                "instance \(instance) did not answer within \(timeout); it may have stopped, retry once the cluster moved its work"
            )
        }
        return try answer.get()
    }

    /// Asks every other instance to run `operation` and returns the first answer, or `nil` when none answered
    /// within `timeout`. An instance whose handler throws does not answer.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unavailable`` before ``run()`` listens or when PostgreSQL cannot be
    ///   reached; ``IoTCore/IoTError/Code/payloadTooLarge`` for a request over about 7,500 bytes.
    public func callAny(_ operation: String, _ body: String, timeout: Duration) async throws(IoTError) -> String? {
        try await request(Self.everyone, operation, body, timeout: timeout).map { r throws(IoTError) in try r.get() }
    }

    /// Sends a request; its answer, a failure to send it, or `nil` when no answer came within `timeout`.
    private func request(_ instance: String, _ operation: String, _ body: String, timeout: Duration)
        async throws(IoTError) -> Result<String, IoTError>?
    {
        guard listening.load(ordering: .acquiring) else {
            throw IoTError(.unavailable, "calls to other instances are not listening yet; retry in a moment")
        }
        let id = UUID().uuidString
        let text = Self.encode(Message(k: "q", r: id, from: instanceID, to: instance, op: operation, b: body))
        guard text.utf8.count <= PostgresStorage.maxPayloadBytes else {
            throw IoTError(
                .payloadTooLarge, "a request to another instance carries at most about 7,000 bytes; send less")
        }
        return await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<String, IoTError>?, Never>) in
            pending.withLock { $0[id] = continuation }
            Task {
                do {
                    try await storage.notify(Self.channel, text, logger: logger)
                } catch {
                    self.answer(id, .failure(IoTError(.unavailable, "cannot reach the other instances: \(error)")))
                    return
                }
                try? await Task.sleep(for: timeout)
                self.answer(id, nil)
            }
        }
    }

    private func answer(_ id: String, _ result: Result<String, IoTError>?) {
        pending.withLock { $0.removeValue(forKey: id) }?.resume(returning: result)
    }

    static func encode(_ message: Message) -> String {
        (try? String(decoding: JSONEncoder().encode(message), as: UTF8.self)) ?? "{}"
    }

    /// Listens for requests and answers until graceful shutdown.
    public func run() async throws {
        let decoder = JSONDecoder()
        await cancelWhenGracefulShutdown {
            await self.storage.listen(
                on: Self.channel, logger: self.logger, onListening: { self.listening.store(true, ordering: .releasing) }
            ) { payload in
                guard let m = try? decoder.decode(Message.self, from: Data(payload.utf8)),
                    m.to == self.instanceID || (m.to == Self.everyone && m.from != self.instanceID)
                else { return }
                if m.k == "a" {
                    if let code = m.code {
                        let c = IoTError.Code(name: code) ?? .unavailable
                        self.answer(m.r, .failure(IoTError(c, m.b ?? "failed on instance \(m.from)")))
                    } else {
                        self.answer(m.r, .success(m.b ?? ""))
                    }
                    return
                }
                // A request: answered from a task of its own, so a slow handler holds no other message up.
                Task { await self.serve(m) }
            }
        }
        listening.store(false, ordering: .releasing)
    }

    private func serve(_ m: Message) async {
        var reply = Message(k: "a", r: m.r, from: instanceID, to: m.from)
        let handler = handlers.withLock { $0[m.op ?? ""] }
        if m.to == Self.everyone {
            // Asked of everyone: only an instance that ran it answers.
            guard let handler, let answer = try? await handler(m.b ?? "") else { return }
            reply.b = answer
        } else if let handler {
            do {
                reply.b = try await handler(m.b ?? "")
            } catch {
                reply.code = error.code.name
                reply.b = error.message
            }
        } else {
            reply.code = IoTError.Code.unavailable.name
            reply.b = "instance \(instanceID) does not serve '\(m.op ?? "")'"
        }
        var text = Self.encode(reply)
        if text.utf8.count > PostgresStorage.maxPayloadBytes {
            reply.code = IoTError.Code.payloadTooLarge.name
            reply.b = "the answer of instance \(instanceID) is too large for a notification"
            text = Self.encode(reply)
        }
        do {
            try await storage.notify(Self.channel, text, logger: logger)
        } catch {
            logger.warning("an answer to another instance was not sent", metadata: ["error": "\(error)"])
        }
    }
}
