// swift-tools-version:6.0
// A rule and its unit tests, with no C library: copy this package to start testing your own rules.
import PackageDescription

let package = Package(
    name: "RuleUnitTest",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "iot-platform", path: "../..")
    ],
    targets: [
        .target(
            name: "PumpRules",
            dependencies: [
                .product(name: "IoTCore", package: "iot-platform"),
                .product(name: "IoTRules", package: "iot-platform"),
            ]
        ),
        .testTarget(
            name: "PumpRulesTests",
            dependencies: [
                "PumpRules",
                .product(name: "IoTCore", package: "iot-platform"),
                .product(name: "IoTRules", package: "iot-platform"),
                .product(name: "IoTTesting", package: "iot-platform"),
            ]
        ),
    ]
)
