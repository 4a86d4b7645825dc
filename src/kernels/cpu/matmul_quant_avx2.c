/* AVX2 kernels for quantized-weight matmul (compiled with -mavx2 -mfma -mf16c; chosen by CPUID).
 *
 * Integer dot products of 32 bytes: _mm256_maddubs_epi16 multiplies unsigned weight bytes by
 * signed activation bytes into 16-bit pair sums (at most 2*63*127 = 16002 for the 6-bit K
 * format, so never saturating), and _mm256_madd_epi16 widens to 32 bits, with a block scale
 * folded in as the 16-bit multiplier for the K formats. Signed q8_0 weights use the sign trick
 * (|w| as the unsigned operand, x negated where w < 0). The formulas are in quant_dot.h.
 *
 * Every block of a weight row is unpacked once and dotted with up to 4 activation rows while in
 * registers; the driver groups the rows of x in fours, so a GEMV with M <= 8 reads each weight
 * row from memory once. */
#include <float.h>
#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/quant_dot.h"

#define INLINE static inline __attribute__((always_inline))

INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE int hsum128_epi32(__m128i v) {
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(v);
}

INLINE float f16(uint16_t h) {
    return _cvtsh_ss(h);
}

INLINE uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

INLINE __m256i loadu(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/* ---------------------------------------------------------------- activation quantizers */

/* Largest |x| of n (multiple of 8) values, or -1 when one of them is inf or NaN. */
INLINE float absmax(const float *x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f), big = _mm256_set1_ps(FLT_MAX);
    __m256 m = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) {
        const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i));
        m = _mm256_max_ps(m, a);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, big, _CMP_NLE_UQ));
    }
    if (_mm256_movemask_ps(bad)) return -1.0f;
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 32 values times id, rounded half to even, stored as int8; returns their sum. */
INLINE int quant32(const float *x, __m256 id, int8_t *q) {
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
    const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    /* the packs interleave 128-bit lanes; the permute puts the 4-byte groups back in order */
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, p);
    return hsum128_epi32(_mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1)));
}

/* The block scale's reciprocal exactly as the scalar quantizer computes it. */
INLINE float inv_scale(float amax) {
    float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    return id > FLT_MAX ? 0.0f : id;
}

void fr_qmm_quantize_x32_avx2(const float *x, void *row, int64_t K) {
    const int64_t nb = K / FR_QK;
    int8_t *qs = row;
    float *d = (float *)(qs + nb * FR_QK), *s = d + nb;
    for (int64_t b = 0; b < nb; b++) {
        const float amax = absmax(x + b * FR_QK, FR_QK);
        int sum = 0;
        if (amax < 0.0f) {
            memset(qs + b * FR_QK, 0, FR_QK);
            d[b] = __builtin_nanf("");
        } else {
            sum = quant32(x + b * FR_QK, _mm256_set1_ps(inv_scale(amax)), qs + b * FR_QK);
            d[b] = amax / 127.0f;
        }
        s[b] = d[b] * (float)sum;
    }
}

void fr_qmm_quantize_xk_avx2(const float *x, void *row, int64_t K) {
    fr_block_q8_k *y = row;
    for (int64_t b = 0; b < K / FR_QK_K; b++) {
        const float *xb = x + b * FR_QK_K;
        const float amax = absmax(xb, FR_QK_K);
        if (amax < 0.0f) {
            memset(y[b].qs, 0, FR_QK_K);
            y[b].d = __builtin_nanf("");
        } else {
            const __m256 id = _mm256_set1_ps(inv_scale(amax));
            for (int g = 0; g < FR_QK_K / 32; g++)
                quant32(xb + 32 * g, id, y[b].qs + 32 * g);
            y[b].d = amax / 127.0f;
        }
        for (int j = 0; j < FR_QK_K / 16; j++) {
            int s = 0;
            for (int i = 0; i < 16; i++)
                s += y[b].qs[16 * j + i];
            y[b].bsums[j] = (int16_t)s;
        }
    }
}

/* ---------------------------------------------------------------- weight unpacking */

