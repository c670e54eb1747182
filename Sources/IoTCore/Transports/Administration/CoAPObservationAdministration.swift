/// Run-time administration of the resources observed on CoAP devices (RFC 7641), as the management API
/// (`/api/v1/coap/observations`) needs it: create, list, read and remove observations.
///
/// IoTCoAP's `CoAPObserverManager` is the implementation; the API depends on this protocol only, so that it
/// links no CoAP library.
///
/// ## Implementing CoAP observation administration
/// - Observation ids are unique in the instance; a spec carries its tenant.
/// - Throw ``IoTError``s: `invalidArgument` (answered 400), `forbidden` (403), `notFound` (404),
///   `conflict` (409), each with a message that says what to do.
public protocol CoAPObservationAdministration: Sendable {
    /// Every observation, sorted by id.
    func list() -> [CoAPObservationReport]
    /// The observations this process runs itself, for its `/metrics` (in a cluster, ``list()`` lists the others'
    /// as well). The default is ``list()``.
    func observedHere() -> [CoAPObservationReport]
    /// One observation, or `nil`.
    func report(id: String) -> CoAPObservationReport?
    /// Checks that the observation's device address may be reached (the outbound policy); the API calls it
    /// before ``create(_:)``.
    ///
    /// - Throws: `forbidden` for an address the policy does not allow, `invalidArgument` for an invalid uri.
    func checkDestination(_ spec: CoAPObservationSpec) throws(IoTError)
    /// Starts observing; returns the new observation's report.
    ///
    /// - Throws: `invalidArgument` for an invalid spec, `conflict` when the id exists or a limit is reached.
    @discardableResult
    func create(_ spec: CoAPObservationSpec) throws(IoTError) -> CoAPObservationReport
    /// Stops observing and forgets the observation.
    ///
    /// - Throws: `notFound` when there is no such observation.
    func remove(id: String) throws(IoTError)
}

extension CoAPObservationAdministration {
    /// Every observation: a process alone runs them all.
    public func observedHere() -> [CoAPObservationReport] { list() }
}

/// One CoAP observation as its manager reports it.
public struct CoAPObservationReport: Sendable, Codable, Hashable {
    /// The observation's spec.
    public var spec: CoAPObservationSpec
    /// `registering` (request sent, no answer yet), `observing` (notifications arrive) or `failed` (the
    /// device answered with an error; retried after the manager's re-registration delay).
    public var state: String
    /// Observe requests sent (1 + re-registrations).
    public var registrations: Int
    /// Notifications received (the first response included).
    public var notifications: Int
    /// Notifications journaled.
    public var stored: Int
    /// Notifications refused by the ingestor (malformed, unknown signal, …) or answered with an error.
    public var rejected: Int
    /// The last error, if any.
    public var lastError: String?
    /// In a cluster, the instance that observes it; `nil` for this process alone.
    public var instance: String?

    /// Creates a report.
    public init(
        spec: CoAPObservationSpec, state: String, registrations: Int, notifications: Int, stored: Int, rejected: Int,
        lastError: String?
    ) {
        self.spec = spec
        self.state = state
        self.registrations = registrations
        self.notifications = notifications
        self.stored = stored
        self.rejected = rejected
        self.lastError = lastError
    }
}
