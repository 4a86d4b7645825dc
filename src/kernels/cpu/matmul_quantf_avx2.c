/* AVX2 kernels for quantized weights on f32 activations (FR_QUANT_ACT_F32; driver in
 * matmul_quantf.c). Compiled with -mavx2 -mfma -mf16c.
 *
 * Each step dequantizes 32 weights (one legacy block, or one 32-element piece of a K super-block)
 * into four registers of 8 floats and multiplies them with up to 4 activation rows while they sit
 * in registers. Dequantization: 8 quant bytes zero/sign-extended to 32-bit lanes (vpmovzxbd
 * straight from memory; the low and high nibbles of the same 8 bytes come from one load, an AND
 * and a shift), converted to float, then one FMA q * scale + offset, where the offset carries the
 * zero point or the min. That FMA reproduces fr_dequantize_row's values: for the _0 formats,
 * q8_0 and q6_k the product and sum are exact in f32 (f16 scale x small integers); for q4_1/q5_1
 * (q*d + m) and q4_k/q5_k (d*sc*q - dmin*m) the exact value is rounded once, as there.
 *
 * Accumulators: 4 independent chains per row for 1-2 rows, 2 per row for 3-4 rows, so the FMA
 * latency (4 cycles, 2 per cycle) does not pace the loop. */
#include "kernels/cpu/quant_dot_x86.h"

/* 8 bytes widened to 32-bit lanes (unsigned / signed). */
INLINE __m256i u8x8(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}
INLINE __m256i i8x8(const int8_t *p) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

INLINE __m256 fma_i32(__m256i q, __m256 scale, __m256 offset) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), scale, offset);
}

/* acc[0..NA) += w[0..3] . x[0..31], NA = 2 or 4 chains. */
INLINE void fma32(__m256 *acc, const int NA, const __m256 *w, const float *x) {
    acc[0] = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(x), acc[0]);
    acc[1] = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(x + 8), acc[1]);
    acc[2 % NA] = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(x + 16), acc[2 % NA]);
    acc[3 % NA] = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(x + 24), acc[3 % NA]);
}

/* ---------------------------------------------------------------- legacy formats */

/* Block b of a legacy weight row as 32 floats: w[i] = elements 8i..8i+7. */
INLINE void deq_legacy(const char *row, int64_t b, const int T, __m256 *w) {
    const uint8_t *p = (const uint8_t *)row + b * LEGACY_BYTES[T];
    uint16_t dh;
    memcpy(&dh, p, 2);
    const __m256 d = _mm256_set1_ps(f16(dh));
    if (T == T_Q8_0) {
        for (int i = 0; i < 4; i++)
            w[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(i8x8((const int8_t *)p + 2 + 8 * i)), d);
        return;
    }
    const uint8_t *qs = p + LEGACY_QS_AT[T];
    const __m256i m4 = _mm256_set1_epi32(15);
    /* byte j holds element j (low nibble) and j+16 (high nibble) */
    const __m256i p0 = u8x8(qs), p1 = u8x8(qs + 8);
    __m256i q[4] = {_mm256_and_si256(p0, m4), _mm256_and_si256(p1, m4), _mm256_srli_epi32(p0, 4),
                    _mm256_srli_epi32(p1, 4)};
    if (T == T_Q5_0 || T == T_Q5_1) { /* bit 4 of element e is bit e of qh, right before qs */
        const __m256i h = _mm256_set1_epi32((int)load_u32(qs - 4));
        const __m256i sixteen = _mm256_set1_epi32(16);
        const __m256i bit0 = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        for (int i = 0; i < 4; i++) {
            const __m256i bit = _mm256_slli_epi32(bit0, 8 * i);
            const __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(h, bit), bit);
            q[i] = _mm256_or_si256(q[i], _mm256_and_si256(set, sixteen));
        }
    }
    __m256 off;
    if (T == T_Q4_0)
        off = _mm256_mul_ps(d, _mm256_set1_ps(-8.0f));
    else if (T == T_Q5_0)
        off = _mm256_mul_ps(d, _mm256_set1_ps(-16.0f));
    else {
        uint16_t mh;
        memcpy(&mh, p + 2, 2);
        off = _mm256_set1_ps(f16(mh));
    }
    for (int i = 0; i < 4; i++)
        w[i] = fma_i32(q[i], d, off);
}

