/* Logging to stderr. The level is the one piece of process-wide state in the library: it is a
 * user preference, not model state, and is read once from FR_LOG. */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int log_level = -1;

static int level_from_env(void) {
    const char *s = getenv("FR_LOG");
    if (!s) return FR_LOG_WARN;
    if (!strcmp(s, "error")) return FR_LOG_ERROR;
    if (!strcmp(s, "info")) return FR_LOG_INFO;
    if (!strcmp(s, "debug")) return FR_LOG_DEBUG;
    return FR_LOG_WARN;
}

void fr_log_set_level(fr_log_level level) { atomic_store(&log_level, (int)level); }

fr_log_level fr_log_get_level(void) {
    int l = atomic_load(&log_level);
    if (l < 0) {
        l = level_from_env();
        atomic_store(&log_level, l);
    }
    return (fr_log_level)l;
}

void fr_log(fr_log_level level, const char *fmt, ...) {
    if (level > fr_log_get_level()) return;
    static const char *tags[] = {"error", "warn", "info", "debug"};
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ferrum %s: %s\n", tags[level], line);
}
