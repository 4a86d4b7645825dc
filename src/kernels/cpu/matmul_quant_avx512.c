/* AVX-512 VNNI kernels for quantized-weight matmul (work in progress). */
#include "kernels/cpu/quant_dot.h"

const fr_qmm_kernels fr_qmm_kernels_avx512 = {
    .name = "avx512-vnni",
    .quantize_x32 = fr_qmm_quantize_x32_avx2,
    .quantize_xk = fr_qmm_quantize_xk_avx2,
};
