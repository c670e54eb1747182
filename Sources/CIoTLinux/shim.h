#ifndef CIOT_LINUX_SHIM_H
#define CIOT_LINUX_SHIM_H
// The Linux headers Swift's Glibc module leaves out, for the transports' own I/O threads (epoll, eventfd,
// thread names) and iotd's allocator settings (malloc.h). One module owns them, so every Swift file that waits on epoll imports the same
// declarations. No logic beyond calling what Swift cannot call.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <malloc.h>

/// Names the calling thread (`ps -L`, `perf`, `top -H`; at most 15 bytes are kept). `prctl` is variadic,
/// which Swift cannot call.
static inline void ciot_name_this_thread(const char *name) { (void)prctl(PR_SET_NAME, name, 0, 0, 0); }
#endif
