#ifndef CIOT_LINUX_SHIM_H
#define CIOT_LINUX_SHIM_H
// The Linux headers Swift's Glibc module leaves out, for the transports' own I/O threads (epoll, eventfd).
// One module owns them, so every Swift file that waits on epoll imports the same declarations. No logic.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif
