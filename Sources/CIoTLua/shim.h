#ifndef CIOT_LUA_SHIM_H
#define CIOT_LUA_SHIM_H
// Only what Swift cannot import from the Lua 5.4 headers: function-like and expression macros, and the
// one hook that must raise a Lua error (lua_error longjmps, which must never cross a Swift frame).
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <time.h>

static inline int ciot_lua_registryindex(void) { return LUA_REGISTRYINDEX; }
static inline void ciot_lua_pop(lua_State *L, int n) { lua_pop(L, n); }
static inline int ciot_lua_pcall(lua_State *L, int nargs, int nresults, int msgh) {
    return lua_pcall(L, nargs, nresults, msgh);
}
static inline void ciot_lua_newtable(lua_State *L) { lua_newtable(L); }
static inline int ciot_lua_maskcount(void) { return LUA_MASKCOUNT; }

/// Per-state limits shared by the Swift allocator and the count hook below. Reached from both
/// through the allocator's user data (`lua_getallocf`).
typedef struct ciot_lua_limits {
    size_t used;            // bytes currently allocated by the state
    size_t max_bytes;       // cap on `used` while `enforce` is set
    int enforce;            // 0 while Swift converts values outside lua_pcall (no error may be raised there)
    int timed_out;          // set by the hook when it stopped a call
    long long ticks;        // hook invocations in the current call
    long long max_ticks;    // instruction budget / hook interval
    long long deadline_ns;  // CLOCK_MONOTONIC deadline of the current call
} ciot_lua_limits;

/// The allocator of every sandboxed state (`ud` is its `ciot_lua_limits`): counts bytes and refuses to
/// grow beyond `max_bytes` while `enforce` is set. Lua turns a refusal into a catchable "not enough
/// memory" error; shrinking never fails. In C because Lua calls it for every allocation.
static inline void *ciot_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    ciot_lua_limits *limits = (ciot_lua_limits *)ud;
    size_t old = ptr == NULL ? 0 : osize;
    if (nsize == 0) {
        free(ptr);
        limits->used -= old;
        return NULL;
    }
    if (limits->enforce && nsize > old && limits->used - old + nsize > limits->max_bytes) return NULL;
    void *p = realloc(ptr, nsize);
    if (p == NULL) return NULL;
    limits->used = limits->used - old + nsize;
    return p;
}

static inline long long ciot_lua_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/// The coarse monotonic clock (a few ms of resolution, a fraction of the cost), for the hook: it runs
/// behind the precise clock, so a deadline set with ``ciot_lua_now_ns`` is never enforced early, and at
/// most one tick late.
static inline long long ciot_lua_coarse_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/// The LUA_MASKCOUNT hook: stops the running call when its instruction budget or deadline is spent.
/// Raising the error here, in C, keeps the longjmp out of Swift frames.
static inline void ciot_lua_budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    void *ud = NULL;
    lua_getallocf(L, &ud);
    ciot_lua_limits *limits = (ciot_lua_limits *)ud;
    if (limits == NULL) return;
    limits->ticks += 1;
    if (limits->ticks > limits->max_ticks || ciot_lua_coarse_now_ns() > limits->deadline_ns) {
        limits->timed_out = 1;
        // From now on fire on every instruction, so a script that catches this error with pcall is
        // stopped again at its very next instruction, all the way up to the host's lua_pcall.
        lua_sethook(L, ciot_lua_budget_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "script exceeded its time budget");
    }
}
#endif
