/* AVX-512 kernels (F, BW, VL, DQ; compiled with the BF16/VNNI flags too; selected only when
 * CPUID reports avx512f/bw/vl/dq and avx512_bf16). Same structure as matmul_avx2.c with 16 lanes,
 * 32 registers (wider micro tiles) and masked loads for the tails instead of scalar loops.
 *
 * bf16 weights are widened by a 16-bit shift and multiplied with FMA, as on AVX2. vdpbf16ps is
 * not used: it multiplies bf16 by bf16, so the f32 activations would have to be rounded to bf16
 * (relative error 2^-9 per product, far beyond "agree to rounding" with the other variants), and
 * the exact alternative (activations split into two bf16 halves, two vdpbf16ps per pair) costs
 * as many instructions as widen + FMA while GEMV stays memory-bound either way. */
#include <immintrin.h>
#include <math.h>

#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/gemm_x86.h"

/* Software prefetch distance (bytes) along a weight row in GEMV, as in matmul_avx2.c; measured
 * on 2 Sapphire Rapids cores: f16 18.1 GB/s without, 23.1 at 2048, 22.4 at 4096. */
#ifndef GEMV_PREFETCH
#define GEMV_PREFETCH 2048
#endif

INLINE __mmask16 tail_mask(int64_t n) {
    return (__mmask16)((1u << n) - 1u);
}

/* 16 weights at w[k..k+16) widened to f32; elements past the mask read as 0. */
INLINE __m512 load_w(const char *w, int64_t k, const int wt, __mmask16 m) {
    if (wt == W_F32) return _mm512_maskz_loadu_ps(m, (const float *)w + k);
    const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + k);
    if (wt == W_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

INLINE __m512 load_x(const float *x, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, x);
}

/* ---------------------------------------------------------------- GEMV */

/* R weight rows (1 or 2) at a time, each dotted with M activation rows, k unrolled U times
 * (R*M*U <= 16 accumulators), as in matmul_avx2.c. */
INLINE void gemv_block(const fr_gemv_args *a, int64_t n, const int wt, const int M, const int U,
                       const int R) {
    const int64_t K = a->K, xs = a->x_stride;
    const float *x = a->x;
    const __mmask16 all = 0xffff;
    const char *wr[2] = {a->w + n * a->w_stride, a->w + (n + R - 1) * a->w_stride};
    __m512 acc[2][8][4];
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int m = 0; m < M; m++)
#pragma GCC unroll 4
            for (int u = 0; u < U; u++)
                acc[r][m][u] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 * U <= K; k += 16 * U) {
        if (GEMV_PREFETCH) {
            for (int r = 0; r < R; r++)
                for (int b = 0; b < 16 * U * WBYTES(wt); b += 64)
                    _mm_prefetch(wr[r] + k * WBYTES(wt) + GEMV_PREFETCH + b, _MM_HINT_T0);
        }
#pragma GCC unroll 4
        for (int u = 0; u < U; u++) {
            __m512 wv[2];
#pragma GCC unroll 2
            for (int r = 0; r < R; r++)
                wv[r] = load_w(wr[r], k + 16 * u, wt, all);
#pragma GCC unroll 8
            for (int m = 0; m < M; m++) {
                const __m512 xv = _mm512_loadu_ps(x + m * xs + k + 16 * u);
#pragma GCC unroll 2
                for (int r = 0; r < R; r++)
                    acc[r][m][u] = _mm512_fmadd_ps(wv[r], xv, acc[r][m][u]);
            }
        }
    }
    for (; k < K; k += 16) {
        const __mmask16 msk = K - k >= 16 ? all : tail_mask(K - k);
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            const __m512 wv = load_w(wr[r], k, wt, msk);
#pragma GCC unroll 8
            for (int m = 0; m < M; m++)
                acc[r][m][0] = _mm512_fmadd_ps(wv, load_x(x + m * xs + k, msk), acc[r][m][0]);
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
        const float b = a->bias ? a->bias[n + r] : 0.0f;
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) {
            __m512 s = acc[r][m][0];
#pragma GCC unroll 4
            for (int u = 1; u < U; u++)
                s = _mm512_add_ps(s, acc[r][m][u]);
            a->out[m * a->out_stride + n + r] = _mm512_reduce_add_ps(s) + b;
        }
    }
}

INLINE void gemv_rows(const fr_gemv_args *a, int64_t n0, int64_t n1, const int wt, const int M,
                      const int U, const int R) {
    int64_t n = n0;
    if (R == 2)
        for (; n + 2 <= n1; n += 2)
            gemv_block(a, n, wt, M, U, 2);
    for (; n < n1; n++)
        gemv_block(a, n, wt, M, U, 1);
}

