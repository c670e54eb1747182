#ifndef CIOT_MODBUS_SHIM_H
#define CIOT_MODBUS_SHIM_H
// Only what Swift cannot import from <modbus.h>. No logic.
// pkg-config libmodbus adds include/modbus to the include path, hence <modbus.h>.
#include <modbus.h>
#include <errno.h>

/// `errno` after a failed libmodbus call (libmodbus reports its own codes, MODBUS_ENOBASE + n, there).
static inline int ciot_modbus_errno(void) { return errno; }
#endif
