/// One resource on a device that the platform observes (RFC 7641) as a CoAP client: every notification is
/// ingested as a message of ``deviceUID``.
///
/// ```swift
/// let spec = CoAPObservationSpec(id: "boiler-temp", uri: "coap://10.0.0.7:5683/sensors/temp",
///                                tenant: "acme", deviceUID: "boiler-1")
/// ```
public struct CoAPObservationSpec: Sendable, Codable, Hashable {
    /// Unique name of the observation.
    public var id: String
    /// `coap://<IPv4 address>[:port]/<path>` of the observed resource (port 5683 when absent).
    public var uri: String
    /// The tenant of the device.
    public var tenant: String
    /// The device whose data the notifications are.
    public var deviceUID: String

    /// Creates a spec.
    public init(id: String, uri: String, tenant: String, deviceUID: String) {
        self.id = id
        self.uri = uri
        self.tenant = tenant
        self.deviceUID = deviceUID
    }

    /// The device identity notifications are ingested as.
    public var identity: DeviceIdentity { DeviceIdentity(tenant: TenantID(tenant), deviceUID: deviceUID) }

    /// Checks the spec as ``CoAPObservationAdministration/create(_:)`` does (IoTCoAP's `CoAPObserverManager`),
    /// without creating anything.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` saying what to fix.
    public func validate() throws(IoTError) {
        _ = try target()
    }

    /// Host, port and path segments of ``uri``.
    ///
    /// - Throws: ``IoTError/Code/invalidArgument`` saying what to fix.
    package func target() throws(IoTError) -> (host: String, port: Int, path: [String]) {
        guard !id.isEmpty, !deviceUID.isEmpty, !tenant.isEmpty else {
            throw IoTError(.invalidArgument, "a CoAP observation needs an id, a tenant and a deviceUID")
        }
        guard uri.hasPrefix("coap://") else {
            throw IoTError(
                .invalidArgument,
                "observation uri \"\(uri)\" must start with coap:// (e.g. coap://10.0.0.7:5683/sensors/temp)")
        }
        let rest = uri.dropFirst("coap://".count)
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count).split(separator: "/").map(String.init)
        let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty else {
            throw IoTError(
                .invalidArgument, "observation uri \"\(uri)\" has no host; use coap://<IPv4 address>:<port>/<path>")
        }
        let port = parts.count == 2 ? Int(parts[1]) : 5683
        guard let port, (1...65_535).contains(port) else {
            throw IoTError(.invalidArgument, "observation uri \"\(uri)\" has an invalid port; use 1–65535")
        }
        guard !path.isEmpty else {
            throw IoTError(.invalidArgument, "observation uri \"\(uri)\" names no resource path")
        }
        return (String(parts[0]), port, path)
    }
}
