// The umbrella product: every transport module at once. Depend on one of them instead (`IoTHTTP`, `IoTMQTT`,
// `IoTCoAP`, `IoTModbus`, `IoTNotifiers`, `IoTAuth`) to build and link only its C library.
@_exported public import IoTAuth
@_exported public import IoTCoAP
@_exported public import IoTHTTP
@_exported public import IoTMQTT
@_exported public import IoTModbus
@_exported public import IoTNotifiers
