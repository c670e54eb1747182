#ifndef CIOT_LINUX_SHIM_H
#define CIOT_LINUX_SHIM_H
// The Linux headers Swift's Glibc module leaves out, for the transports' own I/O threads (epoll, eventfd,
// thread names) and iotd's allocator settings (malloc.h). One module owns them, so every Swift file that waits on epoll imports the same
// declarations. No logic beyond calling what Swift cannot call (variadic functions, CPU instructions).
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

/// Names the calling thread (`ps -L`, `perf`, `top -H`; at most 15 bytes are kept). `prctl` is variadic,
/// which Swift cannot call.
static inline void ciot_name_this_thread(const char *name) { (void)prctl(PR_SET_NAME, name, 0, 0, 0); }

/// 1 when `ciot_crc32c_update` runs on the CPU's CRC-32C instruction (x86-64 with SSE 4.2), else 0 (and it
/// must not be called).
static inline int ciot_crc32c_available(void) {
#if defined(__x86_64__)
    unsigned int a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2) != 0;
#else
    return 0;
#endif
}

/// Feeds `count` bytes into a CRC-32C register (reflected, polynomial 0x1EDC6F41) with the CPU's instruction:
/// no initial or final inversion here. Call only when `ciot_crc32c_available()` is 1.
#if defined(__x86_64__)
__attribute__((target("sse4.2")))
#endif
static inline uint32_t ciot_crc32c_update(uint32_t crc, const void *bytes, size_t count) {
#if defined(__x86_64__)
    const unsigned char *p = (const unsigned char *)bytes;
    uint64_t wide = crc;
    for (; count >= 8; count -= 8, p += 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        wide = __builtin_ia32_crc32di(wide, word);
    }
    uint32_t c = (uint32_t)wide;
    for (; count > 0; count--, p++) c = __builtin_ia32_crc32qi(c, *p);
    return c;
#else
    (void)bytes;
    (void)count;
    return crc;
#endif
}
#endif
