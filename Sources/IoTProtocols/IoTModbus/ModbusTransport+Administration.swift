public import IoTCore

/// The management API administers the polled devices through ``IoTCore/ModbusAdministration``.
extension ModbusTransport: ModbusAdministration {}
