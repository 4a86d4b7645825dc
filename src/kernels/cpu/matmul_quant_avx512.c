/* AVX-512 kernels for quantized-weight matmul (compiled with AVX-512 F/BW/VL/DQ/BF16/VNNI;
 * chosen only when CPUID reports AVX-512 VNNI). Same formulas as the AVX2 file (quant_dot.h),
 * 64 bytes at a time:
 *   legacy formats: one weight pair (two 32-element blocks, in the paired activation order) per
 *     register; _mm512_dpbusd_epi32 (VNNI) multiplies unsigned weight bytes by signed
 *     activation bytes and sums groups of 4 straight into int32 (q8_0: |w| times x with w's
 *     sign, via a byte mask).
 *   K formats: _mm512_maddubs_epi16 then _mm512_dpwssd_epi32 (VNNI), which multiplies the 16-bit
 *     pair sums by the sub-block scales and accumulates in one instruction; alternate chunks go
 *     to separate accumulators so the VNNI latency does not serialise the loop.
 * The quantized activations come from the AVX2 quantizers (identical results). */
#include "kernels/cpu/quant_dot_x86.h"

INLINE __m512i loadu512(const void *p) {
    return _mm512_loadu_si512(p);
}

/* 16-bit lane i of the result = lane idx[i] of v (v's lanes beyond the indices are ignored). */
INLINE __m512i lanes16(const int16_t *idx, __m512i v) {
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(idx), v);
}

/* ---------------------------------------------------------------- legacy formats */

/* A weight pair as one register in the paired order (a0..15 b0..15 a16..31 b16..31). */
INLINE __m512i pair512(const char *row, int64_t b, const int T, const bool single) {
    const char *pa = row + b * LEGACY_BYTES[T], *pb = pa + LEGACY_BYTES[T];
    if (T == T_Q8_0) {
        const __m256i wa = loadu(pa + 2), wb = single ? _mm256_setzero_si256() : loadu(pb + 2);
        const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(wa), wb, 1);
        return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
    }
    const int at = LEGACY_QS_AT[T];
    const __m128i va = _mm_loadu_si128((const __m128i *)(pa + at));
    const __m128i vb = single ? _mm_setzero_si128() : _mm_loadu_si128((const __m128i *)(pb + at));
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(va), vb, 1);
    __m512i z =
        _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1),
                         _mm512_set1_epi8(15));
    if (T == T_Q5_0 || T == T_Q5_1) { /* fifth bits: qh sits right before qs */
        const uint64_t ha = load_u32((const uint8_t *)pa + at - 4);
        const uint64_t hb = single ? 0 : load_u32((const uint8_t *)pb + at - 4);
        const uint64_t bits =
            (ha & 0xffffu) | (hb & 0xffffu) << 16 | (ha >> 16) << 32 | (hb >> 16) << 48;
        z = _mm512_mask_add_epi8(z, (__mmask64)bits, z, _mm512_set1_epi8(16));
    }
    return z;
}

INLINE __m512i pair_dot512(const int T, __m512i w, __m512i x) {
    if (T == T_Q8_0) {
        x = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
        w = _mm512_abs_epi8(w);
    }
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, x);
}

/* Scales of blocks a, b (lanes 0 and 2 of sc) spread over a pair's int32 lanes:
 * a for 0..3 and 8..11, b for 4..7 and 12..15; `base` selects the second pair in sc. */
INLINE __m512 spread(__m256 sc, const int base) {
    const __m512i idx = _mm512_add_epi32(
        _mm512_set_epi32(2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0), _mm512_set1_epi32(base));
    return _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(sc));
}

