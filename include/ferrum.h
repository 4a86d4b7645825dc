/* ferrum — public API. CLI and server include only this header.
 *
 * Conventions: every fallible call returns an fr_status and, when `err` is non-NULL, fills it with a
 * message that names the file, tensor, field or offset at fault. Nothing in the library exits or
 * aborts on bad input. Objects are independent: a process may hold several models and sessions. */
#ifndef FERRUM_H
#define FERRUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status and errors */

typedef enum fr_status {
    FR_OK = 0,
    FR_ERR_INVALID = 1,     /* bad argument from the caller */
    FR_ERR_IO = 2,          /* open/read/write/mmap failed */
    FR_ERR_FORMAT = 3,      /* a file's contents are malformed or inconsistent */
    FR_ERR_NOMEM = 4,       /* allocation failed */
    FR_ERR_UNSUPPORTED = 5, /* valid request this build or backend cannot serve */
    FR_ERR_RANGE = 6,       /* exceeds a capacity (context length, cache size, ...) */
    FR_ERR_BACKEND = 7,     /* device or driver failure */
    FR_ERR_NOT_FOUND = 8,   /* a named file, tensor or key is absent */
} fr_status;

typedef struct fr_error {
    fr_status code;
    char msg[1024];
} fr_error;

const char *fr_status_name(fr_status code);

/* ---------------------------------------------------------------- logging */

typedef enum fr_log_level {
    FR_LOG_ERROR = 0,
    FR_LOG_WARN = 1,
    FR_LOG_INFO = 2,
    FR_LOG_DEBUG = 3,
} fr_log_level;

/* Process-wide verbosity (initially from the FR_LOG environment variable: error|warn|info|debug). */
void fr_log_set_level(fr_log_level level);
fr_log_level fr_log_get_level(void);

/* ---------------------------------------------------------------- backends */

/* Names accepted wherever a backend is chosen: "cpu", "cuda". */
bool fr_backend_available(const char *name);

/* ---------------------------------------------------------------- model and session
 * (section owned by src/model + src/engine) */

typedef struct fr_model fr_model;
typedef struct fr_session fr_session;

/* ---------------------------------------------------------------- tokenizer
 * (section owned by src/tokenizer) */

typedef struct fr_tokenizer fr_tokenizer;

/* ---------------------------------------------------------------- chat templates
 * (section owned by src/tokenizer/template) */

#ifdef __cplusplus
}
#endif
#endif /* FERRUM_H */
