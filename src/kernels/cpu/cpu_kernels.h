/* Per-ISA inner kernels of the CPU backend. Each variant lives in a file compiled with its own
 * flags (matmul.c: scalar, matmul_avx2.c: AVX2+FMA+F16C, matmul_avx512.c: AVX-512 incl. BF16);
 * cpu_backend.c picks one table per backend instance from CPUID (FR_CPU_ISA=scalar|avx2|avx512
 * may lower the choice, e.g. to compare variants in tests). All variants compute the same sums in
 * f32 and differ only in summation order (rounding). */
#ifndef FR_KERNELS_CPU_KERNELS_H
#define FR_KERNELS_CPU_KERNELS_H

#include <stdint.h>

/* y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]) for m < M (1..8) and n in [n0, n1). */
typedef struct fr_gemv_args {
    const float *x;
    int64_t x_stride; /* floats between rows of x */
    int M;
    const char *w;
    int64_t w_stride; /* bytes between rows of w */
    int64_t K;
    float *out;
    int64_t out_stride; /* floats between rows of out */
    const float *bias;  /* NULL = none */
} fr_gemv_args;

typedef void (*fr_gemv_fn)(const fr_gemv_args *a, int64_t n0, int64_t n1);

/* out[m, n] (+)= sum_{k<K} x[m, k] * w[n, k] for m < M, n < N; f32 everything, strides in
 * floats; accumulate = 0 overwrites. The caller blocks K and N so w fits in L2. */
typedef void (*fr_gemm_block_fn)(const float *x, int64_t xs, int64_t M, const float *w, int64_t ws,
                                 int64_t N, int64_t K, float *out, int64_t os, int accumulate);

/* As fr_gemm_block_fn with 16-bit weights (f16 or bf16, by the function; ws in elements),
 * converted to f32 while they are packed, so the caller needs no f32 copy of them. Optional: NULL
 * means the caller converts first and uses gemm_block. */
typedef void (*fr_gemm_block16_fn)(const float *x, int64_t xs, int64_t M, const uint16_t *w,
                                   int64_t ws, int64_t N, int64_t K, float *out, int64_t os,
                                   int accumulate);

/* acc[a, i] += sum_{j<nk} p[a, j] * v[j, i] for a < nq (1..8), i < D; v rows (f32, f16 or bf16
 * by the function) are v_stride bytes apart: the P.V step of attention. */
typedef void (*fr_pv_fn)(const float *p, int64_t p_stride, int nq, const char *v, int64_t v_stride,
                         int nk, int64_t D, float *acc, int64_t acc_stride);

typedef void (*fr_cvt_fn)(const void *src, float *dst, int64_t n);
typedef float (*fr_dot_fn)(const float *a, const float *b, int64_t n);
typedef void (*fr_axpy_fn)(float a, const float *x, float *y, int64_t n); /* y += a x */
/* s[i] = exp(s[i] - max) for i < n (max >= every s[i]); returns the sum of the new s[i]. */
typedef float (*fr_exp_sum_fn)(float *s, int64_t n, float max);
/* o[i] = silu(g[i]) * u[i] = g[i] / (1 + exp(-g[i])) * u[i] (o may alias g or u). */
typedef void (*fr_silu_mul_fn)(const float *g, const float *u, float *o, int64_t n);

typedef struct fr_cpu_kernels {
    const char *name;
    fr_gemv_fn gemv_f32, gemv_f16, gemv_bf16;
    fr_gemm_block_fn gemm_block;
    fr_gemm_block16_fn gemm_block_f16, gemm_block_bf16; /* optional */
    fr_pv_fn pv_f32, pv_f16, pv_bf16;
    fr_cvt_fn f16_to_f32, bf16_to_f32;
    fr_dot_fn dot;
    fr_axpy_fn axpy;
    fr_exp_sum_fn exp_sum;
    fr_silu_mul_fn silu_mul;
} fr_cpu_kernels;

extern const fr_cpu_kernels fr_cpu_kernels_scalar;
extern const fr_cpu_kernels fr_cpu_kernels_avx2;
extern const fr_cpu_kernels fr_cpu_kernels_avx512;

/* The portable C kernels (matmul.c); SIMD tables may reuse some of them. */
void fr_cpu_gemv_f32_scalar(const fr_gemv_args *a, int64_t n0, int64_t n1);
void fr_cpu_gemv_f16_scalar(const fr_gemv_args *a, int64_t n0, int64_t n1);
void fr_cpu_gemv_bf16_scalar(const fr_gemv_args *a, int64_t n0, int64_t n1);
void fr_cpu_gemm_block_scalar(const float *x, int64_t xs, int64_t M, const float *w, int64_t ws,
                              int64_t N, int64_t K, float *out, int64_t os, int accumulate);
void fr_cpu_pv_f32_scalar(const float *p, int64_t p_stride, int nq, const char *v, int64_t v_stride,
                          int nk, int64_t D, float *acc, int64_t acc_stride);
void fr_cpu_pv_f16_scalar(const float *p, int64_t p_stride, int nq, const char *v, int64_t v_stride,
                          int nk, int64_t D, float *acc, int64_t acc_stride);
void fr_cpu_pv_bf16_scalar(const float *p, int64_t p_stride, int nq, const char *v,
                           int64_t v_stride, int nk, int64_t D, float *acc, int64_t acc_stride);
void fr_cpu_f16_to_f32_scalar(const void *src, float *dst, int64_t n);
void fr_cpu_bf16_to_f32_scalar(const void *src, float *dst, int64_t n);
float fr_cpu_dot_scalar(const float *a, const float *b, int64_t n);
void fr_cpu_axpy_scalar(float a, const float *x, float *y, int64_t n);
float fr_cpu_exp_sum_scalar(float *s, int64_t n, float max);
void fr_cpu_silu_mul_scalar(const float *g, const float *u, float *o, int64_t n);
#endif
