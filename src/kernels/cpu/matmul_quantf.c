/* matmul with quantized weights on f32 activations (FR_QUANT_ACT_F32): the accurate variant of
 * matmul_quant.c. Nothing is quantized: each weight block is dequantized where it is used (in
 * registers in matmul_quantf_avx2.c; into one block on the stack here) with exactly the values
 * fr_dequantize_row gives, multiplied with the f32 activations and summed in f32. The whole
 * matrix is never dequantized to memory, so decode still reads each weight byte once.
 *
 * Why it exists: 8-bit activations put the logits of a real model 1-4% (relative L2) away from a
 * float reference and flip close greedy choices (tests/test_real_model.sh); this path is within
 * f32 rounding of the reference.
 *
 * The driver is fr_cpu_matmul_quant (matmul_quant.c), which splits the work the same way for both
 * activation types. This file holds the scalar kernels and the kernel-table choice. */
#include <string.h>

#include "core/quant.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/matmul_quant.h"
#include "kernels/cpu/quant_dot.h"

/* ---------------------------------------------------------------- scalar kernels */

/* Rows n0..n1 of w against activation rows m0..m1: blocks dequantized by fr_dequantize_row (the
 * definition of the values), one block at a time, for up to 4 activation rows. Each block's dot
 * is summed on its own and then added, so no sum runs over more than max(block, K/block) terms. */
static void mmf_scalar(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                       fr_dtype t) {
    const int blk = fr_dtype_get(t)->block_elems;
    const int64_t nb = a->K / blk, bb = fr_dtype_get(t)->block_bytes;
    float wf[FR_QK_K];
    for (int64_t n = n0; n < n1; n++) {
        const char *row = a->w + n * a->w_stride;
        for (int64_t m = m0; m < m1; m += 4) {
            const int R = m1 - m < 4 ? (int)(m1 - m) : 4;
            float acc[4] = {0, 0, 0, 0};
            for (int64_t b = 0; b < nb; b++) {
                fr_dequantize_row(t, row + b * bb, wf, blk);
                for (int r = 0; r < R; r++) {
                    const float *x = (const float *)(a->xq + (m + r) * a->xq_stride) + b * blk;
                    float s = 0.0f;
                    for (int i = 0; i < blk; i++)
                        s += wf[i] * x[i];
                    acc[r] += s;
                }
            }
            for (int r = 0; r < R; r++)
                a->out[(m + r) * a->out_stride + n] = acc[r] + (a->bias ? a->bias[n] : 0.0f);
        }
    }
}

#define SCALAR_MMF(name, T)                                                                        \
    static void name(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1) {       \
        mmf_scalar(a, n0, n1, m0, m1, T);                                                          \
    }
SCALAR_MMF(mmf_q8_0_scalar, FR_DTYPE_Q8_0)
SCALAR_MMF(mmf_q4_0_scalar, FR_DTYPE_Q4_0)
SCALAR_MMF(mmf_q4_1_scalar, FR_DTYPE_Q4_1)
SCALAR_MMF(mmf_q5_0_scalar, FR_DTYPE_Q5_0)
SCALAR_MMF(mmf_q5_1_scalar, FR_DTYPE_Q5_1)
SCALAR_MMF(mmf_q4_k_scalar, FR_DTYPE_Q4_K)
SCALAR_MMF(mmf_q5_k_scalar, FR_DTYPE_Q5_K)
SCALAR_MMF(mmf_q6_k_scalar, FR_DTYPE_Q6_K)

const fr_qmmf_kernels fr_qmmf_kernels_scalar = {
    .name = "scalar-f32",
    .mm =
        {
            [FR_DTYPE_Q8_0] = mmf_q8_0_scalar,
            [FR_DTYPE_Q4_0] = mmf_q4_0_scalar,
            [FR_DTYPE_Q4_1] = mmf_q4_1_scalar,
            [FR_DTYPE_Q5_0] = mmf_q5_0_scalar,
            [FR_DTYPE_Q5_1] = mmf_q5_1_scalar,
            [FR_DTYPE_Q4_K] = mmf_q4_k_scalar,
            [FR_DTYPE_Q5_K] = mmf_q5_k_scalar,
            [FR_DTYPE_Q6_K] = mmf_q6_k_scalar,
        },
};

/* ---------------------------------------------------------------- dispatch and driver */

/* Follows the backend's kernel choice (FR_CPU_ISA lowers it); AVX-512 contexts use AVX2. */
const fr_qmmf_kernels *fr_cpu_qmmf_pick(const fr_cpu_ctx *ctx) {
#if defined(__x86_64__) || defined(__i386__)
    if (ctx->k == &fr_cpu_kernels_avx512 || ctx->k == &fr_cpu_kernels_avx2)
        return &fr_qmmf_kernels_avx2;
#endif
    return &fr_qmmf_kernels_scalar;
}
