/* Packed GEMM for quantized weights, AVX-512 VNNI build (the kernels: quant_gemm_x86.h). */
#include "kernels/cpu/quant_gemm_x86.h"

void fr_qgemm_q4_0_avx512(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                          void *pack) {
    qgemm(a, n0, n1, m0, m1, pack, T_Q4_0);
}

void fr_qgemm_q8_0_avx512(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                          void *pack) {
    qgemm(a, n0, n1, m0, m1, pack, T_Q8_0);
}

void fr_qgemm_q4_k_avx512(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                          void *pack) {
    qgemm(a, n0, n1, m0, m1, pack, T_Q4_K);
}

void fr_qgemm_q6_k_avx512(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                          void *pack) {
    qgemm(a, n0, n1, m0, m1, pack, T_Q6_K);
}

void fr_qgemm_q5_k_avx512(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                          void *pack) {
    qgemm(a, n0, n1, m0, m1, pack, T_Q5_K);
}