/* 16 bytes of packed nibbles -> 32 bytes in element order (low nibbles are elements 0..15). */
INLINE __m256i nibbles32(const uint8_t *qs) {
    const __m128i b = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(15));
}

/* Bit j of qh -> byte j = 16 when set, 0 otherwise (the fifth bit of the q5 formats). */
INLINE __m256i bits32(uint32_t qh) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                            2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i v =
        _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(16));
}

/* 32 unsigned bytes times 32 signed bytes -> 8 int32 partial sums. */
INLINE __m256i dot_us(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* ---------------------------------------------------------------- legacy formats */

enum { T_Q8_0, T_Q4_0, T_Q4_1, T_Q5_0, T_Q5_1, T_Q4_K, T_Q5_K, T_Q6_K };

/* res[r] = dot(weight row, activation row r) for r < R. */
INLINE void legacy_rows(const char *row, const char *xq, int64_t xs, int64_t nb, const int R,
                        const int T, float *res) {
    const int8_t *xqs[4];
    const float *xd[4], *xsm[4];
    __m256 acc[4];
    float off[4];
    for (int r = 0; r < R; r++) {
        xqs[r] = (const int8_t *)(xq + r * xs);
        xd[r] = (const float *)(xqs[r] + nb * FR_QK);
        xsm[r] = xd[r] + nb;
        acc[r] = _mm256_setzero_ps();
        off[r] = 0.0f;
    }
    for (int64_t b = 0; b < nb; b++) {
        __m256i u;
        float dw, mw = 0.0f;
        if (T == T_Q8_0) {
            const fr_block_q8_0 *w = (const fr_block_q8_0 *)row + b;
            u = loadu(w->qs);
            dw = f16(w->d);
        } else if (T == T_Q4_0) {
            const fr_block_q4_0 *w = (const fr_block_q4_0 *)row + b;
            u = nibbles32(w->qs);
            dw = f16(w->d);
        } else if (T == T_Q4_1) {
            const fr_block_q4_1 *w = (const fr_block_q4_1 *)row + b;
            u = nibbles32(w->qs);
            dw = f16(w->d);
            mw = f16(w->m);
        } else if (T == T_Q5_0) {
            const fr_block_q5_0 *w = (const fr_block_q5_0 *)row + b;
            u = _mm256_or_si256(nibbles32(w->qs), bits32(load_u32(w->qh)));
            dw = f16(w->d);
        } else {
            const fr_block_q5_1 *w = (const fr_block_q5_1 *)row + b;
            u = _mm256_or_si256(nibbles32(w->qs), bits32(load_u32(w->qh)));
            dw = f16(w->d);
            mw = f16(w->m);
        }
        const __m256i uu = T == T_Q8_0 ? _mm256_abs_epi8(u) : u;
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256i xv = loadu(xqs[r] + b * FR_QK);
            if (T == T_Q8_0) xv = _mm256_sign_epi8(xv, u);
            const __m256 p = _mm256_cvtepi32_ps(dot_us(uu, xv));
            acc[r] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * xd[r][b]), acc[r]);
            if (T != T_Q8_0) off[r] += (T == T_Q4_1 || T == T_Q5_1 ? mw : dw) * xsm[r][b];
        }
    }
    const float c = T == T_Q4_0 ? -8.0f : T == T_Q5_0 ? -16.0f : 1.0f;
    for (int r = 0; r < R; r++)
        res[r] = hsum_ps(acc[r]) + c * off[r];
}

/* ---------------------------------------------------------------- K formats */

