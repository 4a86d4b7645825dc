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

/* ---------------------------------------------------------------- sampling
 * (section owned by src/engine/sampler)
 * Order, as Hugging Face's generate applies them: repetition/presence/frequency penalties over the
 * last `penalty_last_n` accepted tokens, then temperature, top-k, top-p, min-p, then a draw from a
 * per-sampler seeded generator. temperature <= 0 means greedy (argmax, first index on ties). */

typedef struct fr_sampler fr_sampler;

typedef struct fr_sampler_params {
    float temperature;       /* <= 0: greedy */
    int top_k;               /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off (CTRL: positive logits divided, negative multiplied) */
    float presence_penalty;  /* 0: off (subtracted once from every token seen) */
    float frequency_penalty; /* 0: off (subtracted per occurrence) */
    int penalty_last_n;      /* window of accepted tokens the penalties look at; -1 = all */
    uint64_t seed;
} fr_sampler_params;

fr_sampler_params fr_sampler_default_params(void);
fr_status fr_sampler_create(const fr_sampler_params *params, int vocab_size, fr_sampler **out,
                            fr_error *err);
void fr_sampler_free(fr_sampler *s);
/* Forgets the token history and reseeds the generator with params.seed. */
void fr_sampler_reset(fr_sampler *s);
/* Records a token (prompt or generated) for the penalties. */
void fr_sampler_accept(fr_sampler *s, int32_t token);
/* Picks the next token from one row of logits (vocab_size floats, not modified). */
int32_t fr_sampler_sample(fr_sampler *s, const float *logits);
/* The distribution the next draw would use (penalties and all filters applied), vocab_size floats
 * summing to 1; for tests and for `logprobs`. Greedy gives a one-hot row. */
fr_status fr_sampler_probs(fr_sampler *s, const float *logits, float *probs, fr_error *err);

#ifdef __cplusplus
}
#endif
#endif /* FERRUM_H */