/* res[r] = dot(weight row, f32 activation row r), r < R; rows xs bytes apart. */
INLINE void legacy_rows_f(const char *row, const char *x, int64_t xs, int64_t nb, const int R,
                          const int T, float *res) {
    enum { NA_MAX = 4 };
    const int NA = R <= 2 ? 4 : 2;
    const float *xr[4];
    __m256 acc[4][NA_MAX];
    for (int r = 0; r < R; r++) {
        xr[r] = (const float *)(x + r * xs);
        for (int i = 0; i < NA_MAX; i++)
            acc[r][i] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        __m256 w[4];
        deq_legacy(row, b, T, w);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            fma32(acc[r], NA, w, xr[r] + b * FR_QK);
    }
    for (int r = 0; r < R; r++) {
        __m256 s = _mm256_add_ps(acc[r][0], acc[r][1]);
        if (NA == 4) s = _mm256_add_ps(s, _mm256_add_ps(acc[r][2], acc[r][3]));
        res[r] = hsum_ps(s);
    }
}

/* ---------------------------------------------------------------- K formats */

/* Per super-block: the scale and offset of each 32-element piece (q4_k/q5_k: 8 pieces, one
 * sub-block each) or each 16-element sub-block (q6_k: 16), broadcast per 8 lanes by the caller. */
typedef struct {
    float sc[16], off[16];
} kscales;

INLINE void k_scales(const char *row, int64_t b, const int T, kscales *s) {
    if (T == T_Q6_K) {
        const fr_block_q6_k *w = (const fr_block_q6_k *)row + b;
        const __m256 d = _mm256_set1_ps(f16(w->d)), m32 = _mm256_set1_ps(-32.0f);
        for (int i = 0; i < 2; i++) {
            /* d * sc is exact in f32 (11 x 8 bits), so -32 * d * sc is too */
            const __m256 ds = _mm256_mul_ps(d, _mm256_cvtepi32_ps(i8x8(w->scales + 8 * i)));
            _mm256_storeu_ps(s->sc + 8 * i, ds);
            _mm256_storeu_ps(s->off + 8 * i, _mm256_mul_ps(ds, m32));
        }
        return;
    }
    const uint8_t *scales;
    float d, dmin;
    if (T == T_Q4_K) {
        const fr_block_q4_k *w = (const fr_block_q4_k *)row + b;
        scales = w->scales;
        d = f16(w->d);
        dmin = f16(w->dmin);
    } else {
        const fr_block_q5_k *w = (const fr_block_q5_k *)row + b;
        scales = w->scales;
        d = f16(w->d);
        dmin = f16(w->dmin);
    }
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        fr_q4k_scale_min(j, scales, &sc, &m);
        s->sc[j] = d * (float)sc;
        s->off[j] = -(dmin * (float)m);
    }
}