INLINE void gemv_dispatch(const fr_gemv_args *a, int64_t n0, int64_t n1, const int wt) {
    switch (a->M) {
    case 1:
        gemv_rows(a, n0, n1, wt, 1, 4, 1);
        break;
    case 2:
        gemv_rows(a, n0, n1, wt, 2, 2, 2);
        break;
    case 3:
        gemv_rows(a, n0, n1, wt, 3, 2, 2);
        break;
    case 4:
        gemv_rows(a, n0, n1, wt, 4, 2, 2);
        break;
    case 5:
        gemv_rows(a, n0, n1, wt, 5, 1, 2);
        break;
    case 6:
        gemv_rows(a, n0, n1, wt, 6, 1, 2);
        break;
    case 7:
        gemv_rows(a, n0, n1, wt, 7, 1, 2);
        break;
    default:
        gemv_rows(a, n0, n1, wt, 8, 1, 2);
        break;
    }
}

static void gemv_f32(const fr_gemv_args *a, int64_t n0, int64_t n1) {
    gemv_dispatch(a, n0, n1, W_F32);
}
static void gemv_f16(const fr_gemv_args *a, int64_t n0, int64_t n1) {
    gemv_dispatch(a, n0, n1, W_F16);
}
static void gemv_bf16(const fr_gemv_args *a, int64_t n0, int64_t n1) {
    gemv_dispatch(a, n0, n1, W_BF16);
}

/* ---------------------------------------------------------------- GEMM block */

/* As matmul_avx2.c with 16 lanes: weights repacked GEMM_PC columns at a time into panels of 32
 * rows stored k-major (the 32 weights of one k: two vectors, converted from f16 / bf16 while
 * packing), and an outer-product micro tile: per k, MR (<= 8) broadcasts of x times the two weight
 * vectors into MR x 2 accumulators that stay in registers for the whole panel (10 loads per 16
 * FMAs, no horizontal sums). It replaced a 4 x 4 dot-product tile that loaded x and w per k and
 * reduced every output across 16 lanes. */
#define GEMM_PC 256
#define GEMM_PW 32

INLINE void gemm_tile(const float *x, int64_t xs, const float *p, int64_t K, float *out, int64_t os,
                      int64_t nr, int accumulate, const int MR) {
    __m512 c[8][2];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        c[i][0] = _mm512_setzero_ps();
        c[i][1] = _mm512_setzero_ps();
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++) {
        const __m512 w0 = _mm512_load_ps(p + GEMM_PW * k),
                     w1 = _mm512_load_ps(p + GEMM_PW * k + 16);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            const __m512 xv = _mm512_set1_ps(x[i * xs + k]);
            c[i][0] = _mm512_fmadd_ps(xv, w0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(xv, w1, c[i][1]);
        }
    }
    /* a partial panel: the padded lanes hold zeros and are never written */
    const __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : tail_mask(nr);
    const __mmask16 m1 = nr >= 32 ? (__mmask16)0xffff : nr > 16 ? tail_mask(nr - 16) : 0;
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        float *o = out + i * os;
        if (accumulate) {
            c[i][0] = _mm512_add_ps(c[i][0], _mm512_maskz_loadu_ps(m0, o));
            c[i][1] = _mm512_add_ps(c[i][1], _mm512_maskz_loadu_ps(m1, o + 16));
        }
        _mm512_mask_storeu_ps(o, m0, c[i][0]);
        _mm512_mask_storeu_ps(o + 16, m1, c[i][1]);
    }
}

