/* AVX2 kernels for quantized-weight matmul (compiled with -mavx2 -mfma -mf16c; chosen by CPUID).
 *
 * Integer dot products of 32 bytes: _mm256_maddubs_epi16 multiplies unsigned weight bytes by
 * signed activation bytes into 16-bit pair sums (at most 2*63*127 = 16002 for the 6-bit K
 * format, so never saturating), and _mm256_madd_epi16 widens to 32 bits, with a block scale
 * folded in as the 16-bit multiplier for the K formats. Signed q8_0 weights use the sign trick
 * (|w| as the unsigned operand, x negated where w < 0). The formulas are in quant_dot.h.
 *
 * Legacy formats go two blocks per 256-bit register, in the paired activation layout
 * (quant_dot.h), four blocks per loop step so the f16 scales of four blocks convert at once.
 * Every block of a weight row is unpacked once and dotted with up to 4 activation rows while in
 * registers; the driver (quant_dot_x86.h) groups the rows of x in fours, so a GEMV with M <= 8
 * reads each weight row from memory once. */
#include <float.h>
#include <string.h>

#include "kernels/cpu/quant_dot_x86.h"

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

/* 32 values times id, rounded half to even, as int8 in element order; *sum gets their sum. */
INLINE __m256i quant32(const float *x, __m256 id, int *sum) {
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
    const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    *sum = hsum128_epi32(_mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1)));
    /* the packs interleave 128-bit lanes; the permute puts the 4-byte groups back in order */
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* The block scale's reciprocal exactly as the scalar quantizer computes it. */
INLINE float inv_scale(float amax) {
    float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    return id > FLT_MAX ? 0.0f : id;
}

/* One legacy activation block: quants, scale d and s = d * sum (NaN for a non-finite block);
 * *sum gets the quants' sum (0 for a non-finite block). */
INLINE __m256i quant_block(const float *x, float *d, float *s, int *sum) {
    const float amax = absmax(x, FR_QK);
    *sum = 0;
    if (amax < 0.0f) {
        *d = *s = __builtin_nanf("");
        return _mm256_setzero_si256();
    }
    const __m256i q = quant32(x, _mm256_set1_ps(inv_scale(amax)), sum);
    *d = amax / 127.0f;
    *s = *d * (float)*sum;
    return q;
}

void fr_qmm_quantize_x32_paired_avx2(const float *x, void *row, int64_t K) {
    const int64_t nb = K / FR_QK, np = (nb + 1) / 2;
    int8_t *qs = row;
    float *sc = (float *)(qs + np * 2 * FR_QK);
    for (int64_t p = 0; p < np; p++) {
        float *f = sc + 4 * p;
        int sum;
        const __m256i qa = quant_block(x + 2 * p * FR_QK, &f[0], &f[1], &sum);
        __m256i qb = _mm256_setzero_si256();
        f[2] = f[3] = 0.0f;
        if (2 * p + 1 < nb) qb = quant_block(x + (2 * p + 1) * FR_QK, &f[2], &f[3], &sum);
        _mm256_storeu_si256((__m256i *)(qs + 64 * p), _mm256_permute2x128_si256(qa, qb, 0x20));
        _mm256_storeu_si256((__m256i *)(qs + 64 * p + 32), _mm256_permute2x128_si256(qa, qb, 0x31));
    }
}

