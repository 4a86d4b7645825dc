/* Inline helpers shared by the x86 quantized-matmul kernels (matmul_quant_avx2.c and
 * matmul_quant_avx512.c, both compiled with at least AVX2 + FMA + F16C). Private to those files. */
#ifndef FR_KERNELS_CPU_QUANT_DOT_X86_H
#define FR_KERNELS_CPU_QUANT_DOT_X86_H

#include <immintrin.h>
#include <stdbool.h>
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

/* ---------------------------------------------------------------- weight unpacking */

/* The fifth bits of a q5 weight pair (qh of blocks a and b) as bytes of 16 or 0, in the paired
 * order: *h0 for elements a0..15 b0..15, *h1 for a16..31 b16..31. One 64-bit broadcast feeds
 * both: each 128-bit lane picks the two qh bytes of its 16 elements. */
INLINE void bits_pair(uint32_t ha, uint32_t hb, __m256i *h0, __m256i *h1) {
    const __m256i v = _mm256_set1_epi64x((long long)((uint64_t)hb << 32 | ha));
    const __m256i s0 = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 4, 4, 4, 4,
                                        4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5);
    const __m256i s1 = _mm256_setr_epi8(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 6, 6, 6, 6,
                                        6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i sixteen = _mm256_set1_epi8(16);
    *h0 = _mm256_and_si256(
        _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(v, s0), bit), bit), sixteen);
    *h1 = _mm256_and_si256(
        _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(v, s1), bit), bit), sixteen);
}

/* ---------------------------------------------------------------- legacy formats */

enum { T_Q8_0, T_Q4_0, T_Q4_1, T_Q5_0, T_Q5_1, T_Q4_K, T_Q5_K, T_Q6_K };

static const int LEGACY_BYTES[] = {34, 18, 20, 22, 24}, LEGACY_QS_AT[] = {2, 2, 4, 6, 8};

/* Blocks b and b+1 (b alone when `single`) of a weight row in the paired activation order:
 * w0 = elements a0..15 b0..15, w1 = a16..31 b16..31 (unsigned values; signed for q8_0). */
INLINE void legacy_pair(const char *row, int64_t b, const int T, const bool single, __m256i *w0,
                        __m256i *w1) {
    const char *pa = row + b * LEGACY_BYTES[T], *pb = pa + LEGACY_BYTES[T];
    if (T == T_Q8_0) {
        const __m256i wa = loadu(pa + 2), wb = single ? _mm256_setzero_si256() : loadu(pb + 2);
        *w0 = _mm256_permute2x128_si256(wa, wb, 0x20);
        *w1 = _mm256_permute2x128_si256(wa, wb, 0x31);
        return;
    }
    const int at = LEGACY_QS_AT[T];
    const __m128i va = _mm_loadu_si128((const __m128i *)(pa + at));
    const __m128i vb = single ? _mm_setzero_si128() : _mm_loadu_si128((const __m128i *)(pb + at));
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(va), vb, 1);
    const __m256i m4 = _mm256_set1_epi8(15);
    *w0 = _mm256_and_si256(v, m4);
    *w1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (T == T_Q5_0 || T == T_Q5_1) { /* fifth bits: qh sits right before qs */
        const uint32_t ha = load_u32((const uint8_t *)pa + at - 4);
        const uint32_t hb = single ? 0 : load_u32((const uint8_t *)pb + at - 4);
        __m256i h0, h1;
        bits_pair(ha, hb, &h0, &h1);
        *w0 = _mm256_or_si256(*w0, h0);
        *w1 = _mm256_or_si256(*w1, h1);
    }
}

/* Integer dot of one weight pair (w0, w1; u = |w| for q8_0) with activations x0, x1: int32
 * lanes 0..3 belong to block a, 4..7 to block b. */
INLINE __m256i legacy_dot(const int T, __m256i w0, __m256i w1, __m256i u0, __m256i u1, __m256i x0,
                          __m256i x1) {
    const __m256i ones = _mm256_set1_epi16(1);
    if (T == T_Q8_0) /* |w| * (x with w's sign); 16-bit sums can reach 32512: widen each */
        return _mm256_add_epi32(
            _mm256_madd_epi16(_mm256_maddubs_epi16(u0, _mm256_sign_epi8(x0, w0)), ones),
            _mm256_madd_epi16(_mm256_maddubs_epi16(u1, _mm256_sign_epi8(x1, w1)), ones));
    /* unsigned <= 31: the two 16-bit pair sums add without overflow (<= 15748) */
    return _mm256_madd_epi16(
        _mm256_add_epi16(_mm256_maddubs_epi16(w0, x0), _mm256_maddubs_epi16(w1, x1)), ones);
}

/* f16 d (and m) of `n` consecutive blocks from their first 4 bytes: d_a, m_a, d_b, m_b, ...
 * (d repeated in place of m for the formats without a min), as f32. */
