/* Quantized weight support for the CPU backend (q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k),
 * implemented in matmul_quant.c (+ _avx2.c, _avx512.c). matmul.c and embed.c call these for
 * quantized weight dtypes. The two entry points are declared weak so the backend could link
 * before matmul_quant.c existed (a NULL symbol is reported as FR_ERR_UNSUPPORTED by the caller);
 * fr_cpu_quant_release below is what guarantees the definitions are linked in now. */
#ifndef FR_KERNELS_CPU_MATMUL_QUANT_H
#define FR_KERNELS_CPU_MATMUL_QUANT_H

#include <stdint.h>

#include "kernels/cpu/cpu_backend.h"

/* out[m,n] = sum_k x[m,k] * w[n,k] (+ bias[n]) for a quantized w; arguments as fr_op_matmul
 * (validated; x and out f32 with possibly strided rows). The activations are quantized to 8 bits
 * per block of 32 (or 256 for the K formats) first, so each activation may be off by half a step
 * (amax of its block / 254): on random data the outputs' NMSE is ~1.5e-5. */
__attribute__((weak)) fr_status fr_cpu_matmul_quant(fr_cpu_ctx *ctx, const fr_tensor *x,
                                                    const fr_tensor *w, const fr_tensor *bias,
                                                    fr_tensor *out, fr_error *err);

/* Dequantizes one row of n elements (a whole number of blocks) of dtype t to f32. */
__attribute__((weak)) void fr_cpu_dequantize_row(fr_dtype t, const void *row, float *out,
                                                 int64_t n);

/* Frees the context's quantized-activation scratch (called by the backend's destroy). Not weak
 * on purpose: this strong reference is what makes the linker take matmul_quant.o out of the static
 * library, since undefined weak references alone never pull an archive member in. */
void fr_cpu_quant_release(fr_cpu_ctx *ctx);

#endif
