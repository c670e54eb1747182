import IoTCore

/// Checks an identifier of a product, device, rule, job or other definition: 1–128 printable ASCII
/// characters other than `/ ? # %` and space (``IoTCore/IoTLimits/checkIdentifier(_:_:)``, the rule the
/// ingest path applies to device uids too).
func validateIdentifier(_ value: String, _ what: String) throws {
    do {
        try IoTLimits.checkIdentifier(value, what)
    } catch {
        throw APIError.badRequest(error.message)
    }
}

/// Checks a signal name (``IoTCore/IoTLimits/checkSignalName(_:_:)``, the rule of every path).
func validateSignalName(_ value: String, _ what: String = "signal name") throws {
    do {
        try IoTLimits.checkSignalName(value, what)
    } catch {
        throw APIError.badRequest(error.message)
    }
}