INLINE __m256 legacy_scales(const char *row, int64_t b, const int T, const int n) {
    /* composed in general registers (two 64-bit moves into the vector unit instead of an insert
     * per block: the vector ports are the GEMV's bottleneck) */
    const uint8_t *p = (const uint8_t *)row + b * LEGACY_BYTES[T];
    const bool has_min = T == T_Q4_1 || T == T_Q5_1;
    if (!has_min && n == 4) {
        /* the four d side by side in one word, doubled into d,d pairs by one byte shuffle: fewer
         * general-register ops and one vector move instead of two (q4_0 GEMV +10% measured) */
        uint64_t h = 0;
        for (int i = 0; i < 4; i++) {
            uint16_t d;
            memcpy(&d, p + i * LEGACY_BYTES[T], 2);
            h |= (uint64_t)d << (16 * i);
        }
        const __m128i dup = _mm_setr_epi8(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7);
        return _mm256_cvtph_ps(_mm_shuffle_epi8(_mm_cvtsi64_si128((long long)h), dup));
    }
    uint64_t h[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i++) {
        uint16_t d;
        memcpy(&d, p + i * LEGACY_BYTES[T], 2);
        h[i] = has_min ? load_u32(p + i * LEGACY_BYTES[T]) : d * 0x10001u; /* d,m or d,d */
    }
    const __m128i v =
        _mm_set_epi64x((long long)(h[2] | h[3] << 32), (long long)(h[0] | h[1] << 32));
    return _mm256_cvtph_ps(v);
}

/* ---------------------------------------------------------------- drivers */

/* Bytes per weight block, by T_* index. */
static const int QMM_BLOCK_BYTES[] = {34, 18, 20, 22, 24, 144, 176, 210};

/* GEMV streams weight rows from DRAM: asking for the row that lies ~QMM_PREFETCH_BYTES ahead
 * keeps more misses in flight per core than the hardware prefetchers alone. Prefetches never
 * fault, so running past the matrix end is harmless. */
#ifndef QMM_PREFETCH_BYTES
#define QMM_PREFETCH_BYTES 2048
#endif
INLINE int64_t qmm_prefetch_rows(int64_t row_bytes) {
    return (QMM_PREFETCH_BYTES + row_bytes - 1) / row_bytes;
}
INLINE void qmm_prefetch_row(uintptr_t p, int64_t row_bytes) {
    if (QMM_PREFETCH_BYTES <= 0) return;
    const uintptr_t end = p + (uintptr_t)row_bytes;
    for (uintptr_t l = p & ~(uintptr_t)63; l < end; l += 64)
        _mm_prefetch((const char *)l, _MM_HINT_T0);
}

/* One kernel per weight type: rows n0..n1 of w against activation rows m0..m1, at most four
 * activation rows per pass over a weight row (ROWS is specialised for R = 1..4).
 * Up to 8 activation rows (GEMV): weight rows outer, so each is fetched from memory once.
 * More (a GEMM tile): groups of 4 activation rows outer, so the group stays in L1 while the
 * tile's few weight rows are re-read from L1/L2. */
#define QMM_GROUP(ROWS, T)                                                                         \
    do {                                                                                           \
        const char *row = a->w + n * a->w_stride, *xq = a->xq + m * xs;                            \
        const float bias = a->bias ? a->bias[n] : 0.0f;                                            \
        float res[4];                                                                              \
        const int64_t R = m1 - m < 4 ? m1 - m : 4;                                                 \
        if (R == 4)                                                                                \
            ROWS(row, xq, xs, nb, 4, T, res);                                                      \
        else if (R == 3)                                                                           \
            ROWS(row, xq, xs, nb, 3, T, res);                                                      \
        else if (R == 2)                                                                           \
            ROWS(row, xq, xs, nb, 2, T, res);                                                      \
        else                                                                                       \
            ROWS(row, xq, xs, nb, 1, T, res);                                                      \
        for (int64_t r = 0; r < R; r++)                                                            \
            a->out[(m + r) * a->out_stride + n] = res[r] + bias;                                   \
    } while (0)

#define DEFINE_MM(NAME, ROWS, T, BLK)                                                              \
    static void NAME(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1) {       \
        const int64_t nb = a->K / (BLK), xs = a->xq_stride;                                        \
        if (m1 - m0 <= 8) {                                                                        \
            const int64_t ahead = qmm_prefetch_rows(nb * QMM_BLOCK_BYTES[T]);                      \
            for (int64_t n = n0; n < n1; n++) {                                                    \
                qmm_prefetch_row((uintptr_t)a->w + (uintptr_t)((n + ahead) * a->w_stride),         \
                                 nb * QMM_BLOCK_BYTES[T]);                                         \
                for (int64_t m = m0; m < m1; m += 4)                                               \
                    QMM_GROUP(ROWS, T);                                                            \
            }                                                                                      \
        } else {                                                                                   \
            for (int64_t m = m0; m < m1; m += 4)                                                   \
                for (int64_t n = n0; n < n1; n++)                                                  \
                    QMM_GROUP(ROWS, T);                                                            \
        }                                                                                          \
    }

#endif
