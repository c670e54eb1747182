// swift-tools-version:6.0
// A notification channel of your own: every notification appended as one JSON line to a file (an audit trail,
// a SIEM's input), as a `Notifier`, tested through the real NotificationDispatcher with IoTTesting's in-memory
// outbox. Depends on IoTCore only: no C library.
import PackageDescription

let package = Package(
    name: "AuditNotifier",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "iot-platform", path: "../.."),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
    ],
    targets: [
        .target(
            name: "AuditNotifier",
            dependencies: [.product(name: "IoTCore", package: "iot-platform")]
        ),
        .testTarget(
            name: "AuditNotifierTests",
            dependencies: [
                "AuditNotifier",
                .product(name: "IoTCore", package: "iot-platform"),
                .product(name: "IoTTesting", package: "iot-platform"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ]
)
