#ifndef CIOT_MOSQUITTO_SHIM_H
#define CIOT_MOSQUITTO_SHIM_H
// Only what Swift cannot import from <mosquitto.h> and <mqtt_protocol.h>. No logic. (epoll and eventfd: CIoTLinux.)
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <errno.h>
#include <sys/ioctl.h>

// errno is a macro around a thread-local location: reading and clearing it from Swift needs these.
static inline int ciot_mosquitto_errno(void) { return errno; }
static inline void ciot_mosquitto_clear_errno(void) { errno = 0; }
// Bytes waiting in a socket's receive queue (ioctl FIONREAD, variadic in C), or -1 on error.
static inline int ciot_socket_pending_bytes(int fd) {
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}
#endif
