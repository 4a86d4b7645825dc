#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *fr_status_name(fr_status code) {
    switch (code) {
    case FR_OK:
        return "ok";
    case FR_ERR_INVALID:
        return "invalid argument";
    case FR_ERR_IO:
        return "i/o error";
    case FR_ERR_FORMAT:
        return "malformed input";
    case FR_ERR_NOMEM:
        return "out of memory";
    case FR_ERR_UNSUPPORTED:
        return "unsupported";
    case FR_ERR_RANGE:
        return "out of range";
    case FR_ERR_BACKEND:
        return "backend failure";
    case FR_ERR_NOT_FOUND:
        return "not found";
    }
    return "unknown status";
}

fr_status fr_error_set(fr_error *err, fr_status code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

fr_status fr_error_prefix(fr_error *err, fr_status code, const char *fmt, ...) {
    if (!err) return code;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    int room = (int)sizeof err->msg; /* bounds both pieces so truncation is explicit */
    snprintf(err->msg, sizeof err->msg, "%.*s: %.*s", room / 2, prefix, room - room / 2 - 3, old);
    err->code = code;
    return code;
}

void fr_error_clear(fr_error *err) {
    if (err) {
        err->code = FR_OK;
        err->msg[0] = '\0';
    }
}
