import IoTCore
import IoTTesting
import Testing

@Suite struct SenMLParserTests {
    static let now: Int64 = 1_700_000_000_000

    static func message(_ text: String, device: String? = "gw", receivedAt: Int64? = now) -> InboundMessage {
        InboundMessage(
            transport: "test", deviceUID: device, contentType: "application/senml+json", text: text,
            receivedAt: receivedAt)
    }

    // MARK: RFC 8428 §5.1 examples

    /// §5.1.1 Single Datapoint: the name is the sensor's device URN.
    static let singleDatapoint = #"[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]"#

    /// §5.1.2 Multiple Datapoints (first example).
    static let multipleDatapoints = #"""
        [
          {"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},
          {"n":"current","u":"A","v":1.2}
        ]
        """#

    /// §5.1.2 Multiple Datapoints (second example: relative times against a base time).
    static let multipleDatapointsOverTime = #"""
        [
          {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,
           "bu":"A","bver":5,
           "n":"voltage","u":"V","v":120.1},
          {"n":"current","t":-5,"v":1.2},
          {"n":"current","t":-4,"v":1.3},
          {"n":"current","t":-3,"v":1.4},
          {"n":"current","t":-2,"v":1.5},
          {"n":"current","t":-1,"v":1.6},
          {"n":"current","v":1.7}
        ]
        """#

    /// §5.1.3 Multiple Measurements: one sensor, measurements told apart by unit.
    static let multipleMeasurements = #"""
        [
          {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
           "bu":"%RH","v":20},
          {"u":"lon","v":24.30621},
          {"u":"lat","v":60.07965},
          {"t":60,"v":20.3},
          {"u":"lon","t":60,"v":24.30622},
          {"u":"lat","t":60,"v":60.07965},
          {"t":120,"v":20.7},
          {"u":"lon","t":120,"v":24.30623},
          {"u":"lat","t":120,"v":60.07966},
          {"u":"%EL","t":150,"v":98},
          {"t":180,"v":21.2},
          {"u":"lon","t":180,"v":24.30628},
          {"u":"lat","t":180,"v":60.07967}
        ]
        """#

    /// §5.1.4 Resolved Data: §5.1.3 with every field resolved.
    static let resolvedData = #"""
        [
          {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067464e+09,"v":20},
          {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067464e+09,"v":24.30621},
          {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067464e+09,"v":60.07965},
          {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067524e+09,"v":20.3},
          {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067524e+09,"v":24.30622},
          {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067524e+09,"v":60.07965},
          {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067584e+09,"v":20.7},
          {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067584e+09,"v":24.30623},
          {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067584e+09,"v":60.07966},
          {"n":"urn:dev:ow:10e2073a01080063","u":"%EL","t":1.320067614e+09,"v":98},
          {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067644e+09,"v":21.2},
          {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067644e+09,"v":24.30628},
          {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067644e+09,"v":60.07967}
        ]
        """#

    /// §5.1.5 Multiple Data Types.
    static let multipleDataTypes = #"""
        [
          {"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},
          {"n":"label","vs":"Machine Room"},
          {"n":"open","vb":false},
          {"n":"nfc-reader","vd":"aGkgCg"}
        ]
        """#

    /// §5.1.6 Collection of Resources: a gateway reporting two devices; the base time carries over the
    /// change of base name.
    static let collectionOfResources = #"""
        [
          {"bn":"2001:db8::2/","bt":1.320078429e+09,
           "n":"temperature","u":"Cel","v":25.2},
          {"n":"humidity","u":"%RH","v":30},
          {"bn":"2001:db8::1/","n":"temperature","u":"Cel","v":12.3},
          {"n":"humidity","u":"%RH","v":67}
        ]
        """#

    /// §5.1.7 Setting an Actuator: a base-only first record.
    static let settingAnActuator = #"""
        [
          {"bn":"urn:dev:ow:10e2073a01080063:"},
          {"n":"temp","u":"Cel","v":23.1},
          {"n":"heat","u":"/","v":1},
          {"n":"fan","u":"/","v":0}
        ]
        """#

    /// §5.1.7 two lights turned on, then §5.1.7's synchronized lights off.
    static let lightsOn = #"[{"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":1},{"n":"2001:db8::4","v":1}]"#
    static let lightsOff = #"""
        [
          {"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":0.5},
          {"n":"2001:db8::4","v":0.5},
          {"n":"2001:db8::3","t":0.1,"v":0},
          {"n":"2001:db8::4","t":0.1,"v":0}
        ]
        """#

    static let t0: Int64 = 1_320_067_464_000
    static let sensor = "urn:dev:ow:10e2073a01080063"
    static let positionUnits = ["%RH": "%RH", "lon": "lon", "lat": "lat"]

    /// §5.1.3 and §5.1.4 are the same data: the same records, so the same points.
    static let multipleMeasurementsRecords = [
        DeviceRecord(
            deviceUID: "gw", identificationCode: sensor, time: t0,
            values: ["%RH": .number(20), "lon": .number(24.30621), "lat": .number(60.07965)], units: positionUnits),
        DeviceRecord(
            deviceUID: "gw", identificationCode: sensor, time: t0 + 60_000,
            values: ["%RH": .number(20.3), "lon": .number(24.30622), "lat": .number(60.07965)], units: positionUnits),
        DeviceRecord(
            deviceUID: "gw", identificationCode: sensor, time: t0 + 120_000,
            values: ["%RH": .number(20.7), "lon": .number(24.30623), "lat": .number(60.07966)], units: positionUnits),
        DeviceRecord(
            deviceUID: "gw", identificationCode: sensor, time: t0 + 150_000, values: ["%EL": .number(98)],
            units: ["%EL": "%EL"]),
        DeviceRecord(
            deviceUID: "gw", identificationCode: sensor, time: t0 + 180_000,
            values: ["%RH": .number(21.2), "lon": .number(24.30628), "lat": .number(60.07967)], units: positionUnits),
    ]

    static let rfcCases: [ParserVerifier.GoldenCase] = [
        .init(
            // The name is the sensor's device URN with no measurement after it: the unit names the signal.
            "§5.1.1 single datapoint", message: message(singleDatapoint),
            expected: [
                DeviceRecord(
                    deviceUID: "gw", identificationCode: sensor, values: ["Cel": .number(23.1)], units: ["Cel": "Cel"])
            ]),
        .init(
            "§5.1.2 multiple datapoints", message: message(multipleDatapoints),
            expected: [
                DeviceRecord(
                    deviceUID: "gw", identificationCode: sensor,
                    values: ["voltage": .number(120.1), "current": .number(1.2)],
                    units: ["voltage": "V", "current": "A"])
            ]),
        .init(
            "§5.1.2 multiple datapoints over time", message: message(multipleDatapointsOverTime),
            expected: [
                DeviceRecord(
                    deviceUID: "gw", identificationCode: "urn:dev:ow:10e2073a0108006", time: 1_276_020_076_001,
                    values: ["voltage": .number(120.1), "current": .number(1.7)],
                    units: ["voltage": "V", "current": "A"]),
                DeviceRecord(
                    deviceUID: "gw", identificationCode: "urn:dev:ow:10e2073a0108006", time: 1_276_020_071_001,
                    values: ["current": .number(1.2)], units: ["current": "A"]),
                DeviceRecord(
                    deviceUID: "gw", identificationCode: "urn:dev:ow:10e2073a0108006", time: 1_276_020_072_001,
                    values: ["current": .number(1.3)], units: ["current": "A"]),
                DeviceRecord(
                    deviceUID: "gw", identificationCode: "urn:dev:ow:10e2073a0108006", time: 1_276_020_073_001,
                    values: ["current": .number(1.4)], units: ["current": "A"]),
                DeviceRecord(
                    deviceUID: "gw", identificationCode: "urn:dev:ow:10e2073a0108006", time: 1_276_020_074_001,
                    values: ["current": .number(1.5)], units: ["current": "A"]),
                DeviceRecord(
                    deviceUID: "gw", identificationCode: "urn:dev:ow:10e2073a0108006", time: 1_276_020_075_001,
                    values: ["current": .number(1.6)], units: ["current": "A"]),
            ]),
        .init(
            "§5.1.3 multiple measurements", message: message(multipleMeasurements),
            expected: multipleMeasurementsRecords),
        .init(
            "§5.1.4 resolved data (the same data as §5.1.3)", message: message(resolvedData),
            expected: multipleMeasurementsRecords),
        .init(
            "§5.1.5 multiple data types", message: message(multipleDataTypes),
            expected: [
                DeviceRecord(
                    deviceUID: "gw", identificationCode: sensor,
                    values: [
                        "temp": .number(23.1), "label": .text("Machine Room"), "open": .bool(false),
                        "nfc-reader": .text("aGkgCg"),
                    ], units: ["temp": "Cel"])
            ]),
        .init(
            "§5.1.6 collection of resources", message: message(collectionOfResources),
            expected: [
                DeviceRecord(
                    deviceUID: "gw", identificationCode: "2001:db8::2", time: 1_320_078_429_000,
                    values: ["temperature": .number(25.2), "humidity": .number(30)],
                    units: ["temperature": "Cel", "humidity": "%RH"]),
                DeviceRecord(
                    deviceUID: "gw", identificationCode: "2001:db8::1", time: 1_320_078_429_000,
                    values: ["temperature": .number(12.3), "humidity": .number(67)],
                    units: ["temperature": "Cel", "humidity": "%RH"]),
            ]),
        .init(
            "§5.1.7 setting an actuator (a base-only first record)", message: message(settingAnActuator),
            expected: [
                DeviceRecord(
                    deviceUID: "gw", identificationCode: sensor,
                    values: ["temp": .number(23.1), "heat": .number(1), "fan": .number(0)],
                    units: ["temp": "Cel", "heat": "/", "fan": "/"])
            ]),
        .init(
            "§5.1.7 lights on", message: message(lightsOn),
            expected: [
                DeviceRecord(
                    deviceUID: "gw", time: 1_320_078_429_000,
                    values: ["2001:db8::3": .number(1), "2001:db8::4": .number(1)],
                    units: ["2001:db8::3": "/", "2001:db8::4": "/"])
            ]),
        .init(
            "§5.1.7 synchronized lights off", message: message(lightsOff),
            expected: [
                DeviceRecord(
                    deviceUID: "gw", time: 1_320_078_429_000,
                    values: ["2001:db8::3": .number(0.5), "2001:db8::4": .number(0.5)],
                    units: ["2001:db8::3": "/", "2001:db8::4": "/"]),
                DeviceRecord(
                    deviceUID: "gw", time: 1_320_078_429_100,
                    values: ["2001:db8::3": .number(0), "2001:db8::4": .number(0)],
                    units: ["2001:db8::3": "/", "2001:db8::4": "/"]),
            ]),
    ]

    static let mappingCases: [ParserVerifier.GoldenCase] = [
        .init(
            "relative times resolve against receivedAt",
            message: message(#"[{"n":"a","v":1,"t":-5},{"n":"a","v":2,"t":0}]"#),
            expected: [
                DeviceRecord(deviceUID: "gw", time: now - 5_000, values: ["a": .number(1)]),
                DeviceRecord(deviceUID: "gw", time: now, values: ["a": .number(2)]),
            ]),
        .init(
            "times round to the nearest millisecond",
            message: message(#"[{"n":"a","v":1,"bt":1700000000.0004},{"n":"b","v":1,"bt":1700000000.0006}]"#),
            expected: [
                DeviceRecord(deviceUID: "gw", time: 1_700_000_000_000, values: ["a": .number(1)]),
                DeviceRecord(deviceUID: "gw", time: 1_700_000_000_001, values: ["b": .number(1)]),
            ]),
        .init(
            "base value and base sum add",
            message: message(#"[{"bn":"d/","bv":10,"bs":100,"n":"a","v":1,"s":2},{"n":"b","v":-1}]"#),
            expected: [
                DeviceRecord(
                    deviceUID: "gw", identificationCode: "d",
                    values: ["a": .number(11), "a_sum": .number(102), "b": .number(9)])
            ]),
        .init(
            "sum only is stored under the signal",
            message: message(#"[{"bn":"meter.","n":"energy","u":"J","s":42.5}]"#),
            expected: [
                DeviceRecord(
                    deviceUID: "gw", identificationCode: "meter", values: ["energy": .number(42.5)],
                    units: ["energy": "J"])
            ]),
        .init(
            "base name without separator, unknown fields ignored, ut read",
            message: message(#"[{"bn":"dev9","n":"x","v":1,"ut":60,"custom":{"a":1}}]"#),
            expected: [DeviceRecord(deviceUID: "gw", identificationCode: "dev9", values: ["x": .number(1)])]),
        .init(
            "named device without a message device",
            message: message(#"[{"bn":"dev9:","n":"x","vb":true}]"#, device: nil),
            expected: [DeviceRecord(deviceUID: "dev9", values: ["x": .bool(true)])]),
        .init(
            "same device and time merge in order of first appearance",
            message: message(
                #"[{"bn":"a:","bt":1700000000,"n":"x","v":1},{"bn":"b:","n":"x","v":2},{"bn":"a:","n":"y","v":3}]"#),
            expected: [
                DeviceRecord(
                    deviceUID: "gw", identificationCode: "a", time: 1_700_000_000_000,
                    values: ["x": .number(1), "y": .number(3)]),
                DeviceRecord(
                    deviceUID: "gw", identificationCode: "b", time: 1_700_000_000_000, values: ["x": .number(2)]),
            ]),
        .init("empty pack", message: message("[]", device: nil), expected: []),
    ]

    @Test(arguments: rfcCases)
    func rfcExamples(_ golden: ParserVerifier.GoldenCase) {
        let failures = ParserVerifier(SenMLParser()).golden([golden])
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test(arguments: mappingCases)
    func mapping(_ golden: ParserVerifier.GoldenCase) {
        let failures = ParserVerifier(SenMLParser()).golden([golden])
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func nameIsSenML() {
        #expect(SenMLParser().name == "senml")
    }

    @Test(arguments: [
        (#"{"n":"a","v":1}"#, "SenML pack is an object; expected an array of records"),
        (#"[1]"#, "SenML record 0 is a number; expected an object"),
        (#"[{"n":"a"}]"#, #"SenML record 0 ("a") has no value; expected one of "v", "vs", "vb", "vd" or a sum "s""#),
        (#"[{"bn":"d:","bt":1700000000}]"#, "SenML record 0 (\"d:\") has no value"),
        (#"[{"n":"a","v":1,"vs":"x"}]"#, "SenML record 0 has 2 value fields; expected at most one"),
        (#"[{"n":"a","v":"1"}]"#, #"SenML record 0: "v" is a string; expected a number"#),
        (#"[{"n":1,"v":1}]"#, #"SenML record 0: "n" is a number; expected a string"#),
        (#"[{"n":"a","vb":1}]"#, #""vb" is a number; expected a boolean"#),
        (#"[{"n":"a","v":1,"t":"now"}]"#, #""t" is a string; expected a number"#),
        (#"[{"bn":null,"n":"a","v":1}]"#, #""bn" is null; expected a string"#),
        (#"[{"n":"a","v":1},{"n":"b","v":1,"bver":11}]"#, #"SenML record 1: "bver" is 11; expected at most 10"#),
        (#"[{"n":"a","v":1,"bver":0}]"#, #""bver" is 0.0; expected a positive integer"#),
        // Found by libFuzzer: a whole bver of 2^63 or more trapped converting to Int for this message.
        (#"[{"bver":1e19}]"#, #""bver" is 1e+19; expected at most 10"#),
        (#"[{"bver":9223372036854775808}]"#, #""bver" is 9.223372036854776e+18; expected at most 10"#),
        (#"[{"bver":1e308}]"#, #"expected at most 10"#),
        (#"[{"bver":-1e19}]"#, #"expected a positive integer"#),
        (#"[{"n":"a","v":1,"bver":2.5}]"#, #""bver" is 2.5; expected a positive integer"#),
        (#"[{"n":"a","v":1,"foo_":2}]"#, #"must-understand field "foo_""#),
        (#"[{"v":1}]"#, #"SenML record 0 has no name; expected "n" or a base name "bn""#),
        (#"[{"n":"a b","v":1}]"#, #"SenML record 0 has name "a b"; expected letters, digits"#),
        (#"[{"n":"-a","v":1}]"#, #"has name "-a""#),
        (#"[{"n":"a","v":1,"t":1e300}]"#, "expected seconds since 1970"),
        (#"[{"n":"a","v":1"#, "invalid JSON at byte 15"),
    ])
    func errors(text: String, expected: String) {
        do {
            let records = try SenMLParser().parse(Self.message(text))
            Issue.record("\(text) parsed to \(records), expected an error containing \(expected)")
        } catch {
            #expect(error.code == .malformedPayload)
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func relativeTimeNeedsReceivedAt() {
        #expect {
            try SenMLParser().parse(Self.message(#"[{"n":"a","v":1,"t":-1}]"#, receivedAt: nil))
        } throws: { error in
            (error as? IoTError)?.message.contains("the transport must set receivedAt") == true
        }
        // Absolute times and records without time do not need it.
        #expect(throws: Never.self) {
            try SenMLParser().parse(Self.message(#"[{"n":"a","v":1,"t":1700000000},{"n":"b","v":2}]"#, receivedAt: nil))
        }
    }

    @Test func deviceIsRequiredWhenThePackDoesNotNameOne() {
        for text in [#"[{"n":"a","v":1}]"#, #"[{"bn":"dev","v":1}]"#] {
            #expect {
                try SenMLParser().parse(Self.message(text, device: nil))
            } throws: { error in
                (error as? IoTError)?.message.hasPrefix("no device: ") == true
            }
        }
    }

    /// Issue 20, item 1, through the ingestor: §5.1.3 and its resolved form §5.1.4 are stored as the same 13
    /// points (none overwritten), and the signals registered on first use carry the units.
    @Test func multipleMeasurementsAndTheirResolvedFormAreStoredAlike() async throws {
        var stored: [[String]] = []
        for pack in [Self.multipleMeasurements, Self.resolvedData] {
            let h = try await IngestHarness(policy: IngestPolicy(unknownSignals: .register))
            try await h.registry.saveDevice(h.scope, Device(uid: Self.sensor, product: IngestHarness.product.id))
            try await h.send(pack, parser: SenMLParser(), device: Self.sensor)
            var lines: [String] = []
            for (signal, count) in [("%RH", 4), ("lon", 4), ("lat", 4), ("%EL", 1)] {
                let points = try await h.waitForPoints(Self.sensor, signal, count: count)
                lines += points.map { "\(signal) \($0.time) \($0.value)" }
            }
            stored.append(lines)
            let device = try #require(try await h.registry.device(h.scope, uid: Self.sensor))
            let product = try await h.registry.product(h.scope, id: device.product)
            let units = device.effectiveSignals(product: product).mapValues(\.unit)
            #expect(units["%RH"] == "%RH" && units["lon"] == "lon" && units["%EL"] == "%EL", "\(units)")
            await h.stop()
        }
        #expect(stored[0].count == 13, "\(stored[0])")
        #expect(stored[0] == stored[1])
    }
}