INLINE void legacy_rows(const char *row, const char *xq, int64_t xs, int64_t nb, const int R,
                        const int T, float *res) {
    const int64_t np = (nb + 1) / 2, full = nb / 2;
    const int8_t *xqs[4];
    const float *xsc[4];
    __m512 acc0[4], acc1[4];
    __m256 off[4];
    for (int r = 0; r < R; r++) {
        xqs[r] = (const int8_t *)(xq + r * xs);
        xsc[r] = (const float *)(xqs[r] + np * 2 * FR_QK);
        acc0[r] = acc1[r] = _mm512_setzero_ps();
        off[r] = _mm256_setzero_ps();
    }
    int64_t p = 0;
    for (; p + 2 <= full; p += 2) { /* two pairs: 4 blocks share one scale computation */
        const __m512i w0 = pair512(row, 2 * p, T, false), w1 = pair512(row, 2 * p + 2, T, false);
        const __m256 wsc = legacy_scales(row, 2 * p, T, 4);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m512i d0 = pair_dot512(T, w0, loadu512(xqs[r] + 64 * p));
            const __m512i d1 = pair_dot512(T, w1, loadu512(xqs[r] + 64 * p + 64));
            const __m256 sc = _mm256_mul_ps(wsc, _mm256_loadu_ps(xsc[r] + 4 * p));
            acc0[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), spread(sc, 0), acc0[r]);
            acc1[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), spread(sc, 4), acc1[r]);
            if (T != T_Q8_0) off[r] = _mm256_add_ps(off[r], sc);
        }
    }
    for (; p < np; p++) { /* a last full pair and/or a lone last block */
        const bool single = p == full;
        const __m512i w = single ? pair512(row, 2 * p, T, true) : pair512(row, 2 * p, T, false);
        /* d_a m_a d_b m_b; a lone block has zeros for b, as do the activations padded after it */
        const __m128 wsc = _mm256_castps256_ps128(legacy_scales(row, 2 * p, T, single ? 1 : 2));
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m512i d = pair_dot512(T, w, loadu512(xqs[r] + 64 * p));
            const __m128 sc = _mm_mul_ps(wsc, _mm_loadu_ps(xsc[r] + 4 * p));
            acc0[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), spread(_mm256_castps128_ps256(sc), 0),
                                      acc0[r]);
            if (T != T_Q8_0) off[r] = _mm256_add_ps(off[r], _mm256_zextps128_ps256(sc));
        }
    }
    const float c = T == T_Q4_0 ? -8.0f : T == T_Q5_0 ? -16.0f : 1.0f;
    for (int r = 0; r < R; r++) {
        const __m256 o = _mm256_and_ps(
            off[r], _mm256_castsi256_ps(_mm256_setr_epi32(0, -1, 0, -1, 0, -1, 0, -1)));
        res[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r])) + c * hsum_ps(o);
    }
}

/* ---------------------------------------------------------------- K formats */

/* permutexvar indices: q4_k/q5_k chunk j uses scale 2j for lanes 0..15 and 2j+1 for 16..31 */
static const int16_t Q4K_IDX[4][32] __attribute__((aligned(64))) = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
     3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
     5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5},
    {6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
     7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7},
};
/* q6_k: 64 elements = four 16-element sub-blocks, scale index s0..s0+3 in lane groups of 8 */
static const int16_t Q6K_IDX[4][32] __attribute__((aligned(64))) = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
     2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5,
     6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
    {8,  8,  8,  8,  8,  8,  8,  8,  9,  9,  9,  9,  9,  9,  9,  9,
     10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13,
     14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15},
};

INLINE void q45k_rows(const char *row, const char *xq, int64_t xs, int64_t nb, const int R,
                      const int T, float *res) {
    const __m512i m4 = _mm512_set1_epi8(15), one = _mm512_set1_epi8(1);
    /* the high 256 bits of the q5 bit planes start one bit further along (sub-block 2j+1) */
    const __m512i hshift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(1), 1);
    const fr_block_q8_k *x[4];
    __m512 acc[4];
    __m128 off[4]; /* min terms, 4 partial sums per row */
    for (int r = 0; r < R; r++) {
        x[r] = (const fr_block_q8_k *)(xq + r * xs);
        acc[r] = _mm512_setzero_ps();
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
        const uint32_t s0 = load_u32(scales), s1 = load_u32(scales + 4), s2 = load_u32(scales + 8);
        const uint32_t sc_lo = s0 & 0x3f3f3f3fu, m_lo = s1 & 0x3f3f3f3fu;
        const uint32_t sc_hi = (s2 & 0x0f0f0f0fu) | ((s0 >> 2) & 0x30303030u);
        const uint32_t m_hi = ((s2 >> 4) & 0x0f0f0f0fu) | ((s1 >> 2) & 0x30303030u);
        const __m512i sc16 =
            _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)sc_hi, (int)sc_lo)));
        const __m128i mn16 = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)m_hi, (int)m_lo));
        __m512i hb = _mm512_setzero_si512();
        if (T == T_Q5_K) hb = _mm512_srlv_epi16(_mm512_broadcast_i64x4(loadu(qh)), hshift);
        __m512i sumi[4], sumj[4]; /* even / odd chunks: two independent VNNI chains */
        for (int r = 0; r < R; r++)
            sumi[r] = sumj[r] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m256i q = loadu(qs + 32 * j);
            /* sub-block 2j (low nibbles) then 2j+1 (high nibbles): x order */
            __m512i u = _mm512_and_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1), m4);
            if (T == T_Q5_K) {
                u = _mm512_or_si512(u, _mm512_slli_epi16(_mm512_and_si512(hb, one), 4));
                hb = _mm512_srli_epi16(hb, 2);
            }
            const __m512i scv = lanes16(Q4K_IDX[j], sc16);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const __m512i p = _mm512_maddubs_epi16(u, loadu512(x[r][b].qs + 64 * j));
                if (j & 1)
                    sumj[r] = _mm512_dpwssd_epi32(sumj[r], p, scv);
                else
                    sumi[r] = _mm512_dpwssd_epi32(sumi[r], p, scv);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const float dx = x[r][b].d;
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(sumi[r], sumj[r])),
                                     _mm512_set1_ps(dx * d), acc[r]);
            const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x[r][b].bsums),
                                              _mm_loadu_si128((const __m128i *)x[r][b].bsums + 1));
            off[r] = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_madd_epi16(bs, mn16)), _mm_set1_ps(dx * dmin),
                                  off[r]);
        }
    }
    for (int r = 0; r < R; r++)
        res[r] = _mm512_reduce_add_ps(_mm512_sub_ps(acc[r], _mm512_zextps128_ps512(off[r])));
}

