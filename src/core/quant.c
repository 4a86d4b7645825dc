/* Legacy block formats (q8_0, q4_0, q4_1, q5_0, q5_1), plain types, row dispatch and the GGML
 * type table. The quantizers reproduce GGML's reference rounding exactly (the scale is chosen
 * from the block's extreme value, the reciprocal is taken before the scale is rounded to f16),
 * so files we write are byte-identical to what llama.cpp's quantizer makes from the same floats;
 * the only deliberate difference is saturating scales past the f16 range. */
#include "core/quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/error.h"

/* ---------------------------------------------------------------- GGML type table */

typedef struct ggml_type_row {
    const char *name;
    int block_elems, block_bytes;
} ggml_type_row;

static const ggml_type_row ggml_types[] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},         [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},      [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},      [9] = {"Q8_1", 32, 36},      [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},   [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292},   [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74},  [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},   [21] = {"IQ3_S", 256, 110},  [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},        [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},   [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},   [39] = {"MXFP4", 32, 17},    [40] = {"NVFP4", 64, 36},
    [41] = {"Q1_0", 128, 18},
};

static const int dtype_to_ggml[FR_DTYPE_COUNT] = {
    [FR_DTYPE_F32] = FR_GGML_F32,   [FR_DTYPE_F16] = FR_GGML_F16,   [FR_DTYPE_BF16] = FR_GGML_BF16,
    [FR_DTYPE_I32] = FR_GGML_I32,   [FR_DTYPE_Q8_0] = FR_GGML_Q8_0, [FR_DTYPE_Q4_0] = FR_GGML_Q4_0,
    [FR_DTYPE_Q4_1] = FR_GGML_Q4_1, [FR_DTYPE_Q5_0] = FR_GGML_Q5_0, [FR_DTYPE_Q5_1] = FR_GGML_Q5_1,
    [FR_DTYPE_Q4_K] = FR_GGML_Q4_K, [FR_DTYPE_Q5_K] = FR_GGML_Q5_K, [FR_DTYPE_Q6_K] = FR_GGML_Q6_K,
};

int fr_dtype_to_ggml(fr_dtype t) {
    if ((int)t < 0 || t >= FR_DTYPE_COUNT) return -1;
    return dtype_to_ggml[t];
}

bool fr_dtype_from_ggml(uint32_t ggml_type, fr_dtype *out) {
    for (int t = 0; t < FR_DTYPE_COUNT; t++) {
        if ((uint32_t)dtype_to_ggml[t] == ggml_type) {
            *out = (fr_dtype)t;
            return true;
        }
    }
    return false;
}

bool fr_ggml_type_info(uint32_t ggml_type, int *block_elems, int *block_bytes, const char **name) {
    if (ggml_type >= sizeof ggml_types / sizeof ggml_types[0] || !ggml_types[ggml_type].name)
        return false;
    const ggml_type_row *r = &ggml_types[ggml_type];
    if (block_elems) *block_elems = r->block_elems;
    if (block_bytes) *block_bytes = r->block_bytes;
    if (name) *name = r->name;
    return true;
}

/* ---------------------------------------------------------------- legacy quantizers */

