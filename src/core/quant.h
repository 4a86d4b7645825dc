/* Quantized block formats with GGML's exact byte layouts (so GGUF tensor data is used in place),
 * row (de)quantization for every fr_dtype, and the GGML type id <-> fr_dtype mapping.
 *
 * All multi-byte fields are little-endian; scales stored as uint16_t are IEEE half floats.
 * Element order inside blocks (the part every kernel must get right):
 *   q4_0/q4_1:  qs[j] low nibble = element j, high nibble = element j+16.
 *   q5_0/q5_1:  as q4 for the low 4 bits; bit 4 of element j is bit j of the little-endian u32 qh.
 *   q8_0:       qs[j] = element j.
 *   q4_k:       8 sub-blocks of 32 with 6-bit scale sc and 6-bit min m (packed, see
 *               fr_q4k_scale_min); value = d*sc*q - dmin*m. Bytes qs[32c .. 32c+31] hold
 *               sub-block 2c in the low nibbles and sub-block 2c+1 in the high nibbles.
 *   q5_k:       as q4_k, plus bit 4 of element l of sub-block j = bit j of qh[l].
 *   q6_k:       16 sub-blocks of 16 with int8 scales; value = d*scale*(q-32). Per half h (128
 *               elements, e = 0..127): low 4 bits in ql[64h + e%64] (low nibble for e<64, high
 *               nibble for e>=64), high 2 bits in qh[32h + e%32] at bit 2*(e/32).
 *   q8_k:       activations only (not an fr_dtype, never in files): f32 d, 256 int8, bsums[j] =
 *               sum of qs[16j .. 16j+15]. */
#ifndef FR_CORE_QUANT_H
#define FR_CORE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "ferrum.h"

#define FR_QK      32  /* elements per block of the legacy formats */
#define FR_QK_K    256 /* elements per super-block of the K formats */
#define FR_K_SCALE 12  /* bytes of packed 6-bit scales/mins in q4_k/q5_k */

typedef struct fr_block_q8_0 {
    uint16_t d;
    int8_t qs[FR_QK];
} fr_block_q8_0;

typedef struct fr_block_q4_0 {
    uint16_t d;
    uint8_t qs[FR_QK / 2];
} fr_block_q4_0;

typedef struct fr_block_q4_1 {
    uint16_t d, m;
    uint8_t qs[FR_QK / 2];
} fr_block_q4_1;

typedef struct fr_block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[FR_QK / 2];
} fr_block_q5_0;

typedef struct fr_block_q5_1 {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[FR_QK / 2];
} fr_block_q5_1;

typedef struct fr_block_q4_k {
    uint16_t d, dmin;
    uint8_t scales[FR_K_SCALE];
    uint8_t qs[FR_QK_K / 2];
} fr_block_q4_k;

typedef struct fr_block_q5_k {
    uint16_t d, dmin;
    uint8_t scales[FR_K_SCALE];
    uint8_t qh[FR_QK_K / 8];
    uint8_t qs[FR_QK_K / 2];
} fr_block_q5_k;

typedef struct fr_block_q6_k {
    uint8_t ql[FR_QK_K / 2];
    uint8_t qh[FR_QK_K / 4];
    int8_t scales[FR_QK_K / 16];
    uint16_t d;
} fr_block_q6_k;

typedef struct fr_block_q8_k {
    float d;
    int8_t qs[FR_QK_K];
    int16_t bsums[FR_QK_K / 16];
} fr_block_q8_k;

