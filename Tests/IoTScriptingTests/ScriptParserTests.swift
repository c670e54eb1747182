import IoTCore
import IoTScripting
import IoTTesting
import Testing

/// A go-iot-platform script, unchanged: JSON payload → DataRows (string values, time in seconds).
let goJSONScript = """
    function main(nc) {
        var data = JSON.parse(nc);
        var dataRows = [
            { "Name": "temp", "Value": String(data.temperature) },
            { "Name": "on", "Value": data.power ? "1" : "0" },
            { "Name": "fw", "Value": data.firmware }
        ];
        var result = {
            "Time": data.ts,
            "DataRows": dataRows,
            "IdentificationCode": data.sn,
            "DeviceUid": data.sn,
            "Nc": nc
        };
        return [result];
    }
    """

/// A go-iot-platform script, unchanged: `sn,ts,temp,hum;sn,ts,temp,hum` (time in milliseconds).
let goCSVScript = """
    function main(nc) {
        var result = [];
        var lines = nc.split(";");
        for (var i = 0; i < lines.length; i++) {
            var line = lines[i].replace(/^\\s+|\\s+$/g, "");
            if (line.length === 0) {
                continue;
            }
            var parts = line.split(",");
            result.push({
                "Time": parseInt(parts[1], 10),
                "DeviceUid": "",
                "IdentificationCode": parts[0],
                "DataRows": [
                    { "Name": "temp", "Value": parts[2] },
                    { "Name": "hum", "Value": parts[3] }
                ],
                "Nc": nc
            });
        }
        return result;
    }
    """

let luaParseScript = """
    function parse(msg)
      local out = {}
      for sn, t, h in msg.payload:gmatch('(%w+)=(-?[%d.]+)/(-?[%d.]+)') do
        out[#out + 1] = { identificationCode = sn, time = msg.receivedAt, values = { temp = tonumber(t), hum = tonumber(h), topic = msg.topic } }
      end
      if #out == 0 then error('no readings in ' .. msg.transport .. ' payload') end
      return out
    end
    """

let jsParseScript = """
    function parse(msg) {
        var d = JSON.parse(msg.payload);
        if (d.temp === undefined) { throw new Error('no temp in payload'); }
        return [{ time: d.ts, values: { temp: d.temp, on: d.on, fw: d.fw, topic: msg.topic, from: msg.device } }];
    }
    """

