public import IoTCore

/// The management API administers the observations through ``IoTCore/CoAPObservationAdministration``.
extension CoAPObserverManager: CoAPObservationAdministration {}