INLINE void q45k_rows(const char *row, const char *xq, int64_t xs, int64_t nb, const int R,
                      const int T, float *res) {
    const __m256i m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
    const fr_block_q8_k *x[4];
    __m256 acc[4];
    float off[4];
    for (int r = 0; r < R; r++) {
        x[r] = (const fr_block_q8_k *)(xq + r * xs);
        acc[r] = _mm256_setzero_ps();
        off[r] = 0.0f;
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *scales, *qs, *qh = NULL;
        float d, dmin;
        if (T == T_Q4_K) {
            const fr_block_q4_k *w = (const fr_block_q4_k *)row + b;
            scales = w->scales;
            qs = w->qs;
            d = f16(w->d);
            dmin = f16(w->dmin);
        } else {
            const fr_block_q5_k *w = (const fr_block_q5_k *)row + b;
            scales = w->scales;
            qs = w->qs;
            qh = w->qh;
            d = f16(w->d);
            dmin = f16(w->dmin);
        }
        /* the 8 six-bit scales and mins (layout in core/quant.h), four per 32-bit word */
        const uint32_t s0 = load_u32(scales), s1 = load_u32(scales + 4), s2 = load_u32(scales + 8);
        const uint32_t sc_lo = s0 & 0x3f3f3f3fu, m_lo = s1 & 0x3f3f3f3fu;
        const uint32_t sc_hi = (s2 & 0x0f0f0f0fu) | ((s0 >> 2) & 0x30303030u);
        const uint32_t m_hi = ((s2 >> 4) & 0x0f0f0f0fu) | ((s1 >> 2) & 0x30303030u);
        const __m256i sc16 = _mm256_broadcastsi128_si256(
            _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sc_hi, (int)sc_lo)));
        const __m128i mn16 = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)m_hi, (int)m_lo));
        __m256i sumi[4];
        for (int r = 0; r < R; r++)
            sumi[r] = _mm256_setzero_si256();
        __m256i hb = T == T_Q5_K ? loadu(qh) : _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m256i q = loadu(qs + 32 * j);
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if (T == T_Q5_K) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
                hi = _mm256_or_si256(
                    hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), one), 4));
                hb = _mm256_srli_epi16(hb, 2);
            }
            /* scales of sub-blocks 2j and 2j+1 in every 16-bit lane */
            const __m256i sl =
                _mm256_shuffle_epi8(sc16, _mm256_set1_epi16((short)(0x0100 + 0x0404 * j)));
            const __m256i sh =
                _mm256_shuffle_epi8(sc16, _mm256_set1_epi16((short)(0x0302 + 0x0404 * j)));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const __m256i pl =
                    _mm256_madd_epi16(_mm256_maddubs_epi16(lo, loadu(x[r][b].qs + 64 * j)), sl);
                const __m256i ph = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(hi, loadu(x[r][b].qs + 64 * j + 32)), sh);
                sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(pl, ph));
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const float dx = x[r][b].d;
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r]), _mm256_set1_ps(dx * d), acc[r]);
            const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x[r][b].bsums),
                                              _mm_loadu_si128((const __m128i *)x[r][b].bsums + 1));
            off[r] += dx * dmin * (float)hsum128_epi32(_mm_madd_epi16(bs, mn16));
        }
    }
    for (int r = 0; r < R; r++)
        res[r] = hsum_ps(acc[r]) - off[r];
}

INLINE void q6k_rows(const char *row, const char *xq, int64_t xs, int64_t nb, const int R,
                     const int T, float *res) {
    const __m256i m4 = _mm256_set1_epi8(15), three = _mm256_set1_epi8(3);
    const fr_block_q8_k *x[4];
    __m256 acc[4];
    for (int r = 0; r < R; r++) {
        x[r] = (const fr_block_q8_k *)(xq + r * xs);
        acc[r] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const fr_block_q6_k *w = (const fr_block_q6_k *)row + b;
        const float d = f16(w->d);
        __m256i sumi[4];
        for (int r = 0; r < R; r++)
            sumi[r] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i sc16 = _mm256_broadcastsi128_si256(
                _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(w->scales + 8 * h))));
            const __m256i ql0 = loadu(w->ql + 64 * h), ql1 = loadu(w->ql + 64 * h + 32);
            __m256i hb = loadu(w->qh + 32 * h);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                const __m256i l = i == 0   ? _mm256_and_si256(ql0, m4)
                                  : i == 1 ? _mm256_and_si256(ql1, m4)
                                  : i == 2 ? _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4)
                                           : _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4);
                const __m256i u =
                    _mm256_or_si256(l, _mm256_slli_epi16(_mm256_and_si256(hb, three), 4));
                hb = _mm256_srli_epi16(hb, 2);
                /* 16-element sub-blocks 8h+2i (low 128 bits) and 8h+2i+1 (high 128 bits) */
                const __m256i scv = _mm256_shuffle_epi8(
                    sc16, _mm256_set_m128i(_mm_set1_epi16((short)(0x0302 + 0x0404 * i)),
                                           _mm_set1_epi16((short)(0x0100 + 0x0404 * i))));
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    const __m256i p = _mm256_maddubs_epi16(u, loadu(x[r][b].qs + 128 * h + 32 * i));
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p, scv));
                }
            }
        }
        const __m256i sc_all = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->scales));
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            /* the -32 zero point: 32 * sum_j sc_j * bsum_j */
            const __m256i corr = _mm256_madd_epi16(loadu(x[r][b].bsums), sc_all);
            const __m256i tot = _mm256_sub_epi32(sumi[r], _mm256_slli_epi32(corr, 5));
            acc[r] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_set1_ps(x[r][b].d * d), acc[r]);
        }
    }
    for (int r = 0; r < R; r++)
        res[r] = hsum_ps(acc[r]);
}

