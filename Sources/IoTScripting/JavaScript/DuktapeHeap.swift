internal import CIoTDuktape
import IoTCore

#if canImport(Glibc)
    import Glibc
#endif

/// Allocation bookkeeping of one heap, reached from the allocator through its user data.
struct DuktapeMemory {
    var used = 0
    var limit = 0
    /// The cap applies only while a script runs (under `duk_pcall`), so that Swift's own pushes, which
    /// run outside protected mode, never see an allocation failure.
    var enforce = false
    /// Set when the allocator refused a request during the current call.
    var refused = false
}

private let headerSize = 16

private func dukAllocate(_ ud: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
    let m = ud!.assumingMemoryBound(to: DuktapeMemory.self)
    if m.pointee.enforce, m.pointee.used + size > m.pointee.limit {
        m.pointee.refused = true
        return nil
    }
    guard let raw = malloc(size + headerSize) else { return nil }
    raw.storeBytes(of: size, as: Int.self)
    m.pointee.used += size
    return raw + headerSize
}

private let dukAlloc: duk_alloc_function = { ud, size in dukAllocate(ud, size) }

private let dukRealloc: duk_realloc_function = { ud, ptr, size in
    guard let ptr else { return dukAllocate(ud, size) }
    let m = ud!.assumingMemoryBound(to: DuktapeMemory.self)
    let raw = ptr - headerSize
    let old = raw.load(as: Int.self)
    if size == 0 {
        free(raw)
        m.pointee.used -= old
        return nil
    }
    if m.pointee.enforce, size > old, m.pointee.used - old + size > m.pointee.limit {
        m.pointee.refused = true
        return nil
    }
    guard let moved = realloc(raw, size + headerSize) else { return nil }
    moved.storeBytes(of: size, as: Int.self)
    m.pointee.used += size - old
    return moved + headerSize
}

private let dukFree: duk_free_function = { ud, ptr in
    guard let ptr else { return }
    let m = ud!.assumingMemoryBound(to: DuktapeMemory.self)
    let raw = ptr - headerSize
    m.pointee.used -= raw.load(as: Int.self)
    free(raw)
}

/// Duktape's fatal handler must not return. Inside a worker process this ends the worker, which the
/// engine notices (end of stream), replaces, and reports as a failed call; in process it ends the host
/// (that mode is for trusted scripts only). Fatal errors need an error outside protected mode, which
/// this module does not cause by itself.
private let dukFatal: duk_fatal_function = { _, msg in
    let text = "iot-js-worker: fatal Duktape error: \(msg.map { String(cString: $0) } ?? "?")\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
    _exit(70)
}

/// Evaluated in each script's fresh global environment before the script: removes what an embedding
/// could expose, and defines the two hidden helpers the host calls.
private let scriptPrelude = """
    (function (g) {
      var names = ['Duktape', 'require', 'print', 'alert', 'module', 'exports'];
      for (var i = 0; i < names.length; i++) { try { delete g[names[i]]; } catch (e) {} }
      function plain(v, d) {
        if (d > 100) { throw new RangeError('a returned value is nested deeper than 100 levels (or has a cycle)'); }
        if (v === null || v === undefined) { return null; }
        var t = typeof v;
        if (t === 'number' || t === 'boolean' || t === 'string') { return v; }
        if (t !== 'object') { return null; }
        if (v instanceof Date) { return v.getTime(); }
        var out, k;
        if (Array.isArray(v)) {
          out = [];
          for (k = 0; k < v.length; k++) { out[k] = plain(v[k], d + 1); }
          return out;
        }
        out = {};
        var keys = Object.keys(v);
        for (k = 0; k < keys.length; k++) { out[keys[k]] = plain(v[keys[k]], d + 1); }
        return out;
      }
      function hidden(name, value) {
        Object.defineProperty(g, name, { value: value, writable: false, enumerable: false, configurable: false });
      }
      hidden('__ciot_call', function (name) {
        var f = g[name];
        if (typeof f !== 'function') { throw new TypeError("the script defines no function '" + name + "'"); }
        return plain(f.apply(undefined, Array.prototype.slice.call(arguments, 1)), 0);
      });
      hidden('__ciot_describe', function (e) {
        var m;
        if (e instanceof Error) { m = e.name + ': ' + e.message; } else { m = String(e); }
        var line = (e !== null && typeof e === 'object') ? e.lineNumber : undefined;
        if (typeof line === 'number' && m.indexOf('(line ') < 0) { m += ' (line ' + line + ')'; }
        return m;
      });
    })(this);
    """

