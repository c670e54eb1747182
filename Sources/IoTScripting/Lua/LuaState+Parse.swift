internal import CIoTLua
import IoTCore

// The `parse(msg)` fast path: the message goes into a Lua table and the records come out of the returned
// tables directly, without building ``ScriptValue``s in between. Same rules as ``ScriptRecords/records``.

extension LuaState {
    /// Calls the script's `parse(msg)` and reads the records it returns.
    func parse(_ message: InboundMessage, with script: EngineScript) throws(IoTError) -> [DeviceRecord] {
        let top = lua_gettop(L)
        defer { lua_settop(L, top) }
        try pushFunction("parse", of: script)
        lua_createtable(L, 0, 5)
        push(.payload)
        message.payload.withUnsafeBufferPointer { buf in
            buf.withMemoryRebound(to: CChar.self) { _ = lua_pushlstring(L, $0.baseAddress, $0.count) }
        }
        lua_rawset(L, -3)
        push(.transport)
        pushRecent(message.transport, slot: 0)
        lua_rawset(L, -3)
        if let topic = message.topic {
            push(.topic)
            pushString(topic)
            lua_rawset(L, -3)
        }
        if let device = message.deviceUID {
            push(.device)
            pushRecent(device, slot: 1)
            lua_rawset(L, -3)
        }
        if let at = message.receivedAt {
            push(.receivedAt)
            lua_pushinteger(L, lua_Integer(at))
            lua_rawset(L, -3)
        }
        let status = protectedCall(arguments: 1, results: 1)
        if status != LUA_OK { throw failure(status, name: script.name) }
        return try records(message, script: script.name)
    }

    private func malformed(_ script: String, _ what: String) -> IoTError { ScriptRecords.malformed(script, what) }

    private func kind(_ index: Int32) -> String { "a " + typeName(lua_type(L, index)) }

    /// Pushes `t[key]` (raw) for the table at `index`, returning its type.
    @discardableResult
    private func field(_ index: Int32, _ key: Key) -> Int32 {
        push(key)
        return lua_rawget(L, index)
    }

    private func records(_ message: InboundMessage, script: String) throws(IoTError) -> [DeviceRecord] {
        let result = lua_gettop(L)
        switch lua_type(L, result) {
        case LUA_TNIL: return []
        case LUA_TTABLE: break
        default: throw malformed(script, "\(kind(result)) where a list of records was expected")
        }
        let single = field(result, .values) != LUA_TNIL
        ciot_lua_pop(L, 1)
        if single { return [try record(at: result, number: 1, message, script)] }
        let n = Int(lua_rawlen(L, result))
        if n == 0 {
            // No list elements and no `values`: empty (no records), or the message device's values.
            lua_pushnil(L)
            if lua_next(L, result) == 0 { return [] }
            lua_settop(L, result)
            guard let device = message.deviceUID else {
                throw malformed(script, "values without a device, for a message without one")
            }
            return [DeviceRecord(deviceUID: device, values: try values(of: result, number: 1, script))]
        }
        var out: [DeviceRecord] = []
        out.reserveCapacity(n)
        for i in 0..<n {
            lua_rawgeti(L, result, lua_Integer(i + 1))
            out.append(try record(at: lua_gettop(L), number: i + 1, message, script))
            ciot_lua_pop(L, 1)
        }
        return out
    }

    private func text(_ index: Int32, _ key: Key, number: Int, _ script: String) throws(IoTError) -> String? {
        defer { ciot_lua_pop(L, 1) }
        switch field(index, key) {
        case LUA_TNIL: return nil
        case LUA_TSTRING: return string(at: -1)
        case LUA_TNUMBER:
            let d = self.number(at: -1)
            return d == d.rounded() && abs(d) < 9.0e15 ? String(Int64(d)) : String(d)
        default: throw malformed(script, "record \(number) with \(kind(-1)) as \(key.text)")
        }
    }

    private func record(at index: Int32, number: Int, _ message: InboundMessage, _ script: String) throws(IoTError)
        -> DeviceRecord
    {
        guard lua_type(L, index) == LUA_TTABLE else { throw malformed(script, "\(kind(index)) as record \(number)") }
        guard let device = try text(index, .device, number: number, script) ?? message.deviceUID else {
            throw malformed(script, "record \(number) without a device, for a message without one")
        }
        let code = try text(index, .identificationCode, number: number, script)
        var time: Int64?
        switch field(index, .time) {
        case LUA_TNIL: break
        case LUA_TNUMBER:
            if lua_isinteger(L, -1) != 0 {
                time = Int64(lua_tointegerx(L, -1, nil))
            } else {
                let t = lua_tonumberx(L, -1, nil)
                guard t.isFinite, abs(t) < 9.0e15 else { throw malformed(script, "record \(number) with time \(t)") }
                time = Int64(t.rounded())
            }
        default: throw malformed(script, "record \(number) with time \(kind(-1)); expected milliseconds")
        }
        ciot_lua_pop(L, 1)
        var values: [String: SignalValue] = [:]
        let valuesType = field(index, .values)
        defer { ciot_lua_pop(L, 1) }
        if valuesType == LUA_TTABLE {
            values = try self.values(of: lua_gettop(L), number: number, script)
        } else if valuesType != LUA_TNIL {
            throw malformed(script, "record \(number) with values \(kind(-1)); expected a table")
        }
        return DeviceRecord(deviceUID: device, identificationCode: code, time: time, values: values)
    }

    /// The signal values in the table at `t`: string keys, number, boolean or string values.
    private func values(of t: Int32, number: Int, _ script: String) throws(IoTError) -> [String: SignalValue] {
        var values = [String: SignalValue](minimumCapacity: 8)
        lua_pushnil(L)
        while lua_next(L, t) != 0 {
            guard lua_type(L, -2) == LUA_TSTRING else {
                throw malformed(script, "record \(number) with a value named by \(kind(-2))")
            }
            let name = string(at: -2)
            switch lua_type(L, -1) {
            case LUA_TNUMBER: values[name] = .number(self.number(at: -1))
            case LUA_TBOOLEAN: values[name] = .bool(lua_toboolean(L, -1) != 0)
            case LUA_TSTRING: values[name] = .text(string(at: -1))
            default: throw malformed(script, "record \(number) with \(kind(-1)) as the value of '\(name)'")
            }
            ciot_lua_pop(L, 1)
        }
        return values
    }
}