INLINE void gemm_block_w(const float *x, int64_t xs, int64_t M, const char *w, int64_t ws,
                         int64_t N, int64_t K, float *out, int64_t os, int accumulate,
                         const int wt) {
    const int64_t eb = WBYTES(wt);
    float panel[GEMM_PW * GEMM_PC] __attribute__((aligned(64)));
    for (int64_t k0 = 0; k0 < K; k0 += GEMM_PC) {
        const int64_t kc = K - k0 < GEMM_PC ? K - k0 : GEMM_PC;
        /* later column blocks add onto the first one's partial sums */
        const int acc = accumulate || k0 > 0;
        for (int64_t n = 0; n < N; n += GEMM_PW) {
            const int64_t nr = N - n < GEMM_PW ? N - n : GEMM_PW;
            pack_panel(w + (n * ws + k0) * eb, ws, nr, kc, panel, GEMM_PW, wt);
            const float *xk = x + k0;
            float *o = out + n;
            int64_t m = 0;
            for (; m + 8 <= M; m += 8)
                gemm_tile(xk + m * xs, xs, panel, kc, o + m * os, os, nr, acc, 8);
            switch (M - m) {
            case 7:
                gemm_tile(xk + m * xs, xs, panel, kc, o + m * os, os, nr, acc, 7);
                break;
            case 6:
                gemm_tile(xk + m * xs, xs, panel, kc, o + m * os, os, nr, acc, 6);
                break;
            case 5:
                gemm_tile(xk + m * xs, xs, panel, kc, o + m * os, os, nr, acc, 5);
                break;
            case 4:
                gemm_tile(xk + m * xs, xs, panel, kc, o + m * os, os, nr, acc, 4);
                break;
            case 3:
                gemm_tile(xk + m * xs, xs, panel, kc, o + m * os, os, nr, acc, 3);
                break;
            case 2:
                gemm_tile(xk + m * xs, xs, panel, kc, o + m * os, os, nr, acc, 2);
                break;
            case 1:
                gemm_tile(xk + m * xs, xs, panel, kc, o + m * os, os, nr, acc, 1);
                break;
            default:
                break;
            }
        }
    }
}

static void gemm_block(const float *x, int64_t xs, int64_t M, const float *w, int64_t ws, int64_t N,
                       int64_t K, float *out, int64_t os, int accumulate) {
    gemm_block_w(x, xs, M, (const char *)w, ws, N, K, out, os, accumulate, W_F32);
}

static void gemm_block_f16(const float *x, int64_t xs, int64_t M, const uint16_t *w, int64_t ws,
                           int64_t N, int64_t K, float *out, int64_t os, int accumulate) {
    gemm_block_w(x, xs, M, (const char *)w, ws, N, K, out, os, accumulate, W_F16);
}

static void gemm_block_bf16(const float *x, int64_t xs, int64_t M, const uint16_t *w, int64_t ws,
                            int64_t N, int64_t K, float *out, int64_t os, int accumulate) {
    gemm_block_w(x, xs, M, (const char *)w, ws, N, K, out, os, accumulate, W_BF16);
}

/* ---------------------------------------------------------------- attention P.V */

INLINE void pv_cols(const float *p, int64_t ps, const char *v, int64_t vs, int nk, int64_t i,
                    float *acc, int64_t as, __mmask16 last, const int wt, const int NQ,
                    const int CW) {
    __m512 c[8][4];
#pragma GCC unroll 8
    for (int a = 0; a < NQ; a++)
#pragma GCC unroll 4
        for (int u = 0; u < CW; u++)
            c[a][u] = _mm512_maskz_loadu_ps(u == CW - 1 ? last : 0xffff, acc + a * as + i + 16 * u);
    for (int j = 0; j < nk; j++) {
        const char *vr = v + j * vs;
#pragma GCC unroll 4
        for (int u = 0; u < CW; u++) {
            const __m512 vv = load_w(vr, i + 16 * u, wt, u == CW - 1 ? last : 0xffff);
#pragma GCC unroll 8
            for (int a = 0; a < NQ; a++)
                c[a][u] = _mm512_fmadd_ps(_mm512_set1_ps(p[a * ps + j]), vv, c[a][u]);
        }
    }
#pragma GCC unroll 8
    for (int a = 0; a < NQ; a++)
#pragma GCC unroll 4
        for (int u = 0; u < CW; u++)
            _mm512_mask_storeu_ps(acc + a * as + i + 16 * u, u == CW - 1 ? last : 0xffff, c[a][u]);
}

INLINE void pv_nq(const float *p, int64_t ps, const char *v, int64_t vs, int nk, int64_t D,
                  float *acc, int64_t as, const int wt, const int NQ) {
    const int CW = NQ <= 4 ? 4 : 2;
    int64_t i = 0;
    for (; i + 16 * CW <= D; i += 16 * CW)
        pv_cols(p, ps, v, vs, nk, i, acc, as, 0xffff, wt, NQ, CW);
    for (; i < D; i += 16)
        pv_cols(p, ps, v, vs, nk, i, acc, as, D - i >= 16 ? 0xffff : tail_mask(D - i), wt, NQ, 1);
}

