/* Element types, quantized block layouts (sizes only; the block structs live in core/quant.h),
 * and exact scalar conversions f32 <-> f16 / bf16 (round to nearest even). */
#ifndef FR_CORE_DTYPE_H
#define FR_CORE_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum fr_dtype {
    FR_DTYPE_F32 = 0,
    FR_DTYPE_F16,
    FR_DTYPE_BF16,
    FR_DTYPE_I32,
    FR_DTYPE_Q8_0,
    FR_DTYPE_Q4_0,
    FR_DTYPE_Q4_1,
    FR_DTYPE_Q5_0,
    FR_DTYPE_Q5_1,
    FR_DTYPE_Q4_K,
    FR_DTYPE_Q5_K,
    FR_DTYPE_Q6_K,
    FR_DTYPE_COUNT
} fr_dtype;

typedef struct fr_dtype_info {
    const char *name;  /* "f32", "q4_k", ... */
    int block_elems;   /* elements per block (1 for plain types) */
    int block_bytes;   /* bytes per block */
    bool quantized;
} fr_dtype_info;

const fr_dtype_info *fr_dtype_get(fr_dtype t); /* NULL for an out-of-range value */
const char *fr_dtype_name(fr_dtype t);
bool fr_dtype_from_name(const char *name, fr_dtype *out); /* case-insensitive */

/* Bytes of one row of n elements; 0 when n is not a multiple of the block size. */
size_t fr_dtype_row_bytes(fr_dtype t, int64_t n);

/* ---- scalar conversions, exact: RNE, NaN stays NaN, subnormals handled ---- */

static inline uint32_t fr_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float fr_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float fr_bf16_to_f32(uint16_t h) { return fr_bits_f32((uint32_t)h << 16); }

static inline uint16_t fr_f32_to_bf16(float f) {
    uint32_t u = fr_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float fr_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return fr_bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    if (exp == 0) {
        if (man == 0) return fr_bits_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return fr_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t fr_f32_to_f16(float f) {
    uint32_t u = fr_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u | (uint16_t)((a >> 13) & 0x3ffu); /* nan */
    if (a >= 0x477ff000u) return sign | 0x7c00u; /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {
        /* result is subnormal or zero: round a * 2^24 to an integer, half to even */
        if (a < 0x33000000u) return sign; /* < 2^-25: rounds to 0 */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)e; /* value = m * 2^(e-150); want m * 2^(e-150+24) */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return sign | (uint16_t)q;
    }
    /* normal: rebias exponent, round mantissa from 23 to 10 bits, half to even */
    uint32_t r = a - 0x38000000u; /* exponent 127 -> 15 */
    r += 0xfffu + ((r >> 13) & 1u);
    return sign | (uint16_t)(r >> 13);
}

#endif
