import Foundation
import IoTCore
import IoTPlatform
import IoTProtocols
import IoTRules
import IoTStorage

/// The demo's tenant: three products and devices with freshly issued tokens.
struct DemoFleet: Sendable {
    struct SimulatedDevice: Sendable {
        var uid: String
        var product: String
        var token: String
    }
    var devices: [SimulatedDevice]

    static let tenant: TenantID = "demo"

    static func seed(platform: IoTPlatform, devices count: Int) async throws -> DemoFleet {
        let scope = AccessScope.tenant(tenant)
        try await platform.registry.saveTenant(Tenant(id: tenant, name: "Demo"))
        try await platform.registry.saveProduct(
            scope,
            Product(
                id: "thermometer", name: "Thermometer",
                signals: [Signal(name: "temperature", unit: "°C"), Signal(name: "humidity", unit: "%")]))
        try await platform.registry.saveProduct(
            scope, Product(id: "door", name: "Door contact", signals: [Signal(name: "open", type: .bool)]))
        try await platform.registry.saveProduct(
            scope,
            Product(
                id: "meter", name: "Power meter",
                signals: [Signal(name: "power", unit: "W"), Signal(name: "energy", unit: "kWh")]))
        let products = ["thermometer", "door", "meter"]
        var devices: [SimulatedDevice] = []
        for i in 0..<max(1, count) {
            let product = products[i % products.count]
            let uid = "\(product)-\(String(format: "%02d", i / products.count + 1))"
            try await platform.registry.saveDevice(
                scope, Device(uid: uid, product: ProductID(product), pushIntervalMillis: 1_000, createdAt: 0))
            let id = DeviceIdentity(tenant: tenant, deviceUID: uid)
            _ = try await platform.deviceAuth.revokeTokens(of: id)
            let token = try await platform.deviceAuth.issueToken(
                for: id, label: "demo", now: Int64(Date().timeIntervalSince1970 * 1000))
            devices.append(SimulatedDevice(uid: uid, product: product, token: token))
        }
        // Rules that fire on the simulated data, and a statistics job every 10 seconds.
        try await platform.rules.add(
            .range(
                RangeRule(
                    id: "too-warm", devices: .product("thermometer"), signal: "temperature", max: 24,
                    alarmWhen: .outside,
                    severity: .major, debounce: .count(3), hysteresis: 0.5)),
            tenant: tenant)
        try await platform.rules.add(
            .offline(OfflineRule(id: "silent", devices: .product("meter"), intervalMillis: 5_000, severity: .warning)),
            tenant: tenant)
        try await platform.statistics.add(
            StatisticsJob(
                id: "temperature-10s", cron: try CronExpression("*/10 * * * * *"), leadMillis: 10_000,
                parameters: [.init(name: "mean", device: devices[0].uid, signal: "temperature", reducer: .mean)],
                calculation: .script(
                    language: "lua",
                    source:
                        "function calc(p) if p.mean == nil then return {} end return { mean = p.mean, fahrenheit = p.mean * 9 / 5 + 32 } end",
                    function: "calc")),
            tenant: tenant)
        // Every alarm raised or cleared lands in the inbox of the demo operator (GET …/notifications/inbox/operator).
        try await platform.notifications.savePolicy(
            RoutingPolicy(id: "demo-operator", targets: [RoutingTarget(channel: "inbox", recipients: ["operator"])]),
            tenant: tenant)
        return DemoFleet(devices: devices)
    }
}