@Suite struct LuaScriptParserTests {
    @Test func parsesRecordsFromMessage() throws {
        let parser = try LuaScriptParser(source: luaParseScript, name: "kv")
        let message = InboundMessage(
            transport: "mqtt", deviceUID: "gw-1", topic: "site/1", text: "a1=21.5/40 b2=-3/55.5",
            receivedAt: 1_700_000_000_123)
        let records = try parser.parse(message)
        #expect(
            records == [
                DeviceRecord(
                    deviceUID: "gw-1", identificationCode: "a1", time: 1_700_000_000_123,
                    values: ["temp": .number(21.5), "hum": .number(40), "topic": .text("site/1")]),
                DeviceRecord(
                    deviceUID: "gw-1", identificationCode: "b2", time: 1_700_000_000_123,
                    values: ["temp": .number(-3), "hum": .number(55.5), "topic": .text("site/1")]),
            ])
    }

    @Test func acceptsASingleRecordAndNil() throws {
        let parser = try LuaScriptParser(
            source:
                "function parse(msg) if msg.payload == '' then return nil end return { device = 'd', values = { on = true } } end"
        )
        #expect(try parser.parse(InboundMessage(transport: "t", text: "")) == [])
        #expect(
            try parser.parse(InboundMessage(transport: "t", text: "x")) == [
                DeviceRecord(deviceUID: "d", values: ["on": .bool(true)])
            ])
    }

    /// A flat table (no list, no `values`) is the message device's values, as parse.lua-style scripts return.
    @Test func aFlatTableIsTheDeviceValues() async throws {
        let parser = try LuaScriptParser(
            source:
                "function parse(msg) return { temp = tonumber(msg.payload:match('t=(-?[%d.]+)')), ok = true, fw = 'v1' } end"
        )
        #expect(
            try parser.parse(InboundMessage(transport: "t", deviceUID: "d-1", text: "t=21.5"))
                == [
                    DeviceRecord(
                        deviceUID: "d-1", values: ["temp": .number(21.5), "ok": .bool(true), "fw": .text("v1")])
                ])
        #expect(
            try LuaScriptParser(source: "function parse(msg) return {} end").parse(
                InboundMessage(transport: "t", deviceUID: "d", text: "")) == [])
        await expectError(.malformedPayload) { _ = try parser.parse(InboundMessage(transport: "t", text: "t=1")) }
        let bad = try LuaScriptParser(source: "function parse(msg) return { temp = {} } end")
        await expectError(.malformedPayload) {
            _ = try bad.parse(InboundMessage(transport: "t", deviceUID: "d", text: ""))
        }
    }

    @Test func scriptErrorsAndBadShapesReject() async throws {
        let parser = try LuaScriptParser(source: luaParseScript, name: "kv")
        let e = await expectError(.malformedPayload) {
            _ = try parser.parse(InboundMessage(transport: "http", deviceUID: "d", text: "garbage"))
        }
        #expect(e?.message == "script 'kv': no readings in http payload (line 6)")
        let shape = try LuaScriptParser(source: "function parse(msg) return { { values = { x = {} } } } end")
        await expectError(.malformedPayload) {
            _ = try shape.parse(InboundMessage(transport: "t", deviceUID: "d", text: ""))
        }
        let noDevice = try LuaScriptParser(source: "function parse(msg) return { { values = { x = 1 } } } end")
        await expectError(.malformedPayload) { _ = try noDevice.parse(InboundMessage(transport: "t", text: "")) }
        let spin = try LuaScriptParser(source: "function parse(msg) while true do end end")
        await expectError(.timeout) { _ = try spin.parse(InboundMessage(transport: "t", deviceUID: "d", text: "")) }
    }

    @Test func survivesTheParserVerifier() throws {
        let parser = try LuaScriptParser(source: luaParseScript, name: "kv")
        let verifier = ParserVerifier(parser)
        let sample = InboundMessage(
            transport: "test", deviceUID: "verifier", text: "a1=21.5/40 b2=-3/55.5", receivedAt: 1_700_000_000_000)
        #expect(verifier.truncations(of: sample) == [])
        #expect(verifier.garbage(count: 2_000, seed: 7, mutating: [sample]) == [])
    }

    @Test func binaryPayloadsReachTheScriptIntact() throws {
        let parser = try LuaScriptParser(
            source: "function parse(msg) return { values = { first = msg.payload:byte(1), len = #msg.payload } } end")
        let records = try parser.parse(InboundMessage(transport: "tcp", deviceUID: "d", payload: [0xFF, 0x00, 0x7F]))
        #expect(records.first?.values == ["first": .number(255), "len": .number(3)])
    }
}

extension WorkerTests {
    @Suite struct JavaScriptParserTests {
        @Test func goIoTPlatformJSONScriptRunsUnchanged() throws {
            let js = try JavaScriptEngine()
            defer { js.shutdown() }
            let parser = try JavaScriptParser(source: goJSONScript, name: "go-json", engine: js)
            #expect(parser.convention == .goIoTPlatform)
            let payload = #"{"sn":"t-1","ts":1700000000,"temperature":21.5,"power":true,"firmware":"v1.2"}"#
            let records = try parser.parse(InboundMessage(transport: "mqtt", deviceUID: "gw", text: payload))
            #expect(
                records == [
                    DeviceRecord(
                        deviceUID: "t-1", identificationCode: "t-1", time: 1_700_000_000_000,
                        values: ["temp": .text("21.5"), "on": .text("1"), "fw": .text("v1.2")])
                ])
        }

