/* Packed GEMM for quantized weights, AVX2 build (the kernels: quant_gemm_x86.h). */
#include "kernels/cpu/quant_gemm_x86.h"

size_t fr_qmm_gemm_pack_bytes(int64_t K) {
    const size_t legacy = (size_t)(K / FR_QK) * PANEL_BLOCK_BYTES;
    const size_t k = (size_t)(K / FR_QK_K) *
                     (Q4K_PANEL_BYTES > Q6K_PANEL_BYTES ? Q4K_PANEL_BYTES : Q6K_PANEL_BYTES);
    return (size_t)(FR_QGEMM_NT / 8) * (legacy > k ? legacy : k) + 64;
}

void fr_qgemm_q4_0_avx2(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                        void *pack) {
    qgemm(a, n0, n1, m0, m1, pack, T_Q4_0);
}

void fr_qgemm_q8_0_avx2(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                        void *pack) {
    qgemm(a, n0, n1, m0, m1, pack, T_Q8_0);
}

void fr_qgemm_q4_k_avx2(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                        void *pack) {
    qgemm(a, n0, n1, m0, m1, pack, T_Q4_K);
}

void fr_qgemm_q6_k_avx2(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                        void *pack) {
    qgemm(a, n0, n1, m0, m1, pack, T_Q6_K);
}

void fr_qgemm_q5_k_avx2(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,
                        void *pack) {
    qgemm(a, n0, n1, m0, m1, pack, T_Q5_K);
}