/* ---------------------------------------------------------------- drivers */

#define DEFINE_MM(NAME, ROWS, T, BLK)                                                              \
    static void NAME(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1) {       \
        const int64_t nb = a->K / (BLK), xs = a->xq_stride;                                        \
        for (int64_t n = n0; n < n1; n++) {                                                        \
            const char *row = a->w + n * a->w_stride;                                              \
            const float bias = a->bias ? a->bias[n] : 0.0f;                                        \
            for (int64_t m = m0; m < m1; m += 4) {                                                 \
                const char *xq = a->xq + m * xs;                                                   \
                float res[4];                                                                      \
                const int64_t R = m1 - m < 4 ? m1 - m : 4;                                         \
                if (R == 4)                                                                        \
                    ROWS(row, xq, xs, nb, 4, T, res);                                              \
                else if (R == 3)                                                                   \
                    ROWS(row, xq, xs, nb, 3, T, res);                                              \
                else if (R == 2)                                                                   \
                    ROWS(row, xq, xs, nb, 2, T, res);                                              \
                else                                                                               \
                    ROWS(row, xq, xs, nb, 1, T, res);                                              \
                for (int64_t r = 0; r < R; r++)                                                    \
                    a->out[(m + r) * a->out_stride + n] = res[r] + bias;                           \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_MM(mm_q8_0, legacy_rows, T_Q8_0, FR_QK)
DEFINE_MM(mm_q4_0, legacy_rows, T_Q4_0, FR_QK)
DEFINE_MM(mm_q4_1, legacy_rows, T_Q4_1, FR_QK)
DEFINE_MM(mm_q5_0, legacy_rows, T_Q5_0, FR_QK)
DEFINE_MM(mm_q5_1, legacy_rows, T_Q5_1, FR_QK)
DEFINE_MM(mm_q4_k, q45k_rows, T_Q4_K, FR_QK_K)
DEFINE_MM(mm_q5_k, q45k_rows, T_Q5_K, FR_QK_K)
DEFINE_MM(mm_q6_k, q6k_rows, T_Q6_K, FR_QK_K)

const fr_qmm_kernels fr_qmm_kernels_avx2 = {
    .name = "avx2",
    .quantize_x32 = fr_qmm_quantize_x32_avx2,
    .quantize_xk = fr_qmm_quantize_xk_avx2,
    .mm =
        {
            [FR_DTYPE_Q8_0] = mm_q8_0,
            [FR_DTYPE_Q4_0] = mm_q4_0,
            [FR_DTYPE_Q4_1] = mm_q4_1,
            [FR_DTYPE_Q5_0] = mm_q5_0,
            [FR_DTYPE_Q5_1] = mm_q5_1,
            [FR_DTYPE_Q4_K] = mm_q4_k,
            [FR_DTYPE_Q5_K] = mm_q5_k,
            [FR_DTYPE_Q6_K] = mm_q6_k,
        },
};