/// One Duktape heap with its memory cap, and the scripts loaded into it, each in its own thread with a
/// fresh global environment (so scripts cannot see or change each other's globals).
///
/// `@unchecked Sendable`: a heap is used by one caller at a time: in a worker process by its single
/// thread, in process by the caller that took it from the engine's ``BlockingPool``. Freed once, in
/// `deinit`.
final class DuktapeHeap: @unchecked Sendable {
    let ctx: OpaquePointer
    let memory: UnsafeMutablePointer<DuktapeMemory>
    private var scripts: [UInt64: OpaquePointer] = [:]
    var retiredGeneration = 0
    /// `duk_def_prop` flags: a plain writable, enumerable, configurable data property. Defining (rather
    /// than assigning) never runs a setter a script put on a prototype.
    private static let plainProperty: UInt32 = 0x40 | 0x08 | 0x01 | 0x10 | 0x02 | 0x20 | 0x04
    static let maxDepth = 100

    init(memoryLimit: Int) throws(IoTError) {
        memory = .allocate(capacity: 1)
        memory.initialize(to: DuktapeMemory(limit: memoryLimit))
        guard let ctx = duk_create_heap(dukAlloc, dukRealloc, dukFree, UnsafeMutableRawPointer(memory), dukFatal) else {
            memory.deallocate()
            throw IoTError(.script, "cannot create a Duktape heap (out of memory)")
        }
        self.ctx = ctx
    }

    deinit {
        duk_destroy_heap(ctx)
        memory.deallocate()
    }

    func has(_ id: UInt64) -> Bool { scripts[id] != nil }

    private func stashKey(_ id: UInt64) -> String { "s\(id)" }

    /// Loads a script into a new thread with its own global environment and runs its top level.
    /// Throws ``IoTError/Code/script`` with the message and line of a syntax or top-level error.
    func load(id: UInt64, name: String, source: String) throws(IoTError) {
        unload(id)
        duk_push_global_stash(ctx)
        _ = ciot_duk_push_thread_new_globalenv(ctx)
        guard let t = duk_get_context(ctx, -1) else {
            duk_pop_2(ctx)
            throw IoTError(.script, "cannot create a Duktape thread")
        }
        _ = duk_put_prop_string(ctx, -2, stashKey(id))
        duk_pop(ctx)
        scripts[id] = t

        var status = run { ciot_duk_peval_string(t, scriptPrelude) }
        if status != 0 { try fail(t, id: id, name: name) }
        duk_pop(t)
        _ = duk_push_lstring(t, name, name.utf8.count)
        var source = source
        status = source.withUTF8 { buf in
            buf.withMemoryRebound(to: CChar.self) { chars in
                run { ciot_duk_pcompile_lstring_filename(t, 0, chars.baseAddress, chars.count) }
            }
        }
        if status != 0 { try fail(t, id: id, name: name) }
        status = run { duk_pcall(t, 0) }
        if status != 0 { try fail(t, id: id, name: name) }
        duk_set_top(t, 0)
    }

    private func fail(_ t: OpaquePointer, id: UInt64, name: String) throws(IoTError) -> Never {
        let error = failure(t, name: name)
        unload(id)
        throw error
    }

    /// Runs `body` (a protected Duktape call) with the memory cap in force.
    private func run(_ body: () -> Int32) -> Int32 {
        memory.pointee.refused = false
        memory.pointee.enforce = true
        defer { memory.pointee.enforce = false }
        return body()
    }

    /// The error on the stack top of `t` as an ``IoTError`` (the stack of `t` is cleared).
    private func failure(_ t: OpaquePointer, name: String) -> IoTError {
        defer { duk_set_top(t, 0) }
        if memory.pointee.refused {
            return IoTError(.script, "script '\(name)' exceeded its memory limit of \(memory.pointee.limit) bytes")
        }
        // Describe the error with the hidden helper, itself under duk_pcall: a hostile error object
        // (throwing getters, toString) cannot escape protected mode.
        var message = "(the error could not be described)"
        if duk_check_stack(t, 3) != 0, duk_get_global_string(t, "__ciot_describe") != 0 {
            duk_swap_top(t, -2)
            if run({ duk_pcall(t, 1) }) == 0, let s = string(t, at: -1) { message = s }
        }
        return IoTError(.script, message)
    }

