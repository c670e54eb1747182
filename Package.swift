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
        .library(name: "IoTScripting", targets: ["IoTScripting"]),
        .executable(name: "iot-js-worker", targets: ["iot-js-worker"]),
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
        .systemLibrary(name: "CIoTLua", pkgConfig: "lua5.4", providers: [.apt(["liblua5.4-dev"])]),
        .systemLibrary(name: "CIoTDuktape", pkgConfig: "duktape", providers: [.apt(["duktape-dev"])]),

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
            name: "IoTTesting",
            dependencies: [
                "IoTCore",
                .product(name: "Logging", package: "swift-log"),
            ],
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
                "IoTCore", "IoTStorage", "IoTScripting", "iot-js-worker", "CIoTSQLite",
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
            name: "IoTStorageTests",
            dependencies: [
                "IoTCore", "IoTStorage", "IoTTesting", "CIoTSQLite",
                .product(name: "Logging", package: "swift-log"),
            ],
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
    ]
)
