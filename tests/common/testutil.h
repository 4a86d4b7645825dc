/* Shared helpers for the test programs: checks that count failures, fixture paths, a seeded
 * random generator, error metrics. */
#ifndef FR_TESTS_TESTUTIL_H
#define FR_TESTS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/dtype.h"

extern int fr_test_failures;
extern int fr_test_checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        fr_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            fr_test_failures++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Prints a summary and returns the process exit code (0 only if checks ran and none failed). */
int fr_test_finish(const char *name);

/* $FR_TEST_DATA (set by CTest: the committed tests/data) joined with `rel`; without it
 * ../tests/data, which is right for a build folder inside the checkout. */
const char *fr_test_data_path(const char *rel, char *buf, size_t n);
/* $FR_TEST_TOKENIZERS (set by CTest: the build tree's unpacked copies of the real tokenizers,
 * made by the fr_test_data target) joined with `rel`, e.g. "qwen3" or "llama3/tokenizer.json";
 * without it test-data/tokenizers, relative to the build folder CTest runs in. */
const char *fr_test_tokenizer_path(const char *rel, char *buf, size_t n);
/* $FR_SOURCE_DIR joined with rel. */
const char *fr_test_source_path(const char *rel, char *buf, size_t n);

/* Reads a whole file; NULL on failure. *len gets the size. Caller frees. */
void *fr_test_read_file(const char *path, size_t *len);

/* splitmix64-based generator: deterministic across platforms. */
typedef struct {
    uint64_t s;
} fr_test_rng;
uint64_t fr_test_rng_u64(fr_test_rng *r);
double fr_test_rng_uniform(fr_test_rng *r); /* [0,1) */
float fr_test_rng_sym(fr_test_rng *r);      /* (-1,1), never exactly 0 */

/* Normalised mean squared error sum((a-b)^2) / sum(b^2), b being the reference. */
double fr_test_nmse(const float *a, const double *ref, size_t n);
/* Relative L2 error ||a-b|| / ||b||. */
double fr_test_rel_l2(const float *a, const float *ref, size_t n);

/* One f32, f16 or bf16 element at p (any alignment), converted from / to float. */
void fr_test_store(fr_dtype t, unsigned char *p, float v);
float fr_test_load(fr_dtype t, const unsigned char *p);
/* The same for tensors that may also be i32 (ids, positions), with values as doubles. */
void fr_test_put(fr_dtype t, void *p, double v);
double fr_test_get(fr_dtype t, const void *p);

#endif