    /// Calls the script's global `function` with `arguments` and returns its result as a plain value.
    func call(id: UInt64, name: String, function: String, arguments: [ScriptValue]) throws(IoTError) -> ScriptValue {
        guard let t = scripts[id] else { throw IoTError(.script, "script '\(name)' is not loaded") }
        duk_set_top(t, 0)
        guard duk_check_stack(t, Int32(arguments.count) + 4) != 0 else {
            throw IoTError(.script, "too many arguments")
        }
        _ = duk_get_global_string(t, "__ciot_call")
        _ = duk_push_lstring(t, function, function.utf8.count)
        for a in arguments {
            do { try push(t, a) } catch {
                duk_set_top(t, 0)
                throw error
            }
        }
        let status = run { duk_pcall(t, Int32(arguments.count) + 1) }
        if status != 0 { throw failure(t, name: name) }
        defer { duk_set_top(t, 0) }
        return try value(t, at: -1)
    }

    /// Frees a script's thread and globals.
    func unload(_ id: UInt64) {
        guard scripts.removeValue(forKey: id) != nil else { return }
        duk_push_global_stash(ctx)
        _ = duk_del_prop_string(ctx, -1, stashKey(id))
        duk_pop(ctx)
    }

    // MARK: Values

    private func push(_ t: OpaquePointer, _ v: ScriptValue, depth: Int = 0) throws(IoTError) {
        guard depth < Self.maxDepth, duk_check_stack(t, 4) != 0 else {
            throw IoTError(.script, "a value is nested deeper than \(Self.maxDepth) levels")
        }
        switch v {
        case .null: duk_push_null(t)
        case .bool(let b): duk_push_boolean(t, b ? 1 : 0)
        case .number(let d): duk_push_number(t, d)
        case .string(let s): pushString(t, s)
        case .array(let a):
            let index = duk_push_array(t)
            for (i, e) in a.enumerated() {
                duk_push_uint(t, UInt32(i))
                try push(t, e, depth: depth + 1)
                duk_def_prop(t, index, Self.plainProperty)
            }
        case .object(let o):
            let index = duk_push_object(t)
            for (k, e) in o {
                pushString(t, k)
                try push(t, e, depth: depth + 1)
                duk_def_prop(t, index, Self.plainProperty)
            }
        }
    }

    private func pushString(_ t: OpaquePointer, _ s: String) {
        var s = s
        s.withUTF8 { buf in
            buf.withMemoryRebound(to: CChar.self) { _ = duk_push_lstring(t, $0.baseAddress, $0.count) }
        }
    }

    private func string(_ t: OpaquePointer, at index: Int32) -> String? {
        var n = 0
        guard let p = duk_get_lstring(t, index, &n) else { return nil }
        return p.withMemoryRebound(to: UInt8.self, capacity: n) {
            String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
        }
    }

    /// Reads a value made plain by the prelude's `plain` (own data properties only).
    private func value(_ t: OpaquePointer, at index: Int32, depth: Int = 0) throws(IoTError) -> ScriptValue {
        let index = duk_normalize_index(t, index)
        switch UInt32(bitPattern: duk_get_type(t, index)) {
        case DUK_TYPE_BOOLEAN: return .bool(duk_get_boolean(t, index) != 0)
        case DUK_TYPE_NUMBER: return .number(duk_get_number(t, index))
        case DUK_TYPE_STRING: return .string(string(t, at: index) ?? "")
        case DUK_TYPE_OBJECT:
            guard depth < Self.maxDepth, duk_check_stack(t, 4) != 0 else {
                throw IoTError(.script, "a value is nested deeper than \(Self.maxDepth) levels")
            }
            if duk_is_array(t, index) != 0 {
                let n = duk_get_length(t, index)
                var a: [ScriptValue] = []
                a.reserveCapacity(n)
                for i in 0..<n {
                    _ = duk_get_prop_index(t, index, UInt32(i))
                    defer { duk_pop(t) }
                    a.append(try value(t, at: -1, depth: depth + 1))
                }
                return .array(a)
            }
            var o: [String: ScriptValue] = [:]
            duk_enum(t, index, DUK_ENUM_OWN_PROPERTIES_ONLY)
            defer { duk_pop(t) }
            while duk_next(t, -1, 1) != 0 {
                defer { duk_pop_2(t) }
                guard let key = string(t, at: -2) else { continue }
                o[key] = try value(t, at: -1, depth: depth + 1)
            }
            return .object(o)
        default: return .null
        }
    }
}