void fr_qmm_quantize_x32_plain_avx2(const float *x, void *row, int64_t K) {
    const int64_t nb = K / FR_QK;
    int8_t *qs = row;
    float *d = (float *)(qs + nb * FR_QK), *s = d + nb;
    int32_t *c8 = (int32_t *)(s + nb);
    for (int64_t b = 0; b < nb; b++) {
        int sum;
        _mm256_storeu_si256((__m256i *)(qs + b * FR_QK),
                            quant_block(x + b * FR_QK, &d[b], &s[b], &sum));
        c8[b] = -8 * sum;
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
            for (int g = 0; g < FR_QK_K / 32; g++) {
                int sum;
                _mm256_storeu_si256((__m256i *)(y[b].qs + 32 * g), quant32(xb + 32 * g, id, &sum));
            }
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

/* ---------------------------------------------------------------- legacy formats */

/* Blocks 4q..4q+3 of one weight row: four 256-bit weight vectors in the paired order (w), the
 * same as unsigned maddubs operands (u: |w| for q8_0), and the 4 blocks' scales (legacy_scales). */
typedef struct {
    __m256i w[4], u[4];
    __m256 sc;
} legacy_wquad;

INLINE void legacy_wquad_load(const char *row, int64_t q, const int T, legacy_wquad *wq) {
    legacy_pair(row, 4 * q, T, false, &wq->w[0], &wq->w[1]);
    legacy_pair(row, 4 * q + 2, T, false, &wq->w[2], &wq->w[3]);
    wq->sc = legacy_scales(row, 4 * q, T, 4);
    for (int i = 0; i < 4; i++)
        wq->u[i] = T == T_Q8_0 ? _mm256_abs_epi8(wq->w[i]) : wq->w[i];
}

/* One weight quad against one activation quad (x: its 128 bytes, xs: its 8 floats d_a s_a d_b s_b
 * d_c s_c d_d s_d): the weight scales times xs put the block scales in the even lanes and the
 * offset terms of quant_dot.h in the odd ones, summed into off. */
INLINE void legacy_wquad_dot(const int T, const legacy_wquad *wq, const __m256i x[4], __m256 xs,
                             __m256 *acc0, __m256 *acc1, __m256 *off) {
    const __m256i lo = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2);
    const __m256i hi = _mm256_setr_epi32(4, 4, 4, 4, 6, 6, 6, 6);
    const __m256i d01 = legacy_dot(T, wq->w[0], wq->w[1], wq->u[0], wq->u[1], x[0], x[1]);
    const __m256i d23 = legacy_dot(T, wq->w[2], wq->w[3], wq->u[2], wq->u[3], x[2], x[3]);
    const __m256 sc = _mm256_mul_ps(wq->sc, xs);
    *acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d01), _mm256_permutevar8x32_ps(sc, lo), *acc0);
    *acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d23), _mm256_permutevar8x32_ps(sc, hi), *acc1);
    if (T != T_Q8_0) *off = _mm256_add_ps(*off, sc);
}

INLINE void legacy_xquad_load(const int8_t *x, __m256i v[4]) {
    for (int i = 0; i < 4; i++)
        v[i] = loadu(x + 32 * i);
}

/* Two weight pairs (blocks 4q..4q+3) against R activation rows. */
INLINE void legacy_quad(const char *row, int64_t q, const int R, const int T,
                        const int8_t *const *xqs, const float *const *xsc, __m256 *acc0,
                        __m256 *acc1, __m256 *off) {
    legacy_wquad wq;
    legacy_wquad_load(row, q, T, &wq);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        __m256i x[4];
        legacy_xquad_load(xqs[r] + 128 * q, x);
        legacy_wquad_dot(T, &wq, x, _mm256_loadu_ps(xsc[r] + 8 * q), &acc0[r], &acc1[r], &off[r]);
    }
}

/* One weight pair p (block 2p alone when `single`) against R activation rows. */
INLINE void legacy_step(const char *row, int64_t p, const bool single, const int R, const int T,
                        const int8_t *const *xqs, const float *const *xsc, __m256 *acc,
                        __m256 *off) {
    const __m256i lo = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2);
    __m256i w0, w1;
    legacy_pair(row, 2 * p, T, single, &w0, &w1);
    /* d_a m_a d_b m_b; a lone block has zeros for b, and so do the activations padded after it */
    const __m128 wsc = _mm256_castps256_ps128(legacy_scales(row, 2 * p, T, single ? 1 : 2));
    const __m256i u0 = T == T_Q8_0 ? _mm256_abs_epi8(w0) : w0;
    const __m256i u1 = T == T_Q8_0 ? _mm256_abs_epi8(w1) : w1;
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        const __m256i dot =
            legacy_dot(T, w0, w1, u0, u1, loadu(xqs[r] + 64 * p), loadu(xqs[r] + 64 * p + 32));
        const __m128 sc = _mm_mul_ps(wsc, _mm_loadu_ps(xsc[r] + 4 * p));
        const __m256 sc8 = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(sc), lo);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), sc8, acc[r]);
        if (T != T_Q8_0) off[r] = _mm256_add_ps(off[r], _mm256_zextps128_ps256(sc));
    }
}

