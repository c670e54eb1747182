// swift-tools-version:6.0
// A device of your own on a stream: a weighing scale that writes `W,12.5,kg` lines on a serial line or socket,
// as a StreamTransport subclass, unit-tested with IoTTesting's IngestHarness over a socket pair. No C library.
import PackageDescription

let package = Package(
    name: "ScaleDevice",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "iot-platform", path: "../.."),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
    ],
    targets: [
        .target(
            name: "ScaleDevice",
            dependencies: [
                .product(name: "IoTCore", package: "iot-platform"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ScaleDeviceTests",
            dependencies: [
                "ScaleDevice",
                .product(name: "IoTCore", package: "iot-platform"),
                .product(name: "IoTTesting", package: "iot-platform"),
            ]
        ),
    ]
)
