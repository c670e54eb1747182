#ifndef CIOT_COAP_SHIM_H
#define CIOT_COAP_SHIM_H
// Only what Swift cannot import from <coap3/coap.h>. No logic.
// Debian 12 has no plain libcoap-3.pc: the OpenSSL flavour (DTLS) is libcoap-3-openssl.
#include <coap3/coap.h>
#endif
