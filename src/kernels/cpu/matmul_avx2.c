/* AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; selected by CPUID only).
 *
 * GEMV: one weight row is loaded (and widened to f32: F16C for f16, a 16-bit shift for bf16)
 * 8 elements at a time and multiplied into M accumulators, one per activation row, so weights
 * are read once whatever M is. For small M the k loop is unrolled U times with independent
 * accumulators so FMA latency never limits the memory stream (M*U <= 8 accumulators).
 *
 * GEMM block: a 6 x 16 outer-product micro tile (6 x rows times 16 w rows, 12 accumulators, 2
 * weight registers and one broadcast x register) over weights repacked k-major per 16-row panel;
 * it replaced a 4 x 3 dot-product tile whose per-k loads and horizontal sums held f16 GEMM
 * (M=128, K=1024, 2 Zen 3 cores) near 108 GFLOP/s against ~140 for this one. */
#include <immintrin.h>
#include <math.h>

#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/gemm_x86.h"

/* Software prefetch distance (bytes) along a weight row in GEMV: more cache lines in flight per
 * core than the out-of-order window alone would keep (the f16/bf16 loops spend more instructions
 * per line than f32). 0 disables. Machine-dependent: on a Xeon (Sapphire Rapids) slice of 2 cores,
 * 4096 took f16 GEMV 4096x4096 from 15.5 to 24.4 GB/s (1024: 17.4, 2048: 19.4); on the 2-core
 * Zen 3 VM this table now runs on, Qwen3-0.6B F16 tg32 against 4096 (7 alternated rounds): 0
 * 1.03x, 512 1.10x, 1024 1.17x, 2048 1.04x (another 5 rounds: 1024 1.31x, 8192 1.21x). */
#ifndef GEMV_PREFETCH
#define GEMV_PREFETCH 1024
#endif

INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---------------------------------------------------------------- GEMV */

/* R weight rows (1 or 2) at a time, each dotted with M activation rows, k unrolled U times:
 * R*M*U accumulators. Two rows per pass halve the activation loads per FMA, which keeps M = 2..4
 * (batched decode) close to the weight stream's bandwidth instead of L2's. */
