/* Packed GEMM for quantized weights, AVX-512 VNNI build (the kernels: quant_gemm_x86.h). */
#include "kernels/cpu/quant_gemm_x86.h"

const fr_qgemm_fn fr_qgemm_avx512[FR_DTYPE_COUNT] = {
    [FR_DTYPE_Q8_0] = qgemm_q8_0, [FR_DTYPE_Q4_0] = qgemm_q4_0, [FR_DTYPE_Q4_1] = qgemm_q4_1,
    [FR_DTYPE_Q5_0] = qgemm_q5_0, [FR_DTYPE_Q5_1] = qgemm_q5_1, [FR_DTYPE_Q4_K] = qgemm_q4_k,
    [FR_DTYPE_Q5_K] = qgemm_q5_k, [FR_DTYPE_Q6_K] = qgemm_q6_k,
};
