#include "common/testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int fr_test_failures = 0;
int fr_test_checks = 0;

int fr_test_finish(const char *name) {
    if (fr_test_checks == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    fprintf(stderr, "%s: %d checks, %d failures\n", name, fr_test_checks, fr_test_failures);
    return fr_test_failures ? 1 : 0;
}

static const char *join(const char *env, const char *fallback, const char *rel, char *buf,
                        size_t n) {
    const char *base = getenv(env);
    snprintf(buf, n, "%s/%s", base ? base : fallback, rel);
    return buf;
}

const char *fr_test_data_path(const char *rel, char *buf, size_t n) {
    return join("FR_TEST_DATA", "../tests/data", rel, buf, n);
}

const char *fr_test_tokenizer_path(const char *rel, char *buf, size_t n) {
    return join("FR_TEST_TOKENIZERS", "test-data/tokenizers", rel, buf, n);
}

const char *fr_test_source_path(const char *rel, char *buf, size_t n) {
    return join("FR_SOURCE_DIR", ".", rel, buf, n);
}

void *fr_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[sz] = 0;
        if (len) *len = (size_t)sz;
    }
    return buf;
}

uint64_t fr_test_rng_u64(fr_test_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double fr_test_rng_uniform(fr_test_rng *r) {
    return (double)(fr_test_rng_u64(r) >> 11) * 0x1p-53;
}

float fr_test_rng_sym(fr_test_rng *r) {
    float v;
    do
        v = (float)(2.0 * fr_test_rng_uniform(r) - 1.0);
    while (v == 0.0f);
    return v;
}

double fr_test_nmse(const float *a, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    if (!(num == num)) return INFINITY; /* NaN anywhere fails */
    return den > 0 ? num / den : num;
}

double fr_test_rel_l2(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    if (!(num == num)) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

void fr_test_store(fr_dtype t, unsigned char *p, float v) {
    if (t == FR_DTYPE_F32) {
        memcpy(p, &v, 4);
    } else {
        uint16_t h = t == FR_DTYPE_F16 ? fr_f32_to_f16(v) : fr_f32_to_bf16(v);
        memcpy(p, &h, 2);
    }
}

float fr_test_load(fr_dtype t, const unsigned char *p) {
    if (t == FR_DTYPE_F32) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    uint16_t h;
    memcpy(&h, p, 2);
    return t == FR_DTYPE_F16 ? fr_f16_to_f32(h) : fr_bf16_to_f32(h);
}

void fr_test_put(fr_dtype t, void *p, double v) {
    if (t == FR_DTYPE_I32) {
        const int32_t x = (int32_t)v;
        memcpy(p, &x, 4);
    } else {
        fr_test_store(t, p, (float)v);
    }
}

double fr_test_get(fr_dtype t, const void *p) {
    if (t == FR_DTYPE_I32) {
        int32_t x;
        memcpy(&x, p, 4);
        return x;
    }
    return fr_test_load(t, p);
}
