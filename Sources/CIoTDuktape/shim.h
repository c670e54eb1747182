#ifndef CIOT_DUKTAPE_SHIM_H
#define CIOT_DUKTAPE_SHIM_H
// Only what Swift cannot import from <duktape.h>: function-like macros. No logic.
#include <duktape.h>

/// Compiles `buf` in protected mode; the file name must be on the stack top. 0 on success.
static inline duk_int_t ciot_duk_pcompile_lstring_filename(duk_context *ctx, duk_uint_t flags, const char *buf, duk_size_t len) {
    return duk_pcompile_lstring_filename(ctx, flags, buf, len);
}
/// Evaluates a string in protected mode, leaving the result (or the error) on the stack. 0 on success.
static inline duk_int_t ciot_duk_peval_string(duk_context *ctx, const char *src) { return duk_peval_string(ctx, src); }
static inline duk_idx_t ciot_duk_push_thread_new_globalenv(duk_context *ctx) { return duk_push_thread_new_globalenv(ctx); }
static inline const char *ciot_duk_safe_to_lstring(duk_context *ctx, duk_idx_t idx, duk_size_t *len) {
    return duk_safe_to_lstring(ctx, idx, len);
}
static inline duk_bool_t ciot_duk_is_callable(duk_context *ctx, duk_idx_t idx) { return duk_is_callable(ctx, idx); }
#endif