/* Piece j (elements 32j..32j+31) of super-block b as 32 floats. */
INLINE void deq_k(const char *row, int64_t b, const int j, const int T, const kscales *s,
                  __m256 *w) {
    const __m256i m4 = _mm256_set1_epi32(15);
    if (T == T_Q6_K) {
        const fr_block_q6_k *blk = (const fr_block_q6_k *)row + b;
        /* element e = 32i + l of half h: low 4 bits in ql[64h + 32(i%2) + l] (high nibble for
         * i >= 2), high 2 bits at bit 2i of qh[32h + l] */
        const int h = j / 4, i = j % 4;
        const uint8_t *ql = blk->ql + 64 * h + 32 * (i % 2), *qh = blk->qh + 32 * h;
        const __m256i three = _mm256_set1_epi32(3);
        for (int k = 0; k < 4; k++) {
            const __m256i l = i < 2 ? _mm256_and_si256(u8x8(ql + 8 * k), m4)
                                    : _mm256_srli_epi32(u8x8(ql + 8 * k), 4);
            const __m256i hb = _mm256_and_si256(_mm256_srli_epi32(u8x8(qh + 8 * k), 2 * i), three);
            const __m256i q = _mm256_or_si256(l, _mm256_slli_epi32(hb, 4));
            const int sb = 8 * h + 2 * i + k / 2; /* 16-element sub-block */
            w[k] = fma_i32(q, _mm256_broadcast_ss(&s->sc[sb]), _mm256_broadcast_ss(&s->off[sb]));
        }
        return;
    }
    const uint8_t *qs, *qh = NULL;
    if (T == T_Q4_K) {
        qs = ((const fr_block_q4_k *)row + b)->qs;
    } else {
        qs = ((const fr_block_q5_k *)row + b)->qs;
        qh = ((const fr_block_q5_k *)row + b)->qh;
    }
    qs += 32 * (j / 2); /* sub-block 2c in the low nibbles of qs[32c..], 2c+1 in the high */
    const __m256 sc = _mm256_broadcast_ss(&s->sc[j]), off = _mm256_broadcast_ss(&s->off[j]);
    const __m256i one = _mm256_set1_epi32(1);
    for (int k = 0; k < 4; k++) {
        const __m256i v = u8x8(qs + 8 * k);
        __m256i q = j % 2 ? _mm256_srli_epi32(v, 4) : _mm256_and_si256(v, m4);
        if (T == T_Q5_K) { /* bit 4 of element l of sub-block j: bit j of qh[l] */
            const __m256i hb = _mm256_and_si256(_mm256_srli_epi32(u8x8(qh + 8 * k), j), one);
            q = _mm256_or_si256(q, _mm256_slli_epi32(hb, 4));
        }
        w[k] = fma_i32(q, sc, off);
    }
}

INLINE void k_rows_f(const char *row, const char *x, int64_t xs, int64_t nb, const int R,
                     const int T, float *res) {
    enum { NA_MAX = 4 };
    const int NA = R <= 2 ? 4 : 2;
    const float *xr[4];
    __m256 acc[4][NA_MAX];
    for (int r = 0; r < R; r++) {
        xr[r] = (const float *)(x + r * xs);
        for (int i = 0; i < NA_MAX; i++)
            acc[r][i] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        kscales s;
        k_scales(row, b, T, &s);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m256 w[4];
            deq_k(row, b, j, T, &s, w);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                fma32(acc[r], NA, w, xr[r] + b * FR_QK_K + 32 * j);
        }
    }
    for (int r = 0; r < R; r++) {
        __m256 s = _mm256_add_ps(acc[r][0], acc[r][1]);
        if (NA == 4) s = _mm256_add_ps(s, _mm256_add_ps(acc[r][2], acc[r][3]));
        res[r] = hsum_ps(s);
    }
}

/* ---------------------------------------------------------------- drivers */

DEFINE_MM(mmf_q8_0, legacy_rows_f, T_Q8_0, FR_QK)
DEFINE_MM(mmf_q4_0, legacy_rows_f, T_Q4_0, FR_QK)
DEFINE_MM(mmf_q4_1, legacy_rows_f, T_Q4_1, FR_QK)
DEFINE_MM(mmf_q5_0, legacy_rows_f, T_Q5_0, FR_QK)
DEFINE_MM(mmf_q5_1, legacy_rows_f, T_Q5_1, FR_QK)
DEFINE_MM(mmf_q4_k, k_rows_f, T_Q4_K, FR_QK_K)
DEFINE_MM(mmf_q5_k, k_rows_f, T_Q5_K, FR_QK_K)
DEFINE_MM(mmf_q6_k, k_rows_f, T_Q6_K, FR_QK_K)

const fr_qmmf_kernels fr_qmmf_kernels_avx2 = {
    .name = "avx2-f32",
    .mm =
        {
            [FR_DTYPE_Q8_0] = mmf_q8_0,
            [FR_DTYPE_Q4_0] = mmf_q4_0,
            [FR_DTYPE_Q4_1] = mmf_q4_1,
            [FR_DTYPE_Q5_0] = mmf_q5_0,
            [FR_DTYPE_Q5_1] = mmf_q5_1,
            [FR_DTYPE_Q4_K] = mmf_q4_k,
            [FR_DTYPE_Q5_K] = mmf_q5_k,
            [FR_DTYPE_Q6_K] = mmf_q6_k,
        },
};
