#ifndef FR_CORE_LOG_H
#define FR_CORE_LOG_H

#include "ferrum.h"

void fr_log(fr_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define FR_LOG_E(...) fr_log(FR_LOG_ERROR, __VA_ARGS__)
#define FR_LOG_W(...) fr_log(FR_LOG_WARN, __VA_ARGS__)
#define FR_LOG_I(...) fr_log(FR_LOG_INFO, __VA_ARGS__)
#define FR_LOG_D(...) fr_log(FR_LOG_DEBUG, __VA_ARGS__)

#endif
