#include "core/dtype.h"

#include <strings.h>

static const fr_dtype_info dtype_table[FR_DTYPE_COUNT] = {
    [FR_DTYPE_F32] = {"f32", 1, 4, false},     [FR_DTYPE_F16] = {"f16", 1, 2, false},
    [FR_DTYPE_BF16] = {"bf16", 1, 2, false},   [FR_DTYPE_I32] = {"i32", 1, 4, false},
    [FR_DTYPE_Q8_0] = {"q8_0", 32, 34, true},  [FR_DTYPE_Q4_0] = {"q4_0", 32, 18, true},
    [FR_DTYPE_Q4_1] = {"q4_1", 32, 20, true},  [FR_DTYPE_Q5_0] = {"q5_0", 32, 22, true},
    [FR_DTYPE_Q5_1] = {"q5_1", 32, 24, true},  [FR_DTYPE_Q4_K] = {"q4_k", 256, 144, true},
    [FR_DTYPE_Q5_K] = {"q5_k", 256, 176, true}, [FR_DTYPE_Q6_K] = {"q6_k", 256, 210, true},
};

const fr_dtype_info *fr_dtype_get(fr_dtype t) {
    if ((int)t < 0 || t >= FR_DTYPE_COUNT) return NULL;
    return &dtype_table[t];
}

const char *fr_dtype_name(fr_dtype t) {
    const fr_dtype_info *i = fr_dtype_get(t);
    return i ? i->name : "invalid";
}

bool fr_dtype_from_name(const char *name, fr_dtype *out) {
    for (int t = 0; t < FR_DTYPE_COUNT; t++) {
        if (!strcasecmp(name, dtype_table[t].name)) {
            *out = (fr_dtype)t;
            return true;
        }
    }
    return false;
}

size_t fr_dtype_row_bytes(fr_dtype t, int64_t n) {
    const fr_dtype_info *i = fr_dtype_get(t);
    if (!i || n < 0 || n % i->block_elems) return 0;
    return (size_t)(n / i->block_elems) * (size_t)i->block_bytes;
}
