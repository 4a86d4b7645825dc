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

#define INLINE static inline __attribute__((always_inline))

enum { W_F32, W_F16, W_BF16 };
#define WBYTES(wt) ((wt) == W_F32 ? 4 : 2)

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

/* 4 x rows by 4 w rows: 16 accumulators, 4 weight registers, one x register. */
INLINE void gemm_tile(const float *x, int64_t xs, const float *w, int64_t ws, int64_t K, float *out,
                      int64_t os, int accumulate, const int MR, const int NR) {
    __m512 c[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++)
            c[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 16) {
        const __mmask16 msk = K - k >= 16 ? 0xffff : tail_mask(K - k);
        __m512 wv[4];
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++)
            wv[j] = _mm512_maskz_loadu_ps(msk, w + j * ws + k);
#pragma GCC unroll 4
        for (int i = 0; i < MR; i++) {
            const __m512 xv = _mm512_maskz_loadu_ps(msk, x + i * xs + k);
#pragma GCC unroll 4
            for (int j = 0; j < NR; j++)
                c[i][j] = _mm512_fmadd_ps(xv, wv[j], c[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++) {
            const float v = _mm512_reduce_add_ps(c[i][j]);
            out[i * os + j] = accumulate ? out[i * os + j] + v : v;
        }
}

#define TILE(mr, nr)                                                                               \
    gemm_tile(x + m * xs, xs, w + n * ws, ws, K, out + m * os + n, os, accumulate, mr, nr)

#define ROWS(nr)                                                                                   \
    do {                                                                                           \
        for (; m + 4 <= M; m += 4)                                                                 \
            TILE(4, nr);                                                                           \
        for (; m < M; m++)                                                                         \
            TILE(1, nr);                                                                           \
    } while (0)

static void gemm_block(const float *x, int64_t xs, int64_t M, const float *w, int64_t ws, int64_t N,
                       int64_t K, float *out, int64_t os, int accumulate) {
    for (int64_t n = 0; n < N; n += 4) {
        const int64_t nr = N - n < 4 ? N - n : 4;
        int64_t m = 0;
        switch (nr) {
        case 4:
            ROWS(4);
            break;
        case 3:
            ROWS(3);
            break;
        case 2:
            ROWS(2);
            break;
        default:
            ROWS(1);
            break;
        }
    }
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
