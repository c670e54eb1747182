#ifndef CIOT_COAP_SHIM_H
#define CIOT_COAP_SHIM_H
// Only what Swift cannot import from <coap3/coap.h>. No logic.
// Debian ships no plain libcoap-3.pc: pkg-config libcoap-3-openssl (DTLS through OpenSSL).
#include <coap3/coap.h>

/// `COAP_RESPONSE_CODE(n)` (a function-like macro): 204 -> 2.04.
static inline coap_pdu_code_t ciot_coap_response_code(int n) { return (coap_pdu_code_t)COAP_RESPONSE_CODE(n); }
#endif
