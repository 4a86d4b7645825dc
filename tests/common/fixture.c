#include "common/fixture.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"

static int read_ids(const cJSON *arr, int32_t *out, int cap) {
    int n = 0;
    for (const cJSON *e = arr ? arr->child : NULL; e && n < cap; e = e->next)
        out[n++] = (int32_t)e->valuedouble;
    return n;
}

static int dim(const cJSON *shape, int i) {
    const cJSON *e = cJSON_GetArrayItem(shape, i);
    return cJSON_IsNumber(e) ? (int)e->valuedouble : -1;
}

/* Reads fixtures/refs/NAME.SUFFIX, which must hold exactly `floats` values. */
static float *read_floats(const char *name, const char *suffix, size_t floats) {
    char rel[256], path[1024];
    size_t n = 0;
    snprintf(rel, sizeof rel, "fixtures/refs/%s.%s", name, suffix);
    float *data = fr_test_read_file(fr_test_data_path(rel, path, sizeof path), &n);
    CHECK(data && n == floats * sizeof(float), "%s: size of %s", name, path);
    if (data && n != floats * sizeof(float)) {
        free(data);
        data = NULL;
    }
    return data;
}

int fr_test_fixture_load(const char *name, bool want_hidden, fr_test_fixture *f) {
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "fixtures/refs/%s.json", name);
    char *text = fr_test_read_file(fr_test_data_path(rel, path, sizeof path), NULL);
    CHECK(text != NULL, "cannot read %s", path);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j) return -1;
    f->T = read_ids(cJSON_GetObjectItem(j, "prompt_ids"), f->prompt, FR_FIXTURE_MAX_IDS);
    f->n_greedy = read_ids(cJSON_GetObjectItem(j, "greedy_ids"), f->greedy, FR_FIXTURE_MAX_IDS);
    const cJSON *ls = cJSON_GetObjectItem(j, "logits_shape");
    const cJSON *hs = cJSON_GetObjectItem(j, "hidden_shape");
    f->V = dim(ls, 1);
    f->n_layers = dim(hs, 0) - 1;
    f->C = dim(hs, 2);
    const bool shapes_ok = dim(ls, 0) == f->T && f->V > 0 && f->T >= 2 && f->n_greedy >= 1 &&
                           f->n_layers >= 1 && f->C > 0 && dim(hs, 1) == f->T;
    cJSON_Delete(j);
    CHECK(shapes_ok, "%s: shapes or ids in %s", name, path);
    if (!shapes_ok) return -1;
    f->logits = read_floats(name, "logits.f32", (size_t)f->T * f->V);
    if (want_hidden)
        f->hidden = read_floats(name, "hidden.f32", (size_t)(f->n_layers + 1) * f->T * f->C);
    return f->logits && (!want_hidden || f->hidden) ? 0 : -1;
}

void fr_test_fixture_free(fr_test_fixture *f) {
    free(f->logits);
    free(f->hidden);
    f->logits = f->hidden = NULL;
}

double fr_test_max_row_err(const float *x, const float *ref, int rows, int n) {
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        double e = fr_test_rel_l2(x + (size_t)r * n, ref + (size_t)r * n, (size_t)n);
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

fr_model *fr_test_fixture_model(const char *name, const fr_model_params *mp) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "fixtures/models/%s", name);
    fr_test_data_path(rel, path, sizeof path);
    fr_error err = {0};
    fr_model *m = NULL;
    fr_status s = fr_model_load(path, mp, &m, &err);
    CHECK(s == FR_OK, "%s: load on %s: %s", name, mp && mp->backend ? mp->backend : "cpu", err.msg);
    return s == FR_OK ? m : NULL;
}
