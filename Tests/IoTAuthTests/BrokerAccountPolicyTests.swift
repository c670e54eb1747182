import Foundation
import IoTCore
import IoTProtocols
import Testing

@Suite("Broker account policy")
struct BrokerAccountPolicyTests {
    let meter = DeviceIdentity(tenant: "acme", deviceUID: "meter-1")

    @Test func defaultPolicyNamesDevicesByUID() throws {
        let policy = BrokerAccountPolicy()
        try policy.validate()
        #expect(policy.username(for: meter) == "meter-1")
        #expect(policy.device(forUsername: "meter-1")?.uid == "meter-1")
        #expect(policy.device(forUsername: "meter-1")?.tenant == nil)
        #expect(policy.device(forUsername: "a+b") == nil)
        #expect(policy.device(forUsername: "a/b") == nil)
        #expect(
            policy.rules(for: meter) == [
                .init(action: .publish, filter: "devices/meter-1/telemetry"),
                .init(action: .subscribe, filter: "devices/meter-1/downlink/#"),
            ])
    }

    @Test func tenantTemplateParsesBothParts() throws {
        let policy = BrokerAccountPolicy(usernameTemplate: "{tenant}/{uid}", tenants: ["acme", "globex"])
        try policy.validate()
        #expect(policy.username(for: meter) == "acme/meter-1")
        let named = try #require(policy.device(forUsername: "acme/meter-1"))
        #expect(named.tenant == "acme" && named.uid == "meter-1")
        #expect(policy.device(forUsername: "acme/") == nil)
        #expect(policy.device(forUsername: "acme/x/y") == nil)
        #expect(policy.device(forUsername: "meter-1") == nil)
    }

    @Test(arguments: [
        ("devices/meter-1/telemetry", true),
        ("devices/meter-2/telemetry", false),
        ("devices/meter-1/telemetry/extra", false),
        ("devices/meter-1/+", false),
        ("devices/+/telemetry", false),
        ("#", false),
    ])
    func publishIsLimitedToOwnTopics(topic: String, allowed: Bool) {
        #expect(BrokerAccountPolicy().permits(meter, .publish, topic: topic) == allowed)
    }

    @Test(arguments: [
        ("devices/meter-1/downlink", true),
        ("devices/meter-1/downlink/#", true),
        ("devices/meter-1/downlink/+/x", true),
        ("$share/g/devices/meter-1/downlink/#", true),
        ("devices/meter-2/downlink/#", false),
        ("devices/+/downlink/#", false),
        ("devices/#", false),
        ("#", false),
        ("devices/meter-1/downlink/#/x", false),
    ])
    func subscriptionsMustStayInsideAllowedFilters(filter: String, allowed: Bool) {
        #expect(BrokerAccountPolicy().permits(meter, .subscribe, topic: filter) == allowed)
    }

    @Test func unservedTenantsAndUnsafeUIDsGetNothing() {
        let policy = BrokerAccountPolicy(tenants: ["globex"])
        #expect(!policy.permits(meter, .publish, topic: "devices/meter-1/telemetry"))
        let wild = DeviceIdentity(tenant: "acme", deviceUID: "m+1")
        #expect(!BrokerAccountPolicy().permits(wild, .publish, topic: "devices/m+1/telemetry"))
        #expect(throws: IoTError.self) { try BrokerAccountPolicy().validate(wild) }
    }

    @Test func invalidTemplatesAreRefusedWithAReason() {
        let cases: [BrokerAccountPolicy] = [
            BrokerAccountPolicy(usernameTemplate: "device"),
            BrokerAccountPolicy(usernameTemplate: "{id}"),
            BrokerAccountPolicy(usernameTemplate: "{tenant}{uid}"),
            BrokerAccountPolicy(publishTopics: ["devices/{uid}/#/x"]),
            BrokerAccountPolicy(publishTopics: ["devices/x{uid}+/t"]),
            BrokerAccountPolicy(tenants: ["a", "b"]),
            BrokerAccountPolicy(publishTopics: [], subscribeTopics: []),
        ]
        for policy in cases {
            #expect(throws: IoTError.self) { try policy.validate() }
        }
    }

    @Test func dynamicSecurityRequestIsTheBrokersJSON() throws {
        let request = DynamicSecurityRequest(
            commands: [
                .deleteClient(username: "meter-1"),
                .createRole(name: "r", acls: [.init(type: .publishClientSend, topic: "devices/meter-1/telemetry")]),
                .createClient(
                    username: "meter-1", password: "pw", clientID: nil, textName: "acme/meter-1", roles: ["r"]),
            ], correlation: "c1")
        let json = try JSONSerialization.jsonObject(with: Data(try request.encoded())) as? [String: Any]
        let commands = try #require(json?["commands"] as? [[String: Any]])
        #expect(commands.count == 3)
        #expect(commands[0]["command"] as? String == "deleteClient")
        #expect(commands[0]["correlationData"] as? String == "c1/0")
        #expect(commands[1]["rolename"] as? String == "r")
        let acl = try #require((commands[1]["acls"] as? [[String: Any]])?.first)
        #expect(acl["acltype"] as? String == "publishClientSend")
        #expect(acl["allow"] as? Bool == true)
        #expect(commands[2]["password"] as? String == "pw")
        #expect(commands[2]["clientid"] == nil)
        #expect((commands[2]["roles"] as? [[String: Any]])?.first?["rolename"] as? String == "r")

        let answer = Array(
            #"{"responses":[{"command":"deleteClient","error":"Client not found","correlationData":"c1/0"},{"command":"createRole","correlationData":"c1/1"}]}"#
                .utf8)
        let response = try DynamicSecurityResponse(payload: answer)
        #expect(response.answers("c1") && !response.answers("c2"))
        #expect(response.entries[0].error == "Client not found" && response.entries[1].error == nil)
        #expect(throws: IoTError.self) { try DynamicSecurityResponse(payload: Array("nope".utf8)) }
    }
}
