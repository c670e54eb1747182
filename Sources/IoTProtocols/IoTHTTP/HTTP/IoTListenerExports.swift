// The listener hardening (TLS, limits, connection caps, percent-decoding) lives in IoTListener, which the
// management API shares; IoTHTTP re-exports it so that `ListenerTLS` and `ListenerLimits` come with it.
@_exported public import IoTListener
