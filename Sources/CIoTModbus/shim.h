#ifndef CIOT_MODBUS_SHIM_H
#define CIOT_MODBUS_SHIM_H
// Only what Swift cannot import from <modbus.h>. No logic.
// pkg-config libmodbus adds include/modbus to the include path, hence <modbus.h>.
#include <modbus.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/// `errno` after a failed libmodbus call (libmodbus reports its own codes, MODBUS_ENOBASE + n, there).
static inline int ciot_modbus_errno(void) { return errno; }

/// `dup3(oldfd, newfd, flags)`: Glibc declares it only with _GNU_SOURCE, so Swift cannot see it; this calls
/// the system call through the variadic `syscall`, which Swift cannot call either. Moves a Modbus socket onto
/// a reserved number below FD_SETSIZE with close-on-exec set in the same step.
static inline int ciot_modbus_dup3(int oldfd, int newfd, int flags) { return (int)syscall(SYS_dup3, oldfd, newfd, flags); }

/// `SOCK_STREAM` and `SOCK_NONBLOCK | SOCK_CLOEXEC`: which Swift module owns the socket-type constants depends
/// on which C module included <sys/socket.h> first, and a release build of IoTProtocols cannot name them.
static inline int ciot_modbus_sock_stream(void) { return SOCK_STREAM; }
static inline int ciot_modbus_sock_nonblock_cloexec(void) { return SOCK_NONBLOCK | SOCK_CLOEXEC; }
#endif
