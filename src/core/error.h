/* Internal helpers for fr_error. */
#ifndef FR_CORE_ERROR_H
#define FR_CORE_ERROR_H

#include "ferrum.h"

/* Fills `err` (if non-NULL) with code and a printf-style message; returns `code` so callers can
 * write `return fr_error_set(err, FR_ERR_FORMAT, "%s: tensor %s: ...", path, name);` */
fr_status fr_error_set(fr_error *err, fr_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with more context, e.g. the file name: "model.gguf: <old msg>",
 * and returns `code`, the status of the failure being reported. The status is passed, not read
 * from `err`, because err may be NULL and a failure must stay a failure without an error object:
 * `if (st) return fr_error_prefix(err, st, "%s", path);` */
fr_status fr_error_prefix(fr_error *err, fr_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void fr_error_clear(fr_error *err);

/* Returns the status of `expr` from the enclosing function when it is not FR_OK. */
#define FR_TRY(expr)                                                                               \
    do {                                                                                           \
        fr_status fr_try_status_ = (expr);                                                         \
        if (fr_try_status_ != FR_OK) return fr_try_status_;                                        \
    } while (0)

#endif