_Static_assert(sizeof(fr_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(fr_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(fr_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(fr_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(fr_block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(fr_block_q4_k) == 144, "q4_k layout");
_Static_assert(sizeof(fr_block_q5_k) == 176, "q5_k layout");
_Static_assert(sizeof(fr_block_q6_k) == 210, "q6_k layout");
_Static_assert(sizeof(fr_block_q8_k) == 292, "q8_k layout");
_Static_assert(offsetof(fr_block_q5_1, qs) == 8, "q5_1 layout");
_Static_assert(offsetof(fr_block_q5_k, qs) == 48, "q5_k layout");
_Static_assert(offsetof(fr_block_q6_k, d) == 208, "q6_k layout");
/* Quant blocks are read in place from files: alignment must not exceed what a GGUF row gives. */
_Static_assert(_Alignof(fr_block_q8_0) == 2 && _Alignof(fr_block_q6_k) == 2, "block alignment");

/* Scale and min (6 bits each) of sub-block j (0..7) from the 12 packed bytes of q4_k / q5_k:
 * j < 4 sit in the low 6 bits of s[j] and s[j+4]; j >= 4 keep their low 4 bits in the nibbles
 * of s[j+4] and their top 2 bits in the spare top bits of s[j-4] (scale) and s[j] (min). */
static inline void fr_q4k_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* ---- GGML type ids (the numbers stored in GGUF tensor infos) ---- */
enum {
    FR_GGML_F32 = 0,
    FR_GGML_F16 = 1,
    FR_GGML_Q4_0 = 2,
    FR_GGML_Q4_1 = 3,
    FR_GGML_Q5_0 = 6,
    FR_GGML_Q5_1 = 7,
    FR_GGML_Q8_0 = 8,
    FR_GGML_Q8_1 = 9,
    FR_GGML_Q2_K = 10,
    FR_GGML_Q3_K = 11,
    FR_GGML_Q4_K = 12,
    FR_GGML_Q5_K = 13,
    FR_GGML_Q6_K = 14,
    FR_GGML_Q8_K = 15,
    FR_GGML_I8 = 24,
    FR_GGML_I16 = 25,
    FR_GGML_I32 = 26,
    FR_GGML_I64 = 27,
    FR_GGML_F64 = 28,
    FR_GGML_BF16 = 30,
};

/* GGML id of an fr_dtype; -1 for an invalid dtype. */
int fr_dtype_to_ggml(fr_dtype t);
/* fr_dtype of a GGML id; false when ferrum cannot compute with that type (known or not). */
bool fr_dtype_from_ggml(uint32_t ggml_type, fr_dtype *out);
/* Block layout and name of every GGML type id GGUF files may carry, including those ferrum does
 * not compute with (so their tensors can still be bounds-checked and reported by name). False
 * for an id no GGML version defines. */
bool fr_ggml_type_info(uint32_t ggml_type, int *block_elems, int *block_bytes, const char **name);

/* ---- rows ---- */

/* dst[0..n) = the values of one row of dtype t. Precondition: n is a multiple of t's block size
 * (validate with fr_dtype_row_bytes() != 0); other n or an invalid t write nothing. */
void fr_dequantize_row(fr_dtype t, const void *src, float *dst, int64_t n);

/* Encodes n values into dtype t. Quantized types use GGML's reference rounding for the legacy
 * formats (bit-identical output) and a weighted least-squares scale search for the K formats
 * (whose f16 super-scales round away from zero, so tiny blocks keep their accuracy instead of
 * flushing to zero). Scales beyond the f16 range saturate instead of becoming inf: the legacy
 * formats then clip the values past it, the K formats stay finite but lose accuracy.
 * Errors: n not a whole number of blocks, invalid t, non-finite input for a quantized type or
 * i32 (the message names the element index). */
fr_status fr_quantize_row(fr_dtype t, const float *src, void *dst, int64_t n, fr_error *err);

/* Activation quantization for integer dot products with K-format weights (n multiple of 256,
 * finite input). */
void fr_quantize_row_q8_k(const float *src, fr_block_q8_k *dst, int64_t n);

/* Per-format entry points (n a multiple of the block size, finite input). */
void fr_quantize_row_q8_0(const float *x, fr_block_q8_0 *y, int64_t n);
void fr_quantize_row_q4_0(const float *x, fr_block_q4_0 *y, int64_t n);
void fr_quantize_row_q4_1(const float *x, fr_block_q4_1 *y, int64_t n);
void fr_quantize_row_q5_0(const float *x, fr_block_q5_0 *y, int64_t n);
void fr_quantize_row_q5_1(const float *x, fr_block_q5_1 *y, int64_t n);
void fr_quantize_row_q4_k(const float *x, fr_block_q4_k *y, int64_t n);
void fr_quantize_row_q5_k(const float *x, fr_block_q5_k *y, int64_t n);
void fr_quantize_row_q6_k(const float *x, fr_block_q6_k *y, int64_t n);

void fr_dequantize_row_q4_k(const fr_block_q4_k *x, float *y, int64_t n);
void fr_dequantize_row_q5_k(const fr_block_q5_k *x, float *y, int64_t n);
void fr_dequantize_row_q6_k(const fr_block_q6_k *x, float *y, int64_t n);

/* f32 -> f16 for a scale, saturating at the largest finite half (65504) instead of inf. */
static inline uint16_t fr_f32_to_f16_sat(float f) {
    if (f > 65504.0f) f = 65504.0f;
    if (f < -65504.0f) f = -65504.0f;
    return fr_f32_to_f16(f);
}

#endif