        @Test func goIoTPlatformCSVScriptRunsUnchanged() throws {
            let js = try JavaScriptEngine()
            defer { js.shutdown() }
            let parser = try JavaScriptParser(source: goCSVScript, name: "go-csv", engine: js)
            let records = try parser.parse(
                InboundMessage(
                    transport: "tcp", deviceUID: "gw-9", text: "s1,1700000000500,21.5,40; s2,1700000060500,n/a,55.5;"))
            #expect(
                records == [
                    DeviceRecord(
                        deviceUID: "gw-9", identificationCode: "s1", time: 1_700_000_000_500,
                        values: ["temp": .text("21.5"), "hum": .text("40")]),
                    DeviceRecord(
                        deviceUID: "gw-9", identificationCode: "s2", time: 1_700_000_060_500,
                        values: ["temp": .text("n/a"), "hum": .text("55.5")]),
                ])
        }

        /// Issue 20, item 2: a go-iot-platform `Value` string is converted to its signal's type by the ingestor:
        /// `"007"` for a text signal is stored as `"007"` (it was `"7.0"`), `"21.5"` for a number signal as
        /// 21.5, `"1"` for a bool signal as true.
        @Test func goIoTPlatformValuesTakeTheirSignalsType() async throws {
            let js = try JavaScriptEngine()
            defer { js.shutdown() }
            let parser = try JavaScriptParser(
                source: """
                    function main(nc) {
                        return [{ "Time": 1700000000, "DeviceUid": "", "IdentificationCode": "",
                                  "DataRows": [{ "Name": "code", "Value": "007" }, { "Name": "temp", "Value": "21.5" },
                                               { "Name": "on", "Value": "1" }], "Nc": nc }];
                    }
                    """, name: "go-types", engine: js)
            let h = try await IngestHarness()
            defer { Task { await h.stop() } }
            try await h.registry.saveProduct(
                h.scope,
                Product(
                    id: "typed",
                    signals: [
                        Signal(name: "code", type: .text), Signal(name: "temp"), Signal(name: "on", type: .bool),
                    ]))
            try await h.registry.saveDevice(h.scope, Device(uid: "typed-1", product: "typed"))
            _ = try await h.send("{}", parser: parser, device: "typed-1")
            #expect(try await h.waitForPoints("typed-1", "code", count: 1).first?.value == .text("007"))
            #expect(try await h.waitForPoints("typed-1", "temp", count: 1).first?.value == .number(21.5))
            #expect(try await h.waitForPoints("typed-1", "on", count: 1).first?.value == .bool(true))
        }

        /// Issue 17, item 4: a go-iot-platform gateway script (one message, many devices) works for a gateway
        /// product; the same message from a device that is not a gateway is refused and stores nothing.
        @Test func goIoTPlatformGatewayScriptNeedsAGatewayProduct() async throws {
            let js = try JavaScriptEngine()
            defer { js.shutdown() }
            let parser = try JavaScriptParser(source: goCSVScript, name: "go-csv", engine: js)
            let h = try await IngestHarness()
            defer { Task { await h.stop() } }
            try await h.registry.saveProduct(
                h.scope, Product(id: "sensor", signals: [Signal(name: "temp"), Signal(name: "hum")]))
            try await h.registry.saveProduct(h.scope, Product(id: "collector", gateway: true))
            for uid in ["s1", "s2"] { try await h.registry.saveDevice(h.scope, Device(uid: uid, product: "sensor")) }
            try await h.registry.saveDevice(h.scope, Device(uid: "gw-9", product: "collector"))
            let payload = "s1,1700000000500,21.5,40; s2,1700000060500,22,55.5;"
            let refused = await #expect(throws: IoTError.self) {
                try await h.send(payload, parser: parser, device: "t-1")
            }
            #expect(refused?.code == .forbidden, "\(String(describing: refused))")
            let receipt = try await h.send(payload, parser: parser, device: "gw-9")
            try await h.ingestor.waitUntilCommitted(receipt)
            #expect(try await h.series("s1", "temp").map(\.value) == [.number(21.5)])
            #expect(try await h.series("s2", "hum").map(\.value) == [.number(55.5)])
        }

        @Test func survivesTheParserVerifier() throws {
            let js = try JavaScriptEngine()
            defer { js.shutdown() }
            let parser = try JavaScriptParser(source: goJSONScript, name: "go-json", engine: js)
            let sample = InboundMessage(
                transport: "test", deviceUID: "verifier",
                text: #"{"sn":"t-1","ts":1700000000,"temperature":21.5,"power":true,"firmware":"v1.2"}"#,
                receivedAt: 1_700_000_000_000)
            let verifier = ParserVerifier(parser)
            #expect(verifier.truncations(of: sample) == [])
            #expect(verifier.garbage(count: 300, seed: 7, mutating: [sample]) == [])
        }

        @Test func parseFormProducesRecords() async throws {
            let js = try JavaScriptEngine()
            defer { js.shutdown() }
            let parser = try JavaScriptParser(source: jsParseScript, name: "js", engine: js)
            #expect(parser.convention == .parse)
            let records = try parser.parse(
                InboundMessage(
                    transport: "http", deviceUID: "t-1", topic: "up",
                    text: #"{"ts": 1700000000999, "temp": 20, "on": false, "fw": "x"}"#))
            #expect(
                records == [
                    DeviceRecord(
                        deviceUID: "t-1", time: 1_700_000_000_999,
                        values: [
                            "temp": .number(20), "on": .bool(false), "fw": .text("x"), "topic": .text("up"),
                            "from": .text("t-1"),
                        ])
                ])
            let e = await expectErrorSync(.malformedPayload) {
                _ = try parser.parse(InboundMessage(transport: "http", deviceUID: "t-1", text: "{}"))
            }
            #expect(e?.message == "script 'js': Error: no temp in payload (line 3)")
            let flat = try JavaScriptParser(
                source: "function parse(msg) { return { temp: parseFloat(msg.payload), on: true }; }", name: "flat",
                engine: js)
            #expect(
                try flat.parse(InboundMessage(transport: "http", deviceUID: "t-1", text: "20.5"))
                    == [DeviceRecord(deviceUID: "t-1", values: ["temp": .number(20.5), "on": .bool(true)])])
        }
    }

    @Suite struct ScriptParserIngestTests {
        /// Through the ingestor: a failing script is one counted rejection, and the next message is stored.
        @Test(arguments: ["lua", "javascript", "go"])
        func aScriptErrorRejectsOnlyThatMessage(_ kind: String) async throws {
            let h = try await IngestHarness()
            let js = try JavaScriptEngine()
            defer { js.shutdown() }
            let parser: any Parser =
                switch kind {
                case "lua":
                    try LuaScriptParser(
                        source:
                            "function parse(msg)\n  local t = tonumber(msg.payload)\n  if not t then error('not a number: ' .. msg.payload) end\n  return { values = { temp = t } }\nend"
                    )
                case "javascript":
                    try JavaScriptParser(
                        source:
                            "function parse(msg) {\n  var d = JSON.parse(msg.payload);\n  return [{ values: { temp: d.temp } }];\n}",
                        engine: js)
                default: try JavaScriptParser(source: goJSONScript, engine: js)
                }
            let good: (Double) -> String = { t in
                switch kind {
                case "lua": return "\(t)"
                case "javascript": return #"{"temp": \#(t)}"#
                default: return #"{"sn":"t-1","ts":0,"temperature":\#(t),"power":true,"firmware":"v1"}"#
                }
            }
            let first = try await h.send(good(20), parser: parser)
            h.clock.advance(byMillis: 1000)
            await expectError(.malformedPayload) { try await h.send("not json {", parser: parser) }
            h.clock.advance(byMillis: 1000)
            let second = try await h.send(good(21), parser: parser)
            try await h.ingestor.waitUntilCommitted(first)
            try await h.ingestor.waitUntilCommitted(second)
            let s = h.ingestor.statistics
            #expect(s.rejected == ["malformed_payload": 1])
            #expect(s.stored == 2 && s.isBalanced)
            #expect(try await h.series("t-1", "temp").map(\.value) == [.number(20), .number(21)])
            await h.stop()
        }
    }
}

/// ``expectError`` for synchronous bodies.
func expectErrorSync(_ code: IoTError.Code, _ body: () throws -> Void) async -> IoTError? {
    await expectError(code) { try body() }
}
