/* Private interface between the quantized-weight matmul driver (matmul_quant.c) and its per-ISA
 * kernels (scalar in matmul_quant.c, matmul_quant_avx2.c, matmul_quant_avx512.c).
 *
 * Activations are quantized once per matmul call, row by row, into 8-bit blocks:
 *   legacy weights (q8_0, q4_0, q4_1, q5_0, q5_1): blocks of 32 with an f32 scale d and
 *     s = d * (sum of the block's 32 quants). Each kernel table picks one of two row layouts
 *     (nb = K/32 blocks):
 *     plain  (scalar, and the packed GEMM): qs[nb*32] int8 in element order, then d[nb] f32,
 *            s[nb] f32, and c8[nb] int32 = -8 * (sum of the block's quants), the q4_0 zero-point
 *            term in integers (the packed GEMM adds c8, 2 * c8 for q5_0, or 16 * c8 for q8_0's
 *            w + 128 with VNNI, before its one conversion to f32);
 *     paired (AVX2, AVX-512): blocks a = 2p, b = 2p+1 form pair p; qs holds 64 bytes per pair
 * ordered a0..15 b0..15 a16..31 b16..31 (the order in which 16-byte q4/q5 weight blocks unpack into
 * a 256-bit register: low nibbles, then high nibbles), followed by 4 floats per pair: d_a s_a d_b
 * s_b. An odd last block pairs with a zero block. K weights (q4_k, q5_k, q6_k): fr_block_q8_k
 * super-blocks of 256 (bsums feed the mins). A block is q = round(x * 127 / amax), d = amax / 127,
 * rounding half to even in every variant, so all variants see bit-identical integer inputs and
 * their results differ only by the order of float additions. A block holding inf or NaN gets d = s
 * = NaN (the outputs it touches become NaN, as with f32 weights) and zero quants.
 *
 * Each weight block contributes an exact integer dot product scaled once in f32:
 *   q8_0:       dw*dx*sum(w*q)
 *   q4_0/q5_0:  dw*dx*sum(u*q) - c*dw*s          (u = unsigned nibble value, c = 8 or 16)
 *   q4_1/q5_1:  dw*dx*sum(u*q) + mw*s
 *   q4_k/q5_k:  dx*d*sum_j sc_j*sum(u*q) - dx*dmin*sum_j m_j*bsum_j
 *   q6_k:       dx*d*sum_j sc_j*(sum(u*q) - 32*bsum_j)   (u = 6-bit value, 16-element j) */
#ifndef FR_KERNELS_CPU_QUANT_DOT_H
#define FR_KERNELS_CPU_QUANT_DOT_H

#include <stddef.h>
#include <stdint.h>

#include "core/quant.h"

/* Bytes of one quantized activation row (64-byte multiple so every row starts aligned). */
static inline size_t fr_qx32_row_bytes(int64_t K) {
    const size_t pairs = (size_t)(K / FR_QK + 1) / 2; /* enough for both layouts */
    return (pairs * 2 * (FR_QK + 3 * sizeof(float)) + 63) & ~(size_t)63;
}
static inline size_t fr_qxk_row_bytes(int64_t K) {
    return ((size_t)(K / FR_QK_K) * sizeof(fr_block_q8_k) + 63) & ~(size_t)63;
}

/* What one kernel call needs: rows n0..n1 of w against rows m0..m1 of the quantized x. */
typedef struct fr_qmm_args {
    const char *w;
    int64_t w_stride; /* bytes between weight rows */
    int64_t K;
    const char *xq;
    int64_t xq_stride; /* bytes between quantized activation rows */
    float *out;
    int64_t out_stride; /* floats between output rows */
    const float *bias;  /* NULL = none */
} fr_qmm_args;

/* out[m, n] = dot(w row n, x row m) (+ bias[n]) for n in [n0, n1), m in [m0, m1). Each weight
 * block is unpacked once per group of up to 4 activation rows. With m1 - m0 <= 8 (GEMV) every
 * weight row is fetched from memory once; with more (a GEMM tile of few weight rows) the loop
 * runs over groups of activation rows outermost so each group stays in L1. */