/* The block value with the largest magnitude, sign kept (first one on ties, as GGML). */
static float block_signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void block_min_max(const float *x, int n, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

/* Clamps a scale to the f16 range so the reciprocal used for rounding matches the stored one
 * whenever saturation happens (then out-of-range values clip instead of decoding to inf). */
static float sat_scale(float d) {
    if (d > 65504.0f) return 65504.0f;
    if (d < -65504.0f) return -65504.0f;
    return d;
}

void fr_quantize_row_q8_0(const float *x, fr_block_q8_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / FR_QK; b++, x += FR_QK) {
        float amax = 0.0f;
        for (int j = 0; j < FR_QK; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = sat_scale(amax / 127.0f);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fr_f32_to_f16(d);
        for (int j = 0; j < FR_QK; j++) {
            float v = roundf(x[j] * id);
            y[b].qs[j] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
        }
    }
}

void fr_quantize_row_q4_0(const float *x, fr_block_q4_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / FR_QK; b++, x += FR_QK) {
        const float d = sat_scale(block_signed_absmax(x, FR_QK) / -8.0f);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fr_f32_to_f16(d);
        for (int j = 0; j < FR_QK / 2; j++) {
            float v0 = x[j] * id + 8.5f, v1 = x[j + FR_QK / 2] * id + 8.5f;
            int q0 = v0 < 0.0f ? 0 : v0 >= 15.0f ? 15 : (int)v0;
            int q1 = v1 < 0.0f ? 0 : v1 >= 15.0f ? 15 : (int)v1;
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void fr_quantize_row_q4_1(const float *x, fr_block_q4_1 *y, int64_t n) {
    for (int64_t b = 0; b < n / FR_QK; b++, x += FR_QK) {
        float mn, mx;
        block_min_max(x, FR_QK, &mn, &mx);
        mn = sat_scale(mn);
        const float d = sat_scale((mx - mn) / 15.0f);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fr_f32_to_f16(d);
        y[b].m = fr_f32_to_f16(mn);
        for (int j = 0; j < FR_QK / 2; j++) {
            float v0 = (x[j] - mn) * id + 0.5f, v1 = (x[j + FR_QK / 2] - mn) * id + 0.5f;
            int q0 = v0 < 0.0f ? 0 : v0 >= 15.0f ? 15 : (int)v0;
            int q1 = v1 < 0.0f ? 0 : v1 >= 15.0f ? 15 : (int)v1;
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Packs 32 5-bit levels: low nibbles as q4, fifth bits into a little-endian u32. */
static void pack_q5(const uint8_t *q, uint8_t *qs, uint8_t *qh) {
    uint32_t h = 0;
    for (int j = 0; j < FR_QK / 2; j++) {
        uint8_t q0 = q[j], q1 = q[j + FR_QK / 2];
        qs[j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
        h |= (uint32_t)(q0 >> 4) << j;
        h |= (uint32_t)(q1 >> 4) << (j + FR_QK / 2);
    }
    for (int k = 0; k < 4; k++)
        qh[k] = (uint8_t)(h >> (8 * k));
}

void fr_quantize_row_q5_0(const float *x, fr_block_q5_0 *y, int64_t n) {
    uint8_t q[FR_QK];
    for (int64_t b = 0; b < n / FR_QK; b++, x += FR_QK) {
        const float d = sat_scale(block_signed_absmax(x, FR_QK) / -16.0f);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fr_f32_to_f16(d);
        for (int j = 0; j < FR_QK; j++) {
            float v = x[j] * id + 16.5f;
            q[j] = (uint8_t)(v < 0.0f ? 0 : v >= 31.0f ? 31 : (int)v);
        }
        pack_q5(q, y[b].qs, y[b].qh);
    }
}

void fr_quantize_row_q5_1(const float *x, fr_block_q5_1 *y, int64_t n) {
    uint8_t q[FR_QK];
    for (int64_t b = 0; b < n / FR_QK; b++, x += FR_QK) {
        float mn, mx;
        block_min_max(x, FR_QK, &mn, &mx);
        mn = sat_scale(mn);
        const float d = sat_scale((mx - mn) / 31.0f);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fr_f32_to_f16(d);
        y[b].m = fr_f32_to_f16(mn);
        for (int j = 0; j < FR_QK; j++) {
            float v = (x[j] - mn) * id + 0.5f;
            q[j] = (uint8_t)(v < 0.0f ? 0 : v >= 31.0f ? 31 : (int)v);
        }
        pack_q5(q, y[b].qs, y[b].qh);
    }
}

/* ---------------------------------------------------------------- legacy dequantizers */

static void dequantize_q8_0(const fr_block_q8_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / FR_QK; b++, y += FR_QK) {
        const float d = fr_f16_to_f32(x[b].d);
        for (int j = 0; j < FR_QK; j++)
            y[j] = (float)x[b].qs[j] * d;
    }
}

static void dequantize_q4_0(const fr_block_q4_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / FR_QK; b++, y += FR_QK) {
        const float d = fr_f16_to_f32(x[b].d);
        for (int j = 0; j < FR_QK / 2; j++) {
            y[j] = (float)((x[b].qs[j] & 0xF) - 8) * d;
            y[j + FR_QK / 2] = (float)((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequantize_q4_1(const fr_block_q4_1 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / FR_QK; b++, y += FR_QK) {
        const float d = fr_f16_to_f32(x[b].d), m = fr_f16_to_f32(x[b].m);
        for (int j = 0; j < FR_QK / 2; j++) {
            y[j] = (float)(x[b].qs[j] & 0xF) * d + m;
            y[j + FR_QK / 2] = (float)(x[b].qs[j] >> 4) * d + m;
        }
    }
}

static uint32_t load_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void dequantize_q5_0(const fr_block_q5_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / FR_QK; b++, y += FR_QK) {
        const float d = fr_f16_to_f32(x[b].d);
        const uint32_t h = load_u32le(x[b].qh);
        for (int j = 0; j < FR_QK / 2; j++) {
            int q0 = (x[b].qs[j] & 0xF) | (int)((h >> j) & 1) << 4;
            int q1 = (x[b].qs[j] >> 4) | (int)((h >> (j + FR_QK / 2)) & 1) << 4;
            y[j] = (float)(q0 - 16) * d;
            y[j + FR_QK / 2] = (float)(q1 - 16) * d;
        }
    }
}

static void dequantize_q5_1(const fr_block_q5_1 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / FR_QK; b++, y += FR_QK) {
        const float d = fr_f16_to_f32(x[b].d), m = fr_f16_to_f32(x[b].m);
        const uint32_t h = load_u32le(x[b].qh);
        for (int j = 0; j < FR_QK / 2; j++) {
            int q0 = (x[b].qs[j] & 0xF) | (int)((h >> j) & 1) << 4;
            int q1 = (x[b].qs[j] >> 4) | (int)((h >> (j + FR_QK / 2)) & 1) << 4;
            y[j] = (float)q0 * d + m;
            y[j + FR_QK / 2] = (float)q1 * d + m;
        }
    }
}

/* ---------------------------------------------------------------- dispatch */

void fr_dequantize_row(fr_dtype t, const void *src, float *dst, int64_t n) {
    if (fr_dtype_row_bytes(t, n) == 0 && n != 0) return;
    switch (t) {
    case FR_DTYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case FR_DTYPE_F16: {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = fr_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    }
    case FR_DTYPE_BF16: {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = fr_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    }
    case FR_DTYPE_I32: {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = (float)(int32_t)load_u32le(p + 4 * i);
        break;
    }
    case FR_DTYPE_Q8_0:
        dequantize_q8_0(src, dst, n);
        break;
    case FR_DTYPE_Q4_0:
        dequantize_q4_0(src, dst, n);
        break;
    case FR_DTYPE_Q4_1:
        dequantize_q4_1(src, dst, n);
        break;
    case FR_DTYPE_Q5_0:
        dequantize_q5_0(src, dst, n);
        break;
    case FR_DTYPE_Q5_1:
        dequantize_q5_1(src, dst, n);
        break;
    case FR_DTYPE_Q4_K:
        fr_dequantize_row_q4_k(src, dst, n);
        break;
    case FR_DTYPE_Q5_K:
        fr_dequantize_row_q5_k(src, dst, n);
        break;
    case FR_DTYPE_Q6_K:
        fr_dequantize_row_q6_k(src, dst, n);
        break;
    default:
        break;
    }
}

fr_status fr_quantize_row(fr_dtype t, const float *src, void *dst, int64_t n, fr_error *err) {
    const fr_dtype_info *info = fr_dtype_get(t);
    if (!info) return fr_error_set(err, FR_ERR_INVALID, "quantize: invalid dtype %d", (int)t);
    if (n < 0 || n % info->block_elems)
        return fr_error_set(err, FR_ERR_INVALID,
                            "quantize %s: row length %lld is not a multiple of the block size %d",
                            info->name, (long long)n, info->block_elems);
    if (info->quantized || t == FR_DTYPE_I32) {
        /* NaN/inf would poison a whole block's scale: refuse rather than write garbage */
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(src[i]))
                return fr_error_set(err, FR_ERR_INVALID,
                                    "quantize %s: element %lld is not finite (%g)", info->name,
                                    (long long)i, (double)src[i]);
    }
    uint8_t *p = dst;
    switch (t) {
    case FR_DTYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case FR_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = fr_f32_to_f16(src[i]);
            p[2 * i] = (uint8_t)h;
            p[2 * i + 1] = (uint8_t)(h >> 8);
        }
        break;
    case FR_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = fr_f32_to_bf16(src[i]);
            p[2 * i] = (uint8_t)h;
            p[2 * i + 1] = (uint8_t)(h >> 8);
        }
        break;
    case FR_DTYPE_I32:
        for (int64_t i = 0; i < n; i++) {
            double v = nearbyint((double)src[i]);
            int32_t q = v >= 2147483647.0 ? INT32_MAX : v <= -2147483648.0 ? INT32_MIN : (int32_t)v;
            uint32_t u = (uint32_t)q;
            for (int k = 0; k < 4; k++)
                p[4 * i + k] = (uint8_t)(u >> (8 * k));
        }
        break;
    case FR_DTYPE_Q8_0:
        fr_quantize_row_q8_0(src, dst, n);
        break;
    case FR_DTYPE_Q4_0:
        fr_quantize_row_q4_0(src, dst, n);
        break;
    case FR_DTYPE_Q4_1:
        fr_quantize_row_q4_1(src, dst, n);
        break;
    case FR_DTYPE_Q5_0:
        fr_quantize_row_q5_0(src, dst, n);
        break;
    case FR_DTYPE_Q5_1:
        fr_quantize_row_q5_1(src, dst, n);
        break;
    case FR_DTYPE_Q4_K:
        fr_quantize_row_q4_k(src, dst, n);
        break;
    case FR_DTYPE_Q5_K:
        fr_quantize_row_q5_k(src, dst, n);
        break;
    case FR_DTYPE_Q6_K:
        fr_quantize_row_q6_k(src, dst, n);
        break;
    default:
        return fr_error_set(err, FR_ERR_INVALID, "quantize: invalid dtype %d", (int)t);
    }
    return FR_OK;
}