INLINE void q6k_rows(const char *row, const char *xq, int64_t xs, int64_t nb, const int R,
                     const int T, float *res) {
    const __m512i m4 = _mm512_set1_epi8(15), three = _mm512_set1_epi8(3);
    /* the high 256 bits hold elements 32..63 of each pair: their qh bits sit 2 higher */
    const __m512i hshift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const fr_block_q8_k *x[4];
    __m512 acc[4];
    for (int r = 0; r < R; r++) {
        x[r] = (const fr_block_q8_k *)(xq + r * xs);
        acc[r] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const fr_block_q6_k *w = (const fr_block_q6_k *)row + b;
        const float d = f16(w->d);
        const __m256i sc_all = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->scales));
        const __m512i sc512 = _mm512_castsi256_si512(sc_all);
        __m512i sumi[4], sumj[4]; /* two independent VNNI chains */
        for (int r = 0; r < R; r++)
            sumi[r] = sumj[r] = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m512i ql = loadu512(w->ql + 64 * h);
            const __m512i hb =
                _mm512_srlv_epi16(_mm512_broadcast_i64x4(loadu(w->qh + 32 * h)), hshift);
            /* elements 0..63 of the half, then 64..127 */
            const __m512i u0 = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                               _mm512_slli_epi16(_mm512_and_si512(hb, three), 4));
            const __m512i u1 = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, 4), three), 4));
            const __m512i sc0 = lanes16(Q6K_IDX[2 * h], sc512);
            const __m512i sc1 = lanes16(Q6K_IDX[2 * h + 1], sc512);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const int8_t *xr = x[r][b].qs + 128 * h;
                sumi[r] = _mm512_dpwssd_epi32(sumi[r], _mm512_maddubs_epi16(u0, loadu512(xr)), sc0);
                sumj[r] =
                    _mm512_dpwssd_epi32(sumj[r], _mm512_maddubs_epi16(u1, loadu512(xr + 64)), sc1);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            /* the -32 zero point: 32 * sum_j sc_j * bsum_j */
            const __m256i corr = _mm256_madd_epi16(loadu(x[r][b].bsums), sc_all);
            const __m512i tot =
                _mm512_sub_epi32(_mm512_add_epi32(sumi[r], sumj[r]),
                                 _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 5)));
            acc[r] =
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot), _mm512_set1_ps(x[r][b].d * d), acc[r]);
        }
    }
    for (int r = 0; r < R; r++)
        res[r] = _mm512_reduce_add_ps(acc[r]);
}

/* ---------------------------------------------------------------- drivers */

DEFINE_MM(mm_q8_0, legacy_rows, T_Q8_0, FR_QK)
DEFINE_MM(mm_q4_0, legacy_rows, T_Q4_0, FR_QK)
DEFINE_MM(mm_q4_1, legacy_rows, T_Q4_1, FR_QK)
DEFINE_MM(mm_q5_0, legacy_rows, T_Q5_0, FR_QK)
DEFINE_MM(mm_q5_1, legacy_rows, T_Q5_1, FR_QK)
DEFINE_MM(mm_q4_k, q45k_rows, T_Q4_K, FR_QK_K)
DEFINE_MM(mm_q5_k, q45k_rows, T_Q5_K, FR_QK_K)
DEFINE_MM(mm_q6_k, q6k_rows, T_Q6_K, FR_QK_K)

const fr_qmm_kernels fr_qmm_kernels_avx512 = {
    .name = "avx512-vnni",
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
    .gemm = fr_qgemm_avx512,
};
