/* Packed GEMM for quantized weights, AVX2 build (the kernels: quant_gemm_x86.h). */
#include "kernels/cpu/quant_gemm_x86.h"

size_t fr_qmm_gemm_pack_bytes(int64_t K) {
    const size_t legacy = (size_t)(K / FR_QK) * PANEL_BLOCK_BYTES;
    const size_t k = (size_t)(K / FR_QK_K) *
                     (Q4K_PANEL_BYTES > Q6K_PANEL_BYTES ? Q4K_PANEL_BYTES : Q6K_PANEL_BYTES);
    return (size_t)(FR_QGEMM_NT / 8) * (legacy > k ? legacy : k) + 64;
}

const fr_qgemm_fn fr_qgemm_avx2[FR_DTYPE_COUNT] = {
    [FR_DTYPE_Q8_0] = qgemm_q8_0, [FR_DTYPE_Q4_0] = qgemm_q4_0, [FR_DTYPE_Q4_1] = qgemm_q4_1,
    [FR_DTYPE_Q5_0] = qgemm_q5_0, [FR_DTYPE_Q5_1] = qgemm_q5_1, [FR_DTYPE_Q4_K] = qgemm_q4_k,
    [FR_DTYPE_Q5_K] = qgemm_q5_k, [FR_DTYPE_Q6_K] = qgemm_q6_k,
};