INLINE void pv_dispatch(const float *p, int64_t ps, int nq, const char *v, int64_t vs, int nk,
                        int64_t D, float *acc, int64_t as, const int wt) {
    switch (nq) {
    case 1:
        pv_nq(p, ps, v, vs, nk, D, acc, as, wt, 1);
        break;
    case 2:
        pv_nq(p, ps, v, vs, nk, D, acc, as, wt, 2);
        break;
    case 3:
        pv_nq(p, ps, v, vs, nk, D, acc, as, wt, 3);
        break;
    case 4:
        pv_nq(p, ps, v, vs, nk, D, acc, as, wt, 4);
        break;
    case 5:
        pv_nq(p, ps, v, vs, nk, D, acc, as, wt, 5);
        break;
    case 6:
        pv_nq(p, ps, v, vs, nk, D, acc, as, wt, 6);
        break;
    case 7:
        pv_nq(p, ps, v, vs, nk, D, acc, as, wt, 7);
        break;
    default:
        pv_nq(p, ps, v, vs, nk, D, acc, as, wt, 8);
        break;
    }
}

static void pv_f32(const float *p, int64_t ps, int nq, const char *v, int64_t vs, int nk, int64_t D,
                   float *acc, int64_t as) {
    pv_dispatch(p, ps, nq, v, vs, nk, D, acc, as, W_F32);
}
static void pv_f16(const float *p, int64_t ps, int nq, const char *v, int64_t vs, int nk, int64_t D,
                   float *acc, int64_t as) {
    pv_dispatch(p, ps, nq, v, vs, nk, D, acc, as, W_F16);
}
static void pv_bf16(const float *p, int64_t ps, int nq, const char *v, int64_t vs, int nk,
                    int64_t D, float *acc, int64_t as) {
    pv_dispatch(p, ps, nq, v, vs, nk, D, acc, as, W_BF16);
}

/* ---------------------------------------------------------------- conversions, dot, axpy, exp */

INLINE void widen(const void *src, float *dst, int64_t n, const int wt) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : tail_mask(n - i);
        _mm512_mask_storeu_ps(dst + i, m, load_w((const char *)src, i, wt, m));
    }
}

static void f16_to_f32(const void *src, float *dst, int64_t n) {
    widen(src, dst, n, W_F16);
}
static void bf16_to_f32(const void *src, float *dst, int64_t n) {
    widen(src, dst, n, W_BF16);
}

static float dot(const float *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : tail_mask(n - i);
        s0 = _mm512_fmadd_ps(load_x(a + i, m), load_x(b + i, m), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static void axpy(float a, const float *x, float *y, int64_t n) {
    const __m512 av = _mm512_set1_ps(a);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, load_x(x + i, m), load_x(y + i, m)));
    }
}

/* exp(x) for x <= 0, the same reduction and polynomial as matmul_avx2.c; 2^n by vscalefps. */
INLINE __m512 exp_neg(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

static float exp_sum(float *s, int64_t n, float max) {
    const __m512 mv = _mm512_set1_ps(max);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : tail_mask(n - i);
        const __m512 e = exp_neg(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + i), mv));
        _mm512_mask_storeu_ps(s + i, m, e);
        acc = _mm512_mask_add_ps(acc, m, acc, e);
    }
    return _mm512_reduce_add_ps(acc);
}

/* silu as in matmul_avx2.c: sigmoid from e = exp(-|g|), never overflowing. */
static void silu_mul(const float *g, const float *u, float *o, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : tail_mask(n - i);
        const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
        const __m512 e = exp_neg(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(gv)));
        const __mmask16 neg = _mm512_cmp_ps_mask(gv, _mm512_setzero_ps(), _CMP_LT_OQ);
        const __m512 num = _mm512_mask_blend_ps(neg, one, e);
        const __m512 sig = _mm512_div_ps(num, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(
            o + i, m, _mm512_mul_ps(_mm512_mul_ps(gv, sig), _mm512_maskz_loadu_ps(m, u + i)));
    }
}

const fr_cpu_kernels fr_cpu_kernels_avx512 = {
    .name = "avx512",
    .gemv_f32 = gemv_f32,
    .gemv_f16 = gemv_f16,
    .gemv_bf16 = gemv_bf16,
    .gemm_block = gemm_block,
    .gemm_block_f16 = gemm_block_f16,
    .gemm_block_bf16 = gemm_block_bf16,
    .pv_f32 = pv_f32,
    .pv_f16 = pv_f16,
    .pv_bf16 = pv_bf16,
    .f16_to_f32 = f16_to_f32,
    .bf16_to_f32 = bf16_to_f32,
    .dot = dot,
    .axpy = axpy,
    .exp_sum = exp_sum,
    .silu_mul = silu_mul,
};