typedef void (*fr_qmm_fn)(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1);
/* Quantize one activation row of K floats (K a multiple of the block size) into `row`. */
typedef void (*fr_qx_fn)(const float *x, void *row, int64_t K);

/* Packed GEMM (M > 8 rows) for some weight types: each task first repacks its weight rows n0..n1
 * (at most FR_QGEMM_NT) into `pack` (fr_qmm_gemm_pack_bytes(K) bytes, per thread), so that one
 * 256-bit register holds 4 weights of each of 8 rows and every activation byte quad, broadcast,
 * serves 8 weight rows at once; the activations come in the plain layout (legacy formats) or
 * as q8_k (K formats, as for mm). See quant_gemm_x86.h. */
#define FR_QGEMM_NT 16
typedef void (*fr_qgemm_fn)(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                            void *pack);
size_t fr_qmm_gemm_pack_bytes(int64_t K);

typedef struct fr_qmm_kernels {
    const char *name;
    fr_qx_fn quantize_x32;        /* legacy formats, in this table's layout (above) */
    fr_qx_fn quantize_xk;         /* fr_block_q8_k[K/256] */
    fr_qmm_fn mm[FR_DTYPE_COUNT]; /* by weight dtype; NULL for non-quantized dtypes */
    fr_qx_fn quantize_x32_plain;  /* the plain layout, for the legacy formats' gemm */
    const fr_qgemm_fn *gemm; /* packed GEMM by weight dtype, or NULL (table or entry: use mm) */
} fr_qmm_kernels;

extern const fr_qmm_kernels fr_qmm_kernels_scalar;
extern const fr_qmm_kernels fr_qmm_kernels_avx2;
extern const fr_qmm_kernels fr_qmm_kernels_avx512;

/* Float-activation kernels (FR_QUANT_ACT_F32): the same fr_qmm_fn, but xq / xq_stride name the
 * f32 activation rows themselves (stride in bytes), nothing is quantized. Each weight block is
 * dequantized in registers (scalar: into one block on the stack) exactly as fr_dequantize_row
 * does, then multiplied with the f32 activations and summed in f32, so the result differs from a
 * float64 dot product of the dequantized weights only by f32 rounding (~1e-7 relative), not by
 * the ~1e-2 of 8-bit activations. Slower than the integer kernels wherever compute-bound (prefill,
 * and decode of the 4-bit formats, ~0.5x): 8 multiply-adds per instruction instead of 32.
 * matmul_quantf.c (scalar, dispatch) and matmul_quantf_avx2.c; AVX-512 contexts use the AVX2 table
 * (this path exists for accuracy, and the AVX2 kernels are the ones the development machine can
 * test). */
typedef struct fr_qmmf_kernels {
    const char *name;
    fr_qmm_fn mm[FR_DTYPE_COUNT];
} fr_qmmf_kernels;

extern const fr_qmmf_kernels fr_qmmf_kernels_scalar;
extern const fr_qmmf_kernels fr_qmmf_kernels_avx2;
struct fr_cpu_ctx;
const fr_qmmf_kernels *fr_cpu_qmmf_pick(const struct fr_cpu_ctx *ctx);

/* Name of the kernel table a CPU backend context uses ("scalar", "avx2", "avx512-vnni"; with
 * float activations "scalar-f32", "avx2-f32"). */
struct fr_cpu_ctx;
const char *fr_cpu_quant_kernels_name(const struct fr_cpu_ctx *ctx);

/* AVX2 quantizers that the AVX-512 table reuses (quantization is a small part of a call):
 * legacy formats in the paired layout, and q8_k. */
void fr_qmm_quantize_x32_paired_avx2(const float *x, void *row, int64_t K);
void fr_qmm_quantize_xk_avx2(const float *x, void *row, int64_t K);
void fr_qmm_quantize_x32_plain_avx2(const float *x, void *row, int64_t K);
/* Packed GEMM kernels by weight dtype (quant_gemm_x86.h: every quantized type), built for AVX2
 * (matmul_quant_gemm_avx2.c) and for AVX-512 VNNI (matmul_quant_gemm_avx512.c) */
extern const fr_qgemm_fn fr_qgemm_avx2[FR_DTYPE_COUNT];
extern const fr_qgemm_fn fr_qgemm_avx512[FR_DTYPE_COUNT];

#endif
