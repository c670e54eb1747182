// swift-tools-version:6.0
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "iot-platform",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "IoTCore", targets: ["IoTCore"]),
        .library(name: "IoTStorage", targets: ["IoTStorage"]),
        .library(name: "IoTPostgres", targets: ["IoTPostgres"]),
        .library(name: "IoTCluster", targets: ["IoTCluster"]),
        .library(name: "IoTTesting", targets: ["IoTTesting"]),
        .library(name: "IoTProtocols", targets: ["IoTProtocols"]),
        .library(name: "IoTListener", targets: ["IoTListener"]),
        .library(name: "IoTHTTP", targets: ["IoTHTTP"]),
        .library(name: "IoTMQTT", targets: ["IoTMQTT"]),
        .library(name: "IoTCoAP", targets: ["IoTCoAP"]),
        .library(name: "IoTModbus", targets: ["IoTModbus"]),
        .library(name: "IoTNotifiers", targets: ["IoTNotifiers"]),
        .library(name: "IoTAuth", targets: ["IoTAuth"]),
        .library(name: "IoTServer", targets: ["IoTServer"]),
        .library(name: "IoTRules", targets: ["IoTRules"]),
        .library(name: "IoTScripting", targets: ["IoTScripting"]),
        .library(name: "IoTPlatform", targets: ["IoTPlatform"]),
        .executable(name: "iot-js-worker", targets: ["iot-js-worker"]),
        .executable(name: "iotd", targets: ["iotd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.20.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.30.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // MARK: C shims (no logic)
        .systemLibrary(
            name: "CIoTSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(name: "CIoTLua", pkgConfig: "lua5.4", providers: [.apt(["liblua5.4-dev"])]),
        .systemLibrary(name: "CIoTDuktape", pkgConfig: "duktape", providers: [.apt(["duktape-dev"])]),
        .systemLibrary(name: "CIoTModbus", pkgConfig: "libmodbus", providers: [.apt(["libmodbus-dev"])]),
        .systemLibrary(name: "CIoTLinux", path: "Sources/CIoTLinux"),
        .systemLibrary(name: "CIoTMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(name: "CIoTCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CIoTCoAP", pkgConfig: "libcoap-3-openssl", providers: [.apt(["libcoap3-dev"])]),

        // MARK: Libraries
        .target(
            name: "IoTCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "IoTStorage",
            dependencies: [
                "IoTCore",
                "CIoTSQLite",
                "CIoTLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // PostgreSQL stores for several iotd on one database (one schema per tenant); SQLite stays the default.
        .target(
            name: "IoTPostgres",
            dependencies: [
                "IoTCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "IoTCluster",
            dependencies: [
                "IoTCore",
                "IoTMQTT",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "IoTRules",
            dependencies: [
                "IoTCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "IoTTesting",
            dependencies: [
                "IoTCore",
                "IoTRules",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // The hardening every HTTP listener shares (TLS, idle and head deadlines, connection caps,
        // percent-decoding): the device listeners of IoTHTTP and the management API. No C.
        .target(
            name: "IoTListener",
            dependencies: [
                "IoTCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Transports (Sources/IoTProtocols): one target per seam, each with its own C library only

        // Internal (no product): the transports' own threads (detached I/O threads, blocking pools).
        .target(
            name: "IoTIO",
            dependencies: [
                "IoTCore",
                "CIoTLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Sources/IoTProtocols/IoTIO",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "IoTAuth",
            dependencies: [
                "IoTCore",
                "IoTIO",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            path: "Sources/IoTProtocols/IoTAuth",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "IoTHTTP",
            dependencies: [
                "IoTCore",
                "IoTAuth",
                "IoTIO",
                "IoTListener",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Sources/IoTProtocols/IoTHTTP",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "IoTMQTT",
            dependencies: [
                "IoTCore",
                "IoTIO",
                "CIoTMosquitto",
                "CIoTLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/IoTProtocols/IoTMQTT",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "IoTCoAP",
            dependencies: [
                "IoTCore",
                "IoTAuth",
                "IoTIO",
                "CIoTCoAP",
                "CIoTLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/IoTProtocols/IoTCoAP",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "IoTModbus",
            dependencies: [
                "IoTCore",
                "IoTIO",
                "CIoTModbus",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/IoTProtocols/IoTModbus",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "IoTNotifiers",
            dependencies: [
                "IoTCore",
                "IoTIO",
                "CIoTCurl",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/IoTProtocols/IoTNotifiers",
            swiftSettings: swiftSettings
        ),
        // The umbrella: every transport, for those who want them all.
        .target(
            name: "IoTProtocols",
            dependencies: ["IoTAuth", "IoTHTTP", "IoTMQTT", "IoTCoAP", "IoTModbus", "IoTNotifiers"],
            path: "Sources/IoTProtocols/Umbrella",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "IoTServer",
            dependencies: [
                "IoTCore",
                "IoTRules",
                "IoTListener",
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            resources: [.copy("API/openapi.yaml"), .copy("Console")],
            swiftSettings: swiftSettings
        ),

        .target(
            name: "IoTScripting",
            dependencies: [
                "IoTCore",
                "CIoTLua",
                "CIoTDuktape",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/IoTScripting",
            swiftSettings: swiftSettings
        ),

        // MARK: Tools
        .executableTarget(
            name: "iot-js-worker",
            dependencies: ["IoTScripting"],
            path: "Sources/iot-js-worker",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "iot-bench",
            dependencies: [
                "IoTTestSupport",
                "IoTCore", "IoTStorage", "IoTProtocols", "IoTRules", "IoTTesting", "IoTScripting", "IoTServer",
                "IoTPostgres", "IoTCluster", "IoTMQTT",
                "iot-js-worker",
                "CIoTSQLite",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/iot-bench",
            swiftSettings: swiftSettings
        ),
        // Yams' composition with its base-60 integers made harmless (iotd and the configuration fuzz target).
        .target(
            name: "IoTYAML",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        // The whole platform from one configuration, as a Service: what iotd runs, and what an integrator
        // runs with one layer replaced or added (Examples/CustomPlatform).
        .target(
            name: "IoTPlatform",
            dependencies: [
                "IoTCore", "IoTStorage", "IoTPostgres", "IoTCluster", "IoTProtocols", "IoTListener", "IoTServer",
                "IoTRules",
                "IoTScripting",
                "IoTYAML",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "iotd",
            dependencies: [
                "IoTPlatform", "IoTCore", "IoTProtocols", "IoTRules", "IoTServer", "IoTStorage", "CIoTLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "CustomTransportExample",
            dependencies: ["IoTCore", "IoTStorage", .product(name: "Logging", package: "swift-log")],
            path: "Examples/CustomTransport",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "CustomPlatformExample",
            dependencies: [
                "IoTPlatform", "IoTCore", "IoTStorage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Examples/CustomPlatform",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "SerialSensorExample",
            dependencies: ["IoTCore", "IoTStorage", .product(name: "Logging", package: "swift-log")],
            path: "Examples/SerialSensor",
            swiftSettings: swiftSettings
        ),
        // MARK: Fuzzing (scripts/fuzz.sh links libFuzzer entry points against it; FuzzReplayTests replays the corpora)
        .target(
            name: "IoTFuzzTargets",
            dependencies: [
                "IoTCore", "IoTRules", "IoTProtocols", "IoTTesting", "CIoTCoAP", "IoTYAML", "IoTPlatform",
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Fuzz/Targets",
            swiftSettings: swiftSettings
        ),
        // The tests' own kit, not a product: child processes stopped by their PID, a loopback HTTP client,
        // temporary directories.
        .target(
            name: "IoTTestSupport",
            path: "Tests/Support/IoTTestSupport",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "iot-crash-worker",
            dependencies: ["IoTCore", "IoTStorage", .product(name: "Logging", package: "swift-log")],
            path: "Tests/Support/iot-crash-worker",
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        .testTarget(
            name: "IoTCoreTests",
            dependencies: ["IoTTestSupport", "IoTCore", "IoTTesting", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTPlatformTests",
            dependencies: [
                "IoTPlatform", "IoTCore", "IoTProtocols", "IoTServer", "IoTStorage", "IoTTesting", "IoTYAML",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTRulesTests",
            dependencies: ["IoTCore", "IoTRules", "IoTTesting", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTPostgresTests",
            dependencies: [
                "IoTTestSupport",
                "IoTCore", "IoTPostgres", "IoTTesting", "IoTRules",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTStorageTests",
            dependencies: [
                "IoTTestSupport",
                "IoTCore", "IoTStorage", "IoTTesting", "CIoTSQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["IoTTestSupport", "IoTTesting", "IoTCore", "CIoTSQLite", "IoTCluster"],
            exclude: ["Peers"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTServerTests",
            dependencies: [
                "IoTCore", "IoTServer", "IoTProtocols", "IoTTesting", "IoTStorage", "IoTRules",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTMQTTTests",
            dependencies: [
                "IoTTestSupport",
                "IoTCore", "IoTProtocols", "IoTTesting", "IoTStorage", "IoTServer", "CIoTSQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTHTTPTests",
            dependencies: [
                "IoTTestSupport",
                "IoTCore", "IoTProtocols", "IoTHTTP", "IoTServer", "IoTTesting", "IoTStorage", "SerialSensorExample",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["Peers"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTAuthTests",
            dependencies: [
                "IoTTestSupport",
                "IoTCore", "IoTProtocols", "IoTServer", "IoTTesting", "IoTStorage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTNotifiersTests",
            dependencies: [
                "IoTTestSupport",
                "IoTCore", "IoTRules", "IoTStorage", "IoTProtocols", "IoTServer", "IoTTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["Resources"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTScriptingTests",
            dependencies: [
                "IoTCore", "IoTScripting", "IoTTesting", "iot-js-worker",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTModbusTests",
            dependencies: [
                "IoTTestSupport",
                "IoTCore", "IoTProtocols", "IoTTesting", "IoTServer", "CIoTModbus",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FuzzReplayTests",
            dependencies: ["IoTFuzzTargets", "IoTYAML", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTCoAPTests",
            dependencies: [
                "IoTTestSupport",
                "IoTCore", "IoTProtocols", "IoTCoAP", "IoTTesting", "IoTStorage", "IoTServer",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Peers"],
            swiftSettings: swiftSettings
        ),
    ]
)