/* A row's result from its two accumulators and its offset terms (odd lanes of off). */
INLINE float legacy_finish(const int T, __m256 acc0, __m256 acc1, __m256 off) {
    const float c = T == T_Q4_0 ? -8.0f : T == T_Q5_0 ? -16.0f : 1.0f;
    const __m256 o =
        _mm256_and_ps(off, _mm256_castsi256_ps(_mm256_setr_epi32(0, -1, 0, -1, 0, -1, 0, -1)));
    return hsum_ps(_mm256_fmadd_ps(o, _mm256_set1_ps(c), _mm256_add_ps(acc0, acc1)));
}

/* res[r] = dot(weight row, activation row r) for r < R, paired activation layout. */
INLINE void legacy_rows(const char *row, const char *xq, int64_t xs, int64_t nb, const int R,
                        const int T, float *res) {
    const int64_t np = (nb + 1) / 2, full = nb / 2;
    const int8_t *xqs[4];
    const float *xsc[4];
    /* two accumulator sets so FMA latency never paces the loop */
    __m256 acc0[4], acc1[4], off[4];
    for (int r = 0; r < R; r++) {
        xqs[r] = (const int8_t *)(xq + r * xs);
        xsc[r] = (const float *)(xqs[r] + np * 2 * FR_QK);
        acc0[r] = acc1[r] = off[r] = _mm256_setzero_ps();
    }
    int64_t p = 0;
    {
        /* pointers advance per quad, so the loads inside use constant offsets (indexing by the
         * quad number cost ~10 address instructions per quad: q8_0 GEMV +6 % hot) */
        const char *rq = row;
        const int8_t *xqq[4];
        const float *xscq[4];
        for (int r = 0; r < R; r++) {
            xqq[r] = xqs[r];
            xscq[r] = xsc[r];
        }
        for (; p + 2 <= full; p += 2) {
            legacy_quad(rq, 0, R, T, xqq, xscq, acc0, acc1, off);
            rq += 4 * LEGACY_BYTES[T];
            for (int r = 0; r < R; r++) {
                xqq[r] += 4 * FR_QK;
                xscq[r] += 8;
            }
        }
    }
    if (p < full) legacy_step(row, p++, false, R, T, xqs, xsc, acc0, off);
    if (p < np) legacy_step(row, p, true, R, T, xqs, xsc, acc1, off);
    for (int r = 0; r < R; r++)
        res[r] = legacy_finish(T, acc0[r], acc1[r], off[r]);
}

/* Decode (one activation row): weight rows n and n + ws bytes on, against the paired activation
 * row xq. Each activation quad is loaded once for both rows, and the two rows' independent chains
 * interleave; on cached weights q4_0 runs 1.3-1.4x the one-row loop (used where legacy_gemv_pairs
 * says). */
INLINE void legacy_rows_w2(const char *row, int64_t ws, const char *xq, int64_t nb, const int T,
                           float res[2]) {
    const int64_t np = (nb + 1) / 2, full = nb / 2;
    const int8_t *xqs[1] = {(const int8_t *)xq};
    const float *xsc[1] = {(const float *)(xqs[0] + np * 2 * FR_QK)};
    __m256 acc0[2], acc1[2], off[2];
    for (int i = 0; i < 2; i++)
        acc0[i] = acc1[i] = off[i] = _mm256_setzero_ps();
    const char *rq = row;
    const int8_t *xp = xqs[0];
    const float *sp = xsc[0];
    int64_t p = 0;
    for (; p + 2 <= full; p += 2, rq += 4 * LEGACY_BYTES[T], xp += 4 * FR_QK, sp += 8) {
        __m256i x[4];
        legacy_xquad_load(xp, x);
        const __m256 xs = _mm256_loadu_ps(sp);
#pragma GCC unroll 2
        for (int i = 0; i < 2; i++) {
            legacy_wquad wq;
            legacy_wquad_load(rq + i * ws, 0, T, &wq);
            legacy_wquad_dot(T, &wq, x, xs, &acc0[i], &acc1[i], &off[i]);
        }
    }
    for (int i = 0; i < 2; i++) {
        int64_t q = p;
        if (q < full) legacy_step(row + i * ws, q++, false, 1, T, xqs, xsc, &acc0[i], &off[i]);
        if (q < np) legacy_step(row + i * ws, q, true, 1, T, xqs, xsc, &acc1[i], &off[i]);
        res[i] = legacy_finish(T, acc0[i], acc1[i], off[i]);
    }
}

