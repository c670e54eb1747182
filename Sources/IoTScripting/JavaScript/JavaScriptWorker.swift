import IoTCore

#if canImport(Glibc)
    import Glibc
#endif

/// The main loop of the `iot-js-worker` executable: one Duktape heap, requests on stdin, responses on
/// stdout (see ``WorkerOperation``). Not an API: `iot-js-worker` is its only caller.
@_spi(Worker)
public enum JavaScriptWorker {
    /// Serves requests until stdin ends or the parent process dies; never returns.
    public static func run(_ arguments: [String]) -> Never {
        var memoryLimit = 64 << 20
        var parent = getppid()
        var it = arguments.dropFirst().makeIterator()
        while let a = it.next() {
            if a == "--memory-limit", let v = it.next().flatMap({ Int($0) }) { memoryLimit = v }
            if a == "--parent", let v = it.next().flatMap({ pid_t($0) }) { parent = v }
        }
        watch(parent: parent)
        let heap: DuktapeHeap
        do {
            heap = try DuktapeHeap(memoryLimit: memoryLimit)
        } catch {
            _exit(71)
        }
        // Ready: the engine starts timing calls only from here, so start-up is not charged to a script.
        guard writeAll([WorkerStatus.ready.rawValue]) else { _exit(0) }
        while true {
            guard let body = readFrame() else { _exit(0) }
            let response = serve(body, heap: heap)
            guard writeAll(response) else { _exit(0) }
        }
    }

    private static func serve(_ body: [UInt8], heap: DuktapeHeap) -> [UInt8] {
        var reader = WireReader(body)
        var writer = WireWriter()
        writer.beginFrame()
        do throws(IoTError) {
            switch WorkerOperation(rawValue: try reader.u8()) {
            case .load:
                let id = try reader.u64()
                let name = try reader.string()
                let source = try reader.string()
                try heap.load(id: id, name: name, source: source)
                writer.u8(WorkerStatus.ok.rawValue)
            case .call:
                let id = try reader.u64()
                let name = try reader.string()
                let function = try reader.string()
                let n = Int(try reader.u32())
                var args: [ScriptValue] = []
                for _ in 0..<min(n, body.count) { args.append(try reader.value()) }
                let result = try heap.call(id: id, name: name, function: function, arguments: args)
                writer.u8(WorkerStatus.ok.rawValue)
                writer.value(result)
            case .unload:
                heap.unload(try reader.u64())
                writer.u8(WorkerStatus.ok.rawValue)
            case nil:
                throw IoTError(.script, "unknown worker operation")
            }
        } catch {
            writer = WireWriter()
            writer.beginFrame()
            writer.u8(WorkerStatus.scriptError.rawValue)
            writer.string(error.message)
        }
        writer.finishFrame()
        return writer.bytes
    }

    /// Ends this process when its parent dies (it is then re-parented), even while a script is spinning
    /// on the main thread. The engine passes its pid, so a parent that died during start-up counts too.
    private static func watch(parent: pid_t) {
        var thread = pthread_t()
        let parent = UnsafeMutableRawPointer(bitPattern: Int(parent))
        _ = pthread_create(
            &thread, nil,
            { arg in
                let parent = pid_t(Int(bitPattern: arg))
                while getppid() == parent { usleep(200_000) }
                _exit(0)
            }, parent)
    }

    private static func readExactly(_ n: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: n)
        var offset = 0
        while offset < n {
            let r = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress! + offset, n - offset) }
            if r > 0 {
                offset += r
            } else if r < 0 && errno == EINTR {
                continue
            } else {
                return nil
            }
        }
        return buffer
    }

    private static func readFrame() -> [UInt8]? {
        guard let h = readExactly(4) else { return nil }
        let n = Int(UInt32(h[0]) | UInt32(h[1]) << 8 | UInt32(h[2]) << 16 | UInt32(h[3]) << 24)
        return readExactly(n)
    }

    private static func writeAll(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let w = bytes.withUnsafeBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
            if w > 0 {
                offset += w
            } else if w < 0 && errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }
}
