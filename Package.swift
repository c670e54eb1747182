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
        .library(name: "IoTTesting", targets: ["IoTTesting"]),
        .library(name: "IoTRules", targets: ["IoTRules"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
    ],
    targets: [
        // MARK: C shims (no logic)
        .systemLibrary(
            name: "CIoTSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),

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
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
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
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tools
        .executableTarget(
            name: "iot-bench",
            dependencies: [
                "IoTCore", "IoTStorage", "IoTRules", "IoTTesting", "CIoTSQLite",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/iot-bench",
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
            dependencies: ["IoTCore", "IoTTesting", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTRulesTests",
            dependencies: ["IoTCore", "IoTRules", "IoTTesting", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTStorageTests",
            dependencies: [
                "IoTCore", "IoTStorage", "IoTTesting", "CIoTSQLite",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