/* ---------------------------------------------------------------- K formats */

INLINE void q45k_rows(const char *row, const char *xq, int64_t xs, int64_t nb, const int R,
                      const int T, float *res) {
    const __m256i m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
    const fr_block_q8_k *x[4];
    __m256 acc[4];
    __m128 off[4]; /* min terms, 4 partial sums per row */
    for (int r = 0; r < R; r++) {
        x[r] = (const fr_block_q8_k *)(xq + r * xs);
        acc[r] = _mm256_setzero_ps();
        off[r] = _mm_setzero_ps();
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
            off[r] = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_madd_epi16(bs, mn16)), _mm_set1_ps(dx * dmin),
                                  off[r]);
        }
    }
    for (int r = 0; r < R; r++)
        res[r] = hsum_ps(_mm256_sub_ps(acc[r], _mm256_zextps128_ps256(off[r])));
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

/* Decode of the 4- and 5-bit legacy formats: weight rows in pairs (legacy_rows_w2) from n0 on;
 * returns the first row left (at most one) for the general kernel. Their GEMVs are compute-bound
 * on AVX2 (cached q4_0 weights run ~13 GB/s per core, about what DRAM gives two cores): Qwen3-0.6B
 * Q4_0 tg 1.06x / 1.056x (6 / 8 alternated rounds). q8_0 reads twice the bytes per weight and is
 * memory-bound: paired rows were 0.99x / 0.92x there (two streams per core), so it keeps one. */
INLINE int64_t legacy_gemv_pairs(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m,
                                 const int T) {
    const int64_t nb = a->K / FR_QK, rb = nb * QMM_BLOCK_BYTES[T];
    const int64_t ahead = qmm_prefetch_rows(rb);
    const char *xq = a->xq + m * a->xq_stride;
    int64_t n = n0;
    for (; n + 2 <= n1; n += 2) {
        for (int i = 0; i < 2; i++)
            qmm_prefetch_row((uintptr_t)a->w + (uintptr_t)((n + i + ahead) * a->w_stride), rb);
        float res[2];
        legacy_rows_w2(a->w + n * a->w_stride, a->w_stride, xq, nb, T, res);
        for (int i = 0; i < 2; i++)
            a->out[m * a->out_stride + n + i] = res[i] + (a->bias ? a->bias[n + i] : 0.0f);
    }
    return n;
}

#define DEFINE_MM_LEGACY(NAME, T)                                                                  \
    DEFINE_MM(NAME##_rows, legacy_rows, T, FR_QK)                                                  \
    static void NAME(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1) {       \
        if (m1 - m0 == 1) n0 = legacy_gemv_pairs(a, n0, n1, m0, T);                                \
        NAME##_rows(a, n0, n1, m0, m1);                                                            \
    }

DEFINE_MM(mm_q8_0, legacy_rows, T_Q8_0, FR_QK)
DEFINE_MM_LEGACY(mm_q4_0, T_Q4_0)
DEFINE_MM_LEGACY(mm_q4_1, T_Q4_1)
DEFINE_MM_LEGACY(mm_q5_0, T_Q5_0)
DEFINE_MM_LEGACY(mm_q5_1, T_Q5_1)
DEFINE_MM(mm_q4_k, q45k_rows, T_Q4_K, FR_QK_K)
DEFINE_MM(mm_q5_k, q45k_rows, T_Q5_K, FR_QK_K)
DEFINE_MM(mm_q6_k, q6k_rows, T_Q6_K, FR_QK_K)

const fr_qmm_kernels fr_qmm_kernels_avx2 = {
    .name = "avx2",
    .quantize_x32 = fr_qmm_quantize_x32_paired_avx2,
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
    .quantize_x32_plain = fr_qmm_quantize_x32_plain_avx2,
    .gemm = fr_qgemm_avx2,
};
