internal import CIoTLua
import IoTCore

// Conversions between Lua values and Swift values. They run outside lua_pcall, so they use only API
// calls that cannot raise a Lua error: raw accesses on plain tables, type checks before `lua_tolstring`,
// `lua_checkstack` before growing the stack, and the memory cap lifted (`enforce == 0`) while pushing.

extension LuaState {
    static let maxDepth = 100

    private func tooDeep() -> IoTError {
        IoTError(.script, "a value is nested deeper than \(Self.maxDepth) levels (or has a cycle)")
    }

    /// Pushes a value: numbers with an exact 64-bit integer value become Lua integers.
    func push(_ value: ScriptValue, depth: Int = 0) throws(IoTError) {
        guard depth < Self.maxDepth, lua_checkstack(L, 3) != 0 else { throw tooDeep() }
        switch value {
        case .null: lua_pushnil(L)
        case .bool(let b): lua_pushboolean(L, b ? 1 : 0)
        case .number(let d): pushNumber(d)
        case .string(let s): pushString(s)
        case .array(let a):
            lua_createtable(L, Int32(clamping: a.count), 0)
            for (i, e) in a.enumerated() {
                try push(e, depth: depth + 1)
                lua_rawseti(L, -2, lua_Integer(i + 1))
            }
        case .object(let o):
            lua_createtable(L, 0, Int32(clamping: o.count))
            for (k, e) in o {
                pushString(k)
                try push(e, depth: depth + 1)
                lua_rawset(L, -3)
            }
        }
    }

    func pushNumber(_ d: Double) {
        if d == d.rounded(.towardZero), abs(d) < 9.0e15 {
            lua_pushinteger(L, lua_Integer(d))
        } else {
            lua_pushnumber(L, d)
        }
    }

    func pushString(_ s: String) {
        var s = s
        s.withUTF8 { buf in
            buf.withMemoryRebound(to: CChar.self) { _ = lua_pushlstring(L, $0.baseAddress, $0.count) }
        }
    }

    /// The string at `index` (which must have type string).
    func string(at index: Int32) -> String {
        var n = 0
        guard let p = lua_tolstring(L, index, &n) else { return "" }
        return p.withMemoryRebound(to: UInt8.self, capacity: n) {
            String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
        }
    }

    /// The number at `index` (type number), integers kept exact.
    func number(at index: Int32) -> Double {
        lua_isinteger(L, index) != 0 ? Double(lua_tointegerx(L, index, nil)) : lua_tonumberx(L, index, nil)
    }

    /// Reads the value at `index`. A table whose keys are exactly 1…n is an array; an empty table is an
    /// empty array; other tables are objects with string (or number, written as text) keys.
    func value(at index: Int32, depth: Int = 0) throws(IoTError) -> ScriptValue {
        let index = lua_absindex(L, index)
        switch lua_type(L, index) {
        case LUA_TNIL, LUA_TNONE: return .null
        case LUA_TBOOLEAN: return .bool(lua_toboolean(L, index) != 0)
        case LUA_TNUMBER: return .number(number(at: index))
        case LUA_TSTRING: return .string(string(at: index))
        case LUA_TTABLE:
            guard depth < Self.maxDepth, lua_checkstack(L, 4) != 0 else { throw tooDeep() }
            let n = Int(lua_rawlen(L, index))
            var count = 0
            lua_pushnil(L)
            while lua_next(L, index) != 0 {
                count += 1
                ciot_lua_pop(L, 1)
            }
            if count == n {
                var a: [ScriptValue] = []
                a.reserveCapacity(n)
                for i in 0..<n {
                    lua_rawgeti(L, index, lua_Integer(i + 1))
                    defer { ciot_lua_pop(L, 1) }
                    a.append(try value(at: -1, depth: depth + 1))
                }
                return .array(a)
            }
            var o: [String: ScriptValue] = [:]
            o.reserveCapacity(count)
            lua_pushnil(L)
            while lua_next(L, index) != 0 {
                let key: String
                switch lua_type(L, -2) {
                case LUA_TSTRING: key = string(at: -2)
                case LUA_TNUMBER:
                    let d = number(at: -2)
                    key = d == d.rounded(.towardZero) && abs(d) < 9.0e15 ? String(Int64(d)) : String(d)
                case let t:
                    lua_settop(L, -3)
                    throw IoTError(.script, "a table key of type \(typeName(t)) cannot be converted")
                }
                do {
                    o[key] = try value(at: -1, depth: depth + 1)
                } catch {
                    lua_settop(L, -3)
                    throw error
                }
                ciot_lua_pop(L, 1)
            }
            return .object(o)
        case let t:
            throw IoTError(.script, "a Lua \(typeName(t)) cannot be converted to a value")
        }
    }

    func typeName(_ t: Int32) -> String { String(cString: lua_typename(L, t)) }
}