INLINE void gemv_block(const fr_gemv_args *a, int64_t n, const int wt, const int M, const int U,
                       const int R) {
    const int64_t K = a->K, xs = a->x_stride;
    const float *x = a->x;
    const char *wr[2] = {a->w + n * a->w_stride, a->w + (n + R - 1) * a->w_stride};
    __m256 acc[2][8][4];
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int m = 0; m < M; m++)
#pragma GCC unroll 4
            for (int u = 0; u < U; u++)
                acc[r][m][u] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 * U <= K; k += 8 * U) {
        if (GEMV_PREFETCH) {
            for (int r = 0; r < R; r++)
                for (int b = 0; b < 8 * U * WBYTES(wt); b += 64)
                    _mm_prefetch(wr[r] + k * WBYTES(wt) + GEMV_PREFETCH + b, _MM_HINT_T0);
        }
#pragma GCC unroll 4
        for (int u = 0; u < U; u++) {
            __m256 wv[2];
#pragma GCC unroll 2
            for (int r = 0; r < R; r++)
                wv[r] = load8_w(wr[r], k + 8 * u, wt);
#pragma GCC unroll 8
            for (int m = 0; m < M; m++) {
                const __m256 xv = _mm256_loadu_ps(x + m * xs + k + 8 * u);
#pragma GCC unroll 2
                for (int r = 0; r < R; r++)
                    acc[r][m][u] = _mm256_fmadd_ps(wv[r], xv, acc[r][m][u]);
            }
        }
    }
    for (; k + 8 <= K; k += 8) {
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            const __m256 wv = load8_w(wr[r], k, wt);
#pragma GCC unroll 8
            for (int m = 0; m < M; m++)
                acc[r][m][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + m * xs + k), acc[r][m][0]);
        }
    }
    float tail[2][8] = {{0}};
    for (; k < K; k++)
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            const float wv = load1_w(wr[r], k, wt);
#pragma GCC unroll 8
            for (int m = 0; m < M; m++)
                tail[r][m] += wv * x[m * xs + k];
        }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
        const float b = a->bias ? a->bias[n + r] : 0.0f;
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) {
            __m256 s = acc[r][m][0];
#pragma GCC unroll 4
            for (int u = 1; u < U; u++)
                s = _mm256_add_ps(s, acc[r][m][u]);
            a->out[m * a->out_stride + n + r] = hsum(s) + tail[r][m] + b;
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
    /* accumulators R*M*U <= 8, plus R weight registers and one activation register */
    switch (a->M) {
    case 1:
        gemv_rows(a, n0, n1, wt, 1, 4, 1);
        break;
    case 2:
        gemv_rows(a, n0, n1, wt, 2, 2, 2);
        break;
    case 3:
        gemv_rows(a, n0, n1, wt, 3, 1, 2);
        break;
    case 4:
        gemv_rows(a, n0, n1, wt, 4, 1, 2);
        break;
    case 5:
        gemv_rows(a, n0, n1, wt, 5, 1, 1);
        break;
    case 6:
        gemv_rows(a, n0, n1, wt, 6, 1, 1);
        break;
    case 7:
        gemv_rows(a, n0, n1, wt, 7, 1, 1);
        break;
    default:
        gemv_rows(a, n0, n1, wt, 8, 1, 1);
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

/* Weights are repacked GEMM_PC columns at a time into panels of 16 rows stored k-major (the 16
 * weights of one k contiguous: two vectors), so the micro tile is an outer product: per k, MR
 * broadcasts of x times two weight vectors into MR x 2 accumulators that stay in registers for
 * the whole panel, with no horizontal sums. The panel (16 KiB) lives on the stack and stays in
 * L1 while every x row streams past it. */
#define GEMM_PC 256

INLINE void gemm_tile(const float *x, int64_t xs, const float *p, int64_t K, float *out, int64_t os,
                      int64_t nr, int accumulate, const int MR) {
    __m256 c[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        c[i][0] = _mm256_setzero_ps();
        c[i][1] = _mm256_setzero_ps();
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < K; k++) {
        const __m256 w0 = _mm256_load_ps(p + 16 * k), w1 = _mm256_load_ps(p + 16 * k + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __m256 xv = _mm256_broadcast_ss(x + i * xs + k);
            c[i][0] = _mm256_fmadd_ps(xv, w0, c[i][0]);
            c[i][1] = _mm256_fmadd_ps(xv, w1, c[i][1]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        float *o = out + i * os;
        if (nr == 16) {
            if (accumulate) {
                c[i][0] = _mm256_add_ps(c[i][0], _mm256_loadu_ps(o));
                c[i][1] = _mm256_add_ps(c[i][1], _mm256_loadu_ps(o + 8));
            }
            _mm256_storeu_ps(o, c[i][0]);
            _mm256_storeu_ps(o + 8, c[i][1]);
        } else {
            /* a partial panel: the padded lanes hold zeros and are never written */
            float t[16];
            _mm256_storeu_ps(t, c[i][0]);
            _mm256_storeu_ps(t + 8, c[i][1]);
            for (int64_t j = 0; j < nr; j++)
                o[j] = accumulate ? o[j] + t[j] : t[j];
        }
    }
}

INLINE void gemm_block_w(const float *x, int64_t xs, int64_t M, const char *w, int64_t ws,
                         int64_t N, int64_t K, float *out, int64_t os, int accumulate,
                         const int wt) {
    const int64_t eb = WBYTES(wt);
    float panel[16 * GEMM_PC] __attribute__((aligned(32)));
    for (int64_t k0 = 0; k0 < K; k0 += GEMM_PC) {
        const int64_t kc = K - k0 < GEMM_PC ? K - k0 : GEMM_PC;
        /* later column blocks add onto the first one's partial sums */
        const int acc = accumulate || k0 > 0;
        for (int64_t n = 0; n < N; n += 16) {
            const int64_t nr = N - n < 16 ? N - n : 16;
            pack_panel(w + (n * ws + k0) * eb, ws, nr, kc, panel, 16, wt);
            const float *xk = x + k0;
            float *o = out + n;
            int64_t m = 0;
            for (; m + 6 <= M; m += 6)
                gemm_tile(xk + m * xs, xs, panel, kc, o + m * os, os, nr, acc, 6);
            switch (M - m) {
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

/* Columns are done CW vectors at a time with NQ accumulator rows held in registers across the
 * whole key tile; each v element is loaded (and widened) once per tile. */
INLINE void pv_cols(const float *p, int64_t ps, const char *v, int64_t vs, int nk, int64_t i,
                    float *acc, int64_t as, const int wt, const int NQ, const int CW) {
    __m256 c[8][4];
#pragma GCC unroll 8
    for (int a = 0; a < NQ; a++)
#pragma GCC unroll 4
        for (int u = 0; u < CW; u++)
            c[a][u] = _mm256_loadu_ps(acc + a * as + i + 8 * u);
    for (int j = 0; j < nk; j++) {
        const char *vr = v + j * vs;
#pragma GCC unroll 4
        for (int u = 0; u < CW; u++) {
            const __m256 vv = load8_w(vr, i + 8 * u, wt);
#pragma GCC unroll 8
            for (int a = 0; a < NQ; a++)
                c[a][u] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + a * ps + j), vv, c[a][u]);
        }
    }
#pragma GCC unroll 8
    for (int a = 0; a < NQ; a++)
#pragma GCC unroll 4
        for (int u = 0; u < CW; u++)
            _mm256_storeu_ps(acc + a * as + i + 8 * u, c[a][u]);
}

INLINE void pv_nq(const float *p, int64_t ps, const char *v, int64_t vs, int nk, int64_t D,
                  float *acc, int64_t as, const int wt, const int NQ) {
    const int CW = NQ <= 2 ? 4 : NQ <= 4 ? 2 : 1;
    int64_t i = 0;
    for (; i + 8 * CW <= D; i += 8 * CW)
        pv_cols(p, ps, v, vs, nk, i, acc, as, wt, NQ, CW);
    for (; i + 8 <= D; i += 8)
        pv_cols(p, ps, v, vs, nk, i, acc, as, wt, NQ, 1);
    for (; i < D; i++)
        for (int j = 0; j < nk; j++) {
            const float vv = load1_w(v + j * vs, i, wt);
            for (int a = 0; a < NQ; a++)
                acc[a * as + i] += p[a * ps + j] * vv;
        }
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

/* ---------------------------------------------------------------- conversions, dot, axpy */

static void f16_to_f32(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    for (; i < n; i++)
        dst[i] = _cvtsh_ss(s[i]);
}

static void bf16_to_f32(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, load8_w((const char *)s, i, W_BF16));
    for (; i < n; i++)
        dst[i] = fr_bf16_to_f32(s[i]);
}

static float dot(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum(_mm256_add_ps(s0, s1));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void axpy(float a, const float *x, float *y, int64_t n) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

/* exp(x) for x <= 0 in the Cephes style: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two
 * parts so r is exact), e^r by a degree-6 polynomial, 2^n built in the exponent bits. About 1 ulp;
 * inputs below -87 are clamped (their e^x is far below one ulp of the softmax sum). */
INLINE __m256 exp_neg(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static float exp_sum(float *s, int64_t n, float max) {
    const __m256 mv = _mm256_set1_ps(max);
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp_neg(_mm256_sub_ps(_mm256_loadu_ps(s + i), mv));
        _mm256_storeu_ps(s + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum(acc);
    for (; i < n; i++)
        sum += (s[i] = expf(s[i] - max));
    return sum;
}

/* silu(g) = g * sigmoid(g), with sigmoid from e = exp(-|g|) <= 1 so nothing overflows:
 * sigmoid = 1/(1+e) for g >= 0 and e/(1+e) for g < 0. */
static void silu_mul(const float *g, const float *u, float *o, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i);
        const __m256 e = exp_neg(_mm256_or_ps(gv, sign)); /* exp(-|g|) */
        const __m256 num = _mm256_blendv_ps(one, e, gv);  /* sign bit of g picks e */
        const __m256 sig = _mm256_div_ps(num, _mm256_add_ps(one, e));
        _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_mul_ps(gv, sig), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++)
        o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

const fr_cpu_kernels fr_cpu_kernels_avx2 = {
    .name = "avx2",
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
