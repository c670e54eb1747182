import Dispatch
import IoTCore

/// A pool of killable worker processes that run one language's scripts, shared by ``JavaScriptEngine`` and
/// ``PythonEngine``: scripts are loaded into each worker on its first call of them and unloaded once retired;
/// a call that outlives the time limit kills its worker (``IoTError/Code/timeout``), and a worker that dies
/// fails only the call it was running and is replaced on the next.
final class ScriptWorkers: Sendable {
    /// What messages call a worker ("the Python worker").
    let name: String
    let timeLimit: Duration
    let scripts: RetiredScripts
    private let workers: BlockingPool<WorkerProcess>

    /// Workers started with `path arguments…` on first use, at most `poolSize` at once.
    init(
        name: String, path: String, arguments: [String] = [], poolSize: Int, timeLimit: Duration, memoryLimit: Int,
        scripts: RetiredScripts
    ) {
        self.name = name
        self.timeLimit = timeLimit
        self.scripts = scripts
        workers = BlockingPool(capacity: poolSize) { () throws(IoTError) in
            try WorkerProcess.spawn(path: path, arguments: arguments, memoryLimit: memoryLimit, name: name)
        }
    }

    /// Stops every idle worker now and every busy one when its call ends.
    func shutdown() {
        for w in workers.close() { w.terminate() }
    }

    /// Loads `script` into a worker (running its top level), so that its errors show at once.
    func load(_ script: EngineScript) throws(IoTError) {
        try withWorker { (w) throws(IoTError) in try load(script, into: w) }
    }

    /// Calls `function` of `script` on the calling thread, blocking it for at most the time limit.
    func call(_ script: EngineScript, _ function: String, _ arguments: [ScriptValue]) throws(IoTError) -> ScriptValue {
        try withWorker { (w) throws(IoTError) -> ScriptValue in
            if !w.loaded.contains(script.id) { try load(script, into: w) }
            var writer = WireWriter()
            writer.beginFrame()
            writer.u8(WorkerOperation.call.rawValue)
            writer.u64(script.id)
            writer.string(script.name)
            writer.string(function)
            writer.u32(UInt32(arguments.count))
            for a in arguments { writer.value(a) }
            writer.finishFrame()
            let body = try w.roundTrip(writer.bytes, deadline: deadline(), what: "script '\(script.name)'")
            var reader = WireReader(body)
            return try check(&reader) ? try reader.value() : .null
        }
    }

    private func deadline() -> Int64 { monotonicNanoseconds() + timeLimit.inNanoseconds }

    /// Reads a response's status; throws the script error it carries.
    private func check(_ reader: inout WireReader) throws(IoTError) -> Bool {
        switch WorkerStatus(rawValue: try reader.u8()) {
        case .ok: return true
        case .scriptError: throw IoTError(.script, try reader.string())
        case .ready, nil: throw IoTError(.script, "\(name) sent an unknown status")
        }
    }

    private func load(_ script: EngineScript, into w: WorkerProcess) throws(IoTError) {
        var writer = WireWriter()
        writer.beginFrame()
        writer.u8(WorkerOperation.load.rawValue)
        writer.u64(script.id)
        writer.string(script.name)
        writer.string(script.source)
        writer.finishFrame()
        let body = try w.roundTrip(writer.bytes, deadline: deadline(), what: "script '\(script.name)'")
        var reader = WireReader(body)
        _ = try check(&reader)
        w.loaded.insert(script.id)
    }

    private func withWorker<T>(_ body: (WorkerProcess) throws(IoTError) -> T) throws(IoTError) -> T {
        let w = try workers.acquire()
        defer {
            if !workers.release(w, reuse: w.alive) { w.terminate() }
        }
        try scripts.catchUp(&w.retiredGeneration) { (retired) throws(IoTError) in
            for id in retired.intersection(w.loaded) {
                var writer = WireWriter()
                writer.beginFrame()
                writer.u8(WorkerOperation.unload.rawValue)
                writer.u64(id)
                writer.finishFrame()
                _ = try w.roundTrip(writer.bytes, deadline: deadline(), what: "unloading a script")
                w.loaded.remove(id)
            }
        }
        return try body(w)
    }
}

/// An engine whose calls block their thread on a worker's socket (or a heap) for at most its time limit.
protocol BlockingScriptEngine: AnyObject, Sendable {
    /// Calls `function` of `script` on the calling thread.
    func callNow(_ script: EngineScript, _ function: String, _ arguments: [ScriptValue]) throws(IoTError) -> ScriptValue
    /// Forgets a script that is no longer referenced.
    func retire(_ id: UInt64)
}

/// A script compiled on a ``BlockingScriptEngine`` (JavaScript, Python), retired when the last reference goes.
final class BlockingCompiledScript<Engine: BlockingScriptEngine>: CompiledScript {
    let engine: Engine
    let source: EngineScript

    init(engine: Engine, source: EngineScript) {
        self.engine = engine
        self.source = source
    }

    deinit { engine.retire(source.id) }

    /// Runs the call on a Dispatch queue (it blocks on the worker's socket for up to the time limit),
    /// so it never parks a thread of Swift's cooperative pool.
    func call(_ function: String, _ arguments: [ScriptValue]) async throws(IoTError) -> ScriptValue {
        let engine = self.engine
        let source = self.source
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<ScriptValue, IoTError>, Never>) in
            DispatchQueue.global().async {
                continuation.resume(
                    returning: Result { () throws(IoTError) in try engine.callNow(source, function, arguments) })
            }
        }
        return try result.get()
    }

    /// Calls `function` on the calling thread.
    func callNow(_ function: String, _ arguments: [ScriptValue]) throws(IoTError) -> ScriptValue {
        try engine.callNow(source, function, arguments)
    }
}
