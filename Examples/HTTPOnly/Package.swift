// swift-tools-version:6.0
// HTTP ingest on the embedded SQLite default and nothing else: this package depends on IoTHTTP and IoTStorage
// only, so it builds and links without libmosquitto, libcoap, libmodbus or libcurl (scripts/test.sh checks its
// binary with ldd). Copy it to start a service that takes device data over HTTP.
import PackageDescription

let package = Package(
    name: "HTTPOnly",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "iot-platform", path: "../.."),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
    ],
    targets: [
        .executableTarget(
            name: "HTTPOnly",
            dependencies: [
                .product(name: "IoTCore", package: "iot-platform"),
                .product(name: "IoTHTTP", package: "iot-platform"),
                .product(name: "IoTStorage", package: "iot-platform"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        )
    ]
)
