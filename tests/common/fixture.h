/* The Hugging Face reference fixtures in $FR_TEST_DATA/fixtures/refs: NAME.json (prompt ids,
 * greedy continuation, shapes), NAME.logits.f32 [T, V] and NAME.hidden.f32 [n_layers+1, T, C]. */
#ifndef FR_TESTS_FIXTURE_H
#define FR_TESTS_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "ferrum.h"

#define FR_FIXTURE_MAX_IDS 256

typedef struct fr_test_fixture {
    char name[64];
    int T, V, C, n_layers;
    int32_t prompt[FR_FIXTURE_MAX_IDS];
    int n_greedy;
    int32_t greedy[FR_FIXTURE_MAX_IDS];
    float *logits; /* [T, V] */
    float *hidden; /* [n_layers+1, T, C]; NULL unless asked for */
} fr_test_fixture;

/* Reads the reference (hidden states too when want_hidden); every size is checked against the
 * shapes in the JSON with CHECK. Returns 0 when everything asked for is there. */
int fr_test_fixture_load(const char *name, bool want_hidden, fr_test_fixture *f);
void fr_test_fixture_free(fr_test_fixture *f);

/* Loads the fixture model NAME (tests/data/fixtures/models/NAME) with mp (NULL: defaults);
 * a failure is a CHECK failure naming the model and backend, and returns NULL. */
fr_model *fr_test_fixture_model(const char *name, const fr_model_params *mp);

/* Largest per-row relative L2 error of rows x n values against ref (NaN sticks). */
double fr_test_max_row_err(const float *x, const float *ref, int rows, int n);

#endif
