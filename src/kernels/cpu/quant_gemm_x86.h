/* Packed GEMM for quantized weights on 8-bit activations (prefill, M > 8 rows), x86: included by
 * matmul_quant_gemm_avx2.c (AVX2) and matmul_quant_gemm_avx512.c (the same kernels built with
 * AVX-512 VNNI, which the QG_VNNI parts below use on 256-bit registers: vpdpbusd adds the 4 byte
 * products of each lane straight into 32 bits, vpdpwssd folds the scale multiply of the 16-bit
 * sums and their widening add into one instruction). Both builds pack the same panels.
 *
 * Why: the GEMV-style kernels (matmul_quant_avx2.c) dot one weight row with one activation row
 * at a time; each pair pays for its own block scaling (convert, scale product, shuffles, FMA)
 * and a horizontal sum, so only ~1 of 4 vector instructions is a multiply. Here a task first
 * repacks its (up to 16) weight rows into panels of 8 rows in which one 256-bit register holds
 * 4 consecutive weights of each of the 8 rows (32-bit lane j = row j). A broadcast quad of
 * activation bytes then feeds one maddubs that advances 8 output dot products at once, the 8
 * rows' block scales are one vector, and the outputs of a panel come out as one vector (no
 * horizontal sums). The packing is paid once per task and serves all its activation rows
 * (up to 128). The two panels of a task run side by side (panel_rp: P = 2), so each broadcast
 * quad feeds two maddubs and 8 sums are in flight.
 *
 * Legacy panel layout (q4_0, q4_1, q5_0, q5_1), per block b (PANEL_BLOCK_BYTES = 320): 8 groups
 * g of 32 bytes, lane j of group g = the unsigned values (nibble, plus 16 for a set qh bit) of row
 * j's elements 4g..4g+3; then the 8 rows' d and m (q4_1 / q5_1) as f32.
 * Activations: the plain layout of quant_dot.h (int8 qs in element order, then d[], s[], c8[]).
 * Per block: out += dw*dx*(sum(u*q) + zp) (+ mw*s for q4_1 / q5_1), zp = c8 = -8*sum(q) for
 * q4_0 and 2*c8 for q5_0 (quant_dot.h: the zero point in integers). Pair sums are at most
 * 2*15*127 = 3810 for 4-bit values, so the 8 groups of a block add up in 16 bits (<= 30480)
 * before one widening; 5-bit values reach 2*31*127 = 7874 and are widened every 4 groups.
 *
 * q8_0 panel layout: the same bytes per block, lane j of group g = row j's signed weights
 * 4g..4g+3, then the 8 rows' d. maddubs wants one unsigned operand, so each group multiplies |w|
 * (one abs per group, shared by the activation rows) with the activation quad given w's sign
 * (one sign per group and row): |w| * sign(q, w) = w * q exactly, as |w| <= 128 fits unsigned.
 * (Packing w + 128 instead and subtracting 128*sum(q) would save the sign, but its pair sums reach
 * 2*255*127 and saturate; VNNI has no 16-bit pair sums and does exactly that.) A pair sum is at
 * most 2*128*127 = 32512, so two of them can already overflow 16 bits: each group is widened to 32
 * bits with madd(..., 1) before it is added.
 *
 * q4_k / q5_k panel layout, per super-block of 256 (Q4K_PANEL_BYTES = 2496): for each sub-block j
 * of 32, 256 bytes of unsigned value groups as in q4_0 (q5_k: the fifth bit joined at packing);
 * then 8 vectors of int16 (sc_j, sc_j) per row lane (one per j), 4 vectors of int16 (m_2p, m_2p+1)
 * per row lane, the 8 rows' d and dmin as f32. Activations stay q8_k (one d per 256, bsums per 16),
 * the layout the q4_k GEMV and the scalar kernels use, so every variant still sees bit-identical
 * quants (quant_dot.h) and the f32 scaling happens once per super-block instead of per 32. Per
 * sub-block, the 16-bit group sums (<= 8 * 3810 = 30480, as q4_0; q5_k: two sums of 4 groups) are
 * widened by madd with the sc vector, which also applies the 6-bit scale: sum_j sc_j*sum(u*q) <= 8
 * * 63 * 60960 < 2^31. The mins: sum_j m_j*bsum_j (bsum_j = bsums[2j] + bsums[2j+1], |.| <= 4064
 * fits int16) by madd of the (m_2p, m_2p+1) vectors with the broadcast bsum pair, <= 8 * 63 * 4064.
 * Per super-block then: out += d*dx*isum - dmin*dx*msum (quant_dot.h)
 *
 * q6_k panel layout, per super-block of 256 (Q6K_PANEL_BYTES = 2848): 64 groups of 32 bytes, lane j
 * of group g = the unsigned 6-bit values (0..63) of row j's elements 4g..4g+3 (element order of the
 * super-block); then 16 vectors of int16 (sc_s, sc_s) per row lane (one per 16-element sub-block
 * s), 8 vectors of int16 (sc_2p, sc_2p+1) per row lane for the zero point, the 8 rows' d as f32.
 * Activations are q8_k, as for the q6_k GEMV. A maddubs pair sum is now up to 2*63*127 = 16002,
 * so only two groups add up in 16 bits (32004) before madd with the sc vector widens them and
 * applies the int8 scale (two madds per sub-block): sum_s sc_s*sum(u*q) <= 16 * 128 * 128016
 * < 2^31. The -32 zero point: corr = sum_s sc_s*bsum_s by madd of the (sc_2p, sc_2p+1) vectors
 * with the broadcast bsum pair (bsums[2p], bsums[2p+1]), <= 16 * 128 * 2032. Per super-block:
 *   out += d*dx*(isum - 32*corr)                                       (quant_dot.h) */
#ifndef FR_KERNELS_CPU_QUANT_GEMM_X86_H
#define FR_KERNELS_CPU_QUANT_GEMM_X86_H

#include "kernels/cpu/quant_dot_x86.h"

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define QG_VNNI 1
#else
#define QG_VNNI 0
#endif

#define PANEL_BLOCK_BYTES (8 * 32 + 2 * 8 * 4) /* groups, d, m (q4_1 / q5_1; else unused) */
/* q4_k: 8 sub-blocks of nibble groups, 8 sc vectors, 4 min vectors, d and dmin */
#define Q4K_SC_AT       (8 * 256)
#define Q4K_MIN_AT      (Q4K_SC_AT + 8 * 32)
#define Q4K_D_AT        (Q4K_MIN_AT + 4 * 32)
#define Q4K_PANEL_BYTES (Q4K_D_AT + 2 * 32)
/* q6_k: 64 groups of 6-bit values, 16 sc vectors, 8 sc pair vectors, d */
#define Q6K_SC_AT       (64 * 32)
#define Q6K_PAIR_AT     (Q6K_SC_AT + 16 * 32)
#define Q6K_D_AT        (Q6K_PAIR_AT + 8 * 32)
#define Q6K_PANEL_BYTES (Q6K_D_AT + 32)

/* 8x8 transpose of 32-bit words: c[g] = word g of q[0..7] (lane j = row j). Within each 128-bit
 * half, rows 4h..4h+3 are transposed as 4x4 blocks; the halves (words 0..3 and 4..7) are then
 * joined across rows 0..3 and 4..7. */
INLINE void transpose_words(const __m256i q[8], __m256i c[8]) {
    __m256i t[8];
    for (int h = 0; h < 2; h++) {
        const __m256i *r = q + 4 * h;
        const __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]);
        const __m256i t1 = _mm256_unpacklo_epi32(r[2], r[3]);
        const __m256i t2 = _mm256_unpackhi_epi32(r[0], r[1]);
        const __m256i t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        /* t[4h+i], 128-bit half k = word i + 4k of rows 4h..4h+3 */
        t[4 * h + 0] = _mm256_unpacklo_epi64(t0, t1);
        t[4 * h + 1] = _mm256_unpackhi_epi64(t0, t1);
        t[4 * h + 2] = _mm256_unpacklo_epi64(t2, t3);
        t[4 * h + 3] = _mm256_unpackhi_epi64(t2, t3);
    }
    for (int i = 0; i < 4; i++) {
        c[i] = _mm256_permute2x128_si256(t[i], t[4 + i], 0x20);
        c[i + 4] = _mm256_permute2x128_si256(t[i], t[4 + i], 0x31);
    }
}

/* An empty asm that claims to rewrite the R accumulators: the next group's loads and products
 * cannot be hoisted above this group's adds. With the group loop fully unrolled and no such fence
 * GCC computes all products first and spills them (the unrolls were capped at 2-4 for that reason);
 * fenced, the full unroll runs q4_0 +7-18 % in the GEMM harness. */
INLINE void fence_sums(__m256i *s, const int R) {
    if (R == 4)
        __asm__ volatile("" : "+x"(s[0]), "+x"(s[1]), "+x"(s[2]), "+x"(s[3]));
    else if (R == 3)
        __asm__ volatile("" : "+x"(s[0]), "+x"(s[1]), "+x"(s[2]));
    else if (R == 2)
        __asm__ volatile("" : "+x"(s[0]), "+x"(s[1]));
    else
        __asm__ volatile("" : "+x"(s[0]));
}

/* Rows r0..r0+7 of w (rows >= n1 as zeros) into one panel of nb blocks of a 4- or 5-bit legacy
 * type T (q4_0, q4_1, q5_0, q5_1): the unsigned values (nibble, plus 16 for a set qh bit), then
 * d and, for q4_1 / q5_1, m. */
static void pack_legacy45(const fr_qmm_args *a, int64_t r0, int64_t n1, int64_t nb, uint8_t *dst,
                          const int T) {
    const bool q5 = T == T_Q5_0 || T == T_Q5_1, has_m = T == T_Q4_1 || T == T_Q5_1;
    const int bytes = LEGACY_BYTES[T];
    const int qs_at = LEGACY_QS_AT[T], qh_at = has_m ? 4 : 2; /* d, [m], [qh], qs */
    const uint8_t *row[8];
    for (int j = 0; j < 8; j++)
        row[j] = r0 + j < n1 ? (const uint8_t *)a->w + (r0 + j) * a->w_stride : NULL;
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int64_t b = 0; b < nb; b++, dst += PANEL_BLOCK_BYTES) {
        __m128i q[8];
        uint16_t d[8], mn[8];
        uint32_t qh[8];
        for (int j = 0; j < 8; j++) {
            d[j] = mn[j] = 0;
            qh[j] = 0;
            q[j] = _mm_setzero_si128();
            if (row[j]) {
                const uint8_t *blk = row[j] + b * bytes;
                memcpy(&d[j], blk, 2);
                if (has_m) memcpy(&mn[j], blk + 2, 2);
                if (q5) memcpy(&qh[j], blk + qh_at, 4);
                q[j] = _mm_loadu_si128((const __m128i *)(blk + qs_at));
            }
        }
        /* 4x4 transposes of 32-bit words: c[g] = word g (bytes 4g..4g+3) of rows 0..3 */
        __m128i c[8];
        for (int h = 0; h < 2; h++) {
            const __m128i *r = q + 4 * h;
            const __m128i t0 = _mm_unpacklo_epi32(r[0], r[1]), t1 = _mm_unpacklo_epi32(r[2], r[3]);
            const __m128i t2 = _mm_unpackhi_epi32(r[0], r[1]), t3 = _mm_unpackhi_epi32(r[2], r[3]);
            c[4 * h + 0] = _mm_unpacklo_epi64(t0, t1);
            c[4 * h + 1] = _mm_unpackhi_epi64(t0, t1);
            c[4 * h + 2] = _mm_unpacklo_epi64(t2, t3);
            c[4 * h + 3] = _mm_unpackhi_epi64(t2, t3);
        }
        const __m256i hv = _mm256_loadu_si256((const __m256i *)qh); /* lane j = row j's qh */
        for (int g = 0; g < 8; g++) {
            /* low nibbles are elements 4g..4g+3 (g < 4), high nibbles 16+4(g-4).., i.e. group g
             * is always elements 4g..4g+3 */
            const __m256i v = _mm256_set_m128i(c[4 + g % 4], c[g % 4]);
            __m256i u = _mm256_and_si256(g < 4 ? v : _mm256_srli_epi16(v, 4), m4);
            if (q5) {
                /* qh bits 4g..4g+3 to bit 4 of bytes 0..3: the multiply places copies of the 4
                 * bits 7 apart, so bit k lands at bit 0 of byte k (no carries) */
                const __m256i nib =
                    _mm256_and_si256(_mm256_srli_epi32(hv, 4 * g), _mm256_set1_epi32(15));
                const __m256i spread =
                    _mm256_and_si256(_mm256_mullo_epi32(nib, _mm256_set1_epi32(0x00204081)),
                                     _mm256_set1_epi32(0x01010101));
                u = _mm256_or_si256(u, _mm256_slli_epi32(spread, 4));
            }
            _mm256_storeu_si256((__m256i *)(dst + 32 * g), u);
        }
        _mm256_storeu_ps((float *)(dst + 256),
                         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)d)));
        _mm256_storeu_ps((float *)(dst + 288),
                         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)mn)));
    }
}

/* Rows r0..r0+7 of w (rows >= n1 as zeros) into one q8_0 panel of nb blocks. */
static void pack_q8_0(const fr_qmm_args *a, int64_t r0, int64_t n1, int64_t nb, uint8_t *dst) {
    const uint8_t *row[8];
    for (int j = 0; j < 8; j++)
        row[j] = r0 + j < n1 ? (const uint8_t *)a->w + (r0 + j) * a->w_stride : NULL;
    for (int64_t b = 0; b < nb; b++, dst += PANEL_BLOCK_BYTES) {
        __m256i q[8];
        uint16_t d[8];
        for (int j = 0; j < 8; j++) {
            if (row[j]) {
                const uint8_t *blk = row[j] + b * 34;
                memcpy(&d[j], blk, 2);
                q[j] = loadu(blk + 2);
            } else {
                d[j] = 0;
                q[j] = _mm256_setzero_si256();
            }
        }
        __m256i c[8];
        transpose_words(q, c);
        for (int g = 0; g < 8; g++)
            _mm256_storeu_si256((__m256i *)(dst + 32 * g), c[g]);
        _mm256_storeu_ps((float *)(dst + 256),
                         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)d)));
    }
}

/* out[m+r][n..n+nv) = acc[r] (+ bias) for r < R */
INLINE void store_rows(const fr_qmm_args *a, const __m256 acc[4], int64_t n, int nv, int64_t m,
                       const int R) {
    for (int r = 0; r < R; r++) {
        float *o = a->out + (m + r) * a->out_stride + n;
        if (nv == 8) {
            __m256 v = acc[r];
            if (a->bias) v = _mm256_add_ps(v, _mm256_loadu_ps(a->bias + n));
            _mm256_storeu_ps(o, v);
        } else {
            float t[8];
            _mm256_storeu_ps(t, acc[r]);
            for (int i = 0; i < nv; i++)
                o[i] = t[i] + (a->bias ? a->bias[n + i] : 0.0f);
        }
    }
}

/* Rows r0..r0+7 of w (rows >= n1 as zeros) into one q4_k or q5_k (T) panel of ns super-blocks;
 * q5_k's fifth bits (qh byte l, bit i: element l of sub-block i) join the values before they are
 * transposed. */
_Static_assert(offsetof(fr_block_q5_k, scales) == offsetof(fr_block_q4_k, scales) &&
                   offsetof(fr_block_q5_k, dmin) == offsetof(fr_block_q4_k, dmin),
               "q4_k and q5_k share d, dmin and scales");
static void pack_q45_k(const fr_qmm_args *a, int64_t r0, int64_t n1, int64_t ns, uint8_t *dst,
                       const int T) {
    const bool q5 = T == T_Q5_K;
    const size_t bytes = q5 ? sizeof(fr_block_q5_k) : sizeof(fr_block_q4_k);
    const size_t qs_at = q5 ? offsetof(fr_block_q5_k, qs) : offsetof(fr_block_q4_k, qs);
    uint8_t zero[sizeof(fr_block_q5_k)]; /* stands in for the missing rows: all scales 0 */
    memset(zero, 0, sizeof(zero));
    const uint8_t *row[8];
    for (int j = 0; j < 8; j++)
        row[j] = r0 + j < n1 ? (const uint8_t *)a->w + (r0 + j) * a->w_stride : NULL;
    const __m256i m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < ns; b++, dst += Q4K_PANEL_BYTES) {
        const uint8_t *blk[8];
        for (int j = 0; j < 8; j++)
            blk[j] = row[j] ? row[j] + b * bytes : zero;
        /* bytes 32c..32c+31 hold sub-block 2c (low nibbles) and 2c+1 (high nibbles) */
        for (int c = 0; c < 4; c++) {
            __m256i lo[8], hi[8], g[8];
            for (int j = 0; j < 8; j++) {
                const __m256i q = loadu(blk[j] + qs_at + 32 * c);
                lo[j] = _mm256_and_si256(q, m4);
                hi[j] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                if (q5) {
                    const __m256i h = loadu(blk[j] + offsetof(fr_block_q5_k, qh));
                    lo[j] = _mm256_or_si256(
                        lo[j],
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2 * c), one), 4));
                    hi[j] = _mm256_or_si256(
                        hi[j], _mm256_slli_epi16(
                                   _mm256_and_si256(_mm256_srli_epi16(h, 2 * c + 1), one), 4));
                }
            }
            transpose_words(lo, g);
            for (int i = 0; i < 8; i++)
                _mm256_storeu_si256((__m256i *)(dst + 256 * (2 * c) + 32 * i), g[i]);
            transpose_words(hi, g);
            for (int i = 0; i < 8; i++)
                _mm256_storeu_si256((__m256i *)(dst + 256 * (2 * c + 1) + 32 * i), g[i]);
        }
        int16_t sc[8][16], mn[4][16];
        uint16_t d[8], dmin[8];
        for (int j = 0; j < 8; j++) {
            /* d, dmin and the scales sit at the same offsets in both block types */
            for (int k = 0; k < 8; k++) {
                uint8_t s, m;
                fr_q4k_scale_min(k, blk[j] + offsetof(fr_block_q4_k, scales), &s, &m);
                sc[k][2 * j] = sc[k][2 * j + 1] = s;
                mn[k / 2][2 * j + (k & 1)] = m;
            }
            memcpy(&d[j], blk[j] + offsetof(fr_block_q4_k, d), 2);
            memcpy(&dmin[j], blk[j] + offsetof(fr_block_q4_k, dmin), 2);
        }
        memcpy(dst + Q4K_SC_AT, sc, sizeof(sc));
        memcpy(dst + Q4K_MIN_AT, mn, sizeof(mn));
        _mm256_storeu_ps((float *)(dst + Q4K_D_AT),
                         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)d)));
        _mm256_storeu_ps((float *)(dst + Q4K_D_AT + 32),
                         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dmin)));
    }
}

/* The R q8_k activation rows from m that a K-format panel reads, and its zeroed accumulators. */
INLINE void q8k_panel_rows(const fr_qmm_args *a, int64_t m, const int R, const fr_block_q8_k **x,
                           __m256 *acc) {
    for (int r = 0; r < R; r++) {
        x[r] = (const fr_block_q8_k *)(a->xq + (m + r) * a->xq_stride);
        acc[r] = _mm256_setzero_ps();
    }
}

/* P = 1 or 2 q4_k / q5_k (T) panels (8 weight rows each, from n and n + 8, pbytes apart) against
 * R q8_k activation rows from m; two panels share each broadcast quad, as in panel() below.
 * q5_k's values reach 31: a maddubs pair sum is at most 2 * 31 * 127 = 7874, so only 4 groups add
 * up in 16 bits (31496) before the scale madd widens them (two madds per sub-block). */
INLINE void panel_q45_k(const fr_qmm_args *a, const uint8_t *pack, int64_t pbytes, int64_t ns,
                        int64_t n, const int nv[2], int64_t m, const int R, const int P,
                        const int T) {
    const __m256i ones = _mm256_set1_epi16(1);
    const fr_block_q8_k *x[4];
    __m256 acc[2][4];
    for (int p = 0; p < P; p++)
        q8k_panel_rows(a, m, R, x, acc[p]);
    for (int64_t b = 0; b < ns; b++) {
        const uint8_t *pw = pack + b * Q4K_PANEL_BYTES;
        __m256i isum[2][4];
        for (int p = 0; p < P; p++)
            for (int r = 0; r < R; r++)
                isum[p][r] = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
#if QG_VNNI
            /* vpdpbusd sums runs of G groups of a sub-block in 32 bits apart, each run within
             * int16 (q4_k: G = 4, 16 * 15 * 127 = 30480; q5_k: G = 2, 8 * 31 * 127 = 31496), so
             * vpdpwssd against (sc_j, 0) in every 32-bit lane multiplies a run by the scale as
             * its low 16 bits and adds it (q4_k: 10 instructions per sub-block and row instead of
             * 17) */
            const int G = T == T_Q5_K ? 2 : 4;
            __m256i s[2][4][4]; /* [panel][run][row] */
            for (int p = 0; p < P; p++)
                for (int c = 0; c < 8 / G; c++)
                    for (int r = 0; r < R; r++)
                        s[p][c][r] = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                __m256i w[2];
                for (int p = 0; p < P; p++)
                    w[p] = loadu(pw + p * pbytes + 256 * j + 32 * g);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    int32_t quad;
                    memcpy(&quad, x[r][b].qs + 32 * j + 4 * g, 4);
                    const __m256i xv = _mm256_set1_epi32(quad);
                    for (int p = 0; p < P; p++)
                        s[p][g / G][r] = _mm256_dpbusd_epi32(s[p][g / G][r], w[p], xv);
                }
            }
            for (int p = 0; p < P; p++) {
                const __m256i sc = _mm256_and_si256(loadu(pw + p * pbytes + Q4K_SC_AT + 32 * j),
                                                    _mm256_set1_epi32(0xffff));
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    for (int c = 0; c < 8 / G; c++)
                        isum[p][r] = _mm256_dpwssd_epi32(isum[p][r], s[p][c][r], sc);
            }
#else
            /* groups per 16-bit sum; each sum is widened by the madd that applies the 6-bit scale
             */
            const int G = T == T_Q5_K ? 4 : 8;
            __m256i s[2][4], sc[2];
            for (int p = 0; p < P; p++) {
                sc[p] = loadu(pw + p * pbytes + Q4K_SC_AT + 32 * j);
                for (int r = 0; r < R; r++)
                    s[p][r] = _mm256_setzero_si256();
            }
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) {
                __m256i w[2];
                for (int p = 0; p < P; p++)
                    w[p] = loadu(pw + p * pbytes + 256 * j + 32 * g);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    int32_t quad;
                    memcpy(&quad, x[r][b].qs + 32 * j + 4 * g, 4);
                    const __m256i xv = _mm256_set1_epi32(quad);
                    for (int p = 0; p < P; p++)
                        s[p][r] = _mm256_add_epi16(s[p][r], _mm256_maddubs_epi16(w[p], xv));
                }
                for (int p = 0; p < P; p++)
                    fence_sums(s[p], R);
                if (g % G == G - 1)
                    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
                        for (int r = 0; r < R; r++) {
                            isum[p][r] =
                                _mm256_add_epi32(isum[p][r], _mm256_madd_epi16(s[p][r], sc[p]));
                            s[p][r] = _mm256_setzero_si256();
                        }
            }
#endif
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            /* lane j = bsum_j; packed to int16, 32-bit word e holds the pair (bsum_2p, bsum_2p+1)
             * for e = 0, 1, 4, 5 (q = 0..3) */
            const __m256i bs = _mm256_madd_epi16(loadu(x[r][b].bsums), ones);
            const __m256i bp = _mm256_packs_epi32(bs, bs);
            const __m256 dx = _mm256_set1_ps(x[r][b].d);
            for (int p = 0; p < P; p++) {
                const uint8_t *pp = pw + p * pbytes;
                __m256i ms = _mm256_setzero_si256();
                for (int q = 0; q < 4; q++) {
                    const __m256i pair =
                        _mm256_permutevar8x32_epi32(bp, _mm256_set1_epi32(q < 2 ? q : q + 2));
                    ms = _mm256_add_epi32(ms,
                                          _mm256_madd_epi16(loadu(pp + Q4K_MIN_AT + 32 * q), pair));
                }
                const __m256 d = _mm256_loadu_ps((const float *)(pp + Q4K_D_AT));
                const __m256 dmin = _mm256_loadu_ps((const float *)(pp + Q4K_D_AT + 32));
                acc[p][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[p][r]), _mm256_mul_ps(d, dx),
                                            acc[p][r]);
                acc[p][r] =
                    _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_mul_ps(dmin, dx), acc[p][r]);
            }
        }
    }
    for (int p = 0; p < P; p++)
        store_rows(a, acc[p], n + 8 * p, nv[p], m, R);
}

/* Rows r0..r0+7 of w (rows >= n1 as zeros) into one q6_k panel of ns super-blocks. */
static void pack_q6_k(const fr_qmm_args *a, int64_t r0, int64_t n1, int64_t ns, uint8_t *dst) {
    fr_block_q6_k zero; /* stands in for the missing rows: all scales and d 0 */
    memset(&zero, 0, sizeof(zero));
    const fr_block_q6_k *row[8];
    for (int j = 0; j < 8; j++)
        row[j] = r0 + j < n1 ? (const fr_block_q6_k *)(a->w + (r0 + j) * a->w_stride) : NULL;
    const __m256i m4 = _mm256_set1_epi8(15), three = _mm256_set1_epi8(3);
    for (int64_t b = 0; b < ns; b++, dst += Q6K_PANEL_BYTES) {
        const fr_block_q6_k *blk[8];
        for (int j = 0; j < 8; j++)
            blk[j] = row[j] ? row[j] + b : &zero;
        /* 32-element chunk c = 4h+i of each row, as the q6_k GEMV unpacks it: low nibbles of
         * ql[64h..] (i = 0, 1) then high nibbles (i = 2, 3), fifth and sixth bits from qh[32h..]
         * at bit 2i; transposed into groups 8c..8c+7 */
        for (int h = 0; h < 2; h++) {
            __m256i ql0[8], ql1[8], qh[8];
            for (int j = 0; j < 8; j++) {
                ql0[j] = loadu(blk[j]->ql + 64 * h);
                ql1[j] = loadu(blk[j]->ql + 64 * h + 32);
                qh[j] = loadu(blk[j]->qh + 32 * h);
            }
            for (int i = 0; i < 4; i++) {
                __m256i q[8], g[8];
                for (int j = 0; j < 8; j++) {
                    const __m256i v = i & 1 ? ql1[j] : ql0[j];
                    const __m256i l = _mm256_and_si256(i < 2 ? v : _mm256_srli_epi16(v, 4), m4);
                    const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh[j], 2 * i), three);
                    q[j] = _mm256_or_si256(l, _mm256_slli_epi16(hb, 4));
                }
                transpose_words(q, g);
                uint8_t *o = dst + 256 * (4 * h + i);
                for (int k = 0; k < 8; k++)
                    _mm256_storeu_si256((__m256i *)(o + 32 * k), g[k]);
            }
        }
        int16_t sc[16][16];
        uint16_t d[8];
        for (int j = 0; j < 8; j++) {
            for (int k = 0; k < 16; k++)
                sc[k][2 * j] = sc[k][2 * j + 1] = blk[j]->scales[k];
            d[j] = blk[j]->d;
        }
        memcpy(dst + Q6K_SC_AT, sc, sizeof(sc));
        /* pair vector p, lane j = (sc_2p, sc_2p+1) of row j */
        int16_t pr[8][16];
        for (int p = 0; p < 8; p++)
            for (int j = 0; j < 8; j++) {
                pr[p][2 * j] = blk[j]->scales[2 * p];
                pr[p][2 * j + 1] = blk[j]->scales[2 * p + 1];
            }
        memcpy(dst + Q6K_PAIR_AT, pr, sizeof(pr));
        _mm256_storeu_ps((float *)(dst + Q6K_D_AT),
                         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)d)));
    }
}

/* One q6_k panel (8 weight rows from n) against R q8_k activation rows from m. */
INLINE void panel_q6_k(const fr_qmm_args *a, const uint8_t *pack, int64_t ns, int64_t n, int nv,
                       int64_t m, const int R) {
    const fr_block_q8_k *x[4];
    __m256 acc[4];
    q8k_panel_rows(a, m, R, x, acc);
    for (int64_t b = 0; b < ns; b++) {
        const uint8_t *pw = pack + b * Q6K_PANEL_BYTES;
        __m256i isum[4], isum1[4]; /* isum1: VNNI's second chain (vpdpwssd latency) */
        for (int r = 0; r < R; r++)
            isum[r] = isum1[r] = _mm256_setzero_si256();
#pragma GCC unroll 2 /* full unroll spilled (-10 %); fenced (fence_sums) it was 1.00-1.03x */
        for (int s = 0; s < 16; s++) {
            const __m256i w0 = loadu(pw + 128 * s), w1 = loadu(pw + 128 * s + 32);
            const __m256i w2 = loadu(pw + 128 * s + 64), w3 = loadu(pw + 128 * s + 96);
            const __m256i sc = loadu(pw + Q6K_SC_AT + 32 * s);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const int8_t *q = x[r][b].qs + 16 * s;
                int32_t q0, q1, q2, q3;
                memcpy(&q0, q, 4);
                memcpy(&q1, q + 4, 4);
                memcpy(&q2, q + 8, 4);
                memcpy(&q3, q + 12, 4);
                /* two groups per 16-bit sum (<= 32004), then widened with the scale applied */
                const __m256i t0 =
                    _mm256_add_epi16(_mm256_maddubs_epi16(w0, _mm256_set1_epi32(q0)),
                                     _mm256_maddubs_epi16(w1, _mm256_set1_epi32(q1)));
                const __m256i t1 =
                    _mm256_add_epi16(_mm256_maddubs_epi16(w2, _mm256_set1_epi32(q2)),
                                     _mm256_maddubs_epi16(w3, _mm256_set1_epi32(q3)));
#if QG_VNNI
                isum[r] = _mm256_dpwssd_epi32(isum[r], t0, sc);
                isum1[r] = _mm256_dpwssd_epi32(isum1[r], t1, sc);
#else
                isum[r] = _mm256_add_epi32(isum[r], _mm256_add_epi32(_mm256_madd_epi16(t0, sc),
                                                                     _mm256_madd_epi16(t1, sc)));
#endif
            }
        }
        const __m256 d = _mm256_loadu_ps((const float *)(pw + Q6K_D_AT));
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            /* the -32 zero point: 32 * sum_s sc_s * bsum_s */
            __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int p = 0; p < 8; p += 2) {
                int32_t b0, b1;
                memcpy(&b0, x[r][b].bsums + 2 * p, 4);
                memcpy(&b1, x[r][b].bsums + 2 * p + 2, 4);
                c0 = _mm256_add_epi32(
                    c0, _mm256_madd_epi16(loadu(pw + Q6K_PAIR_AT + 32 * p), _mm256_set1_epi32(b0)));
                c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(loadu(pw + Q6K_PAIR_AT + 32 * p + 32),
                                                            _mm256_set1_epi32(b1)));
            }
#if QG_VNNI
            isum[r] = _mm256_add_epi32(isum[r], isum1[r]);
#endif
            const __m256i tot =
                _mm256_sub_epi32(isum[r], _mm256_slli_epi32(_mm256_add_epi32(c0, c1), 5));
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot),
                                     _mm256_mul_ps(d, _mm256_set1_ps(x[r][b].d)), acc[r]);
        }
    }
    store_rows(a, acc, n, nv, m, R);
}

/* The integer block sum si's zero-point term from the activation row's c8 = -8 * sum(q)
 * (quant_dot.h): q4_0 -8 * sum(q), q5_0 -16 * sum(q); with VNNI's w + 128, q8_0 -128 * sum(q). */
INLINE int32_t legacy_zero_point(const int T, int32_t c8) {
    return T == T_Q4_0 ? c8 : T == T_Q5_0 ? 2 * c8 : T == T_Q8_0 && QG_VNNI ? 16 * c8 : 0;
}

/* acc += dw*dx*si (+ mw*sx for q4_1 / q5_1, sx = dx*sum(q) from the activation row): one block
 * of one panel, pw its weights, for activation row r's block b. */
INLINE __m256 legacy_block_out(const int T, const uint8_t *pw, __m256i si, float dx, float sx,
                               __m256 acc) {
    const __m256 dw = _mm256_loadu_ps((const float *)(pw + 256));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), _mm256_mul_ps(dw, _mm256_set1_ps(dx)), acc);
    if (T == T_Q4_1 || T == T_Q5_1)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(pw + 288)), _mm256_set1_ps(sx), acc);
    return acc;
}

/* P = 1 or 2 panels (8 weight rows each, from n and n + 8; panel p at pack + p * pbytes) of a
 * legacy type T against R activation rows from m: out[m+r][n..n+nv[p]). With two panels each
 * broadcast activation quad feeds both (half the broadcasts) and 8 independent sums are in flight
 * instead of 4: AVX2 q4_0 GEMM harness 1.15x, q8_0 1.05x (the float accumulators of the second
 * panel spill, which costs little: they change once per block). The 5-bit types' pair sums reach
 * 2 * 31 * 127 = 7874, so their 16-bit sums are widened every 4 groups (31496) instead of 8. */
INLINE void panel(const fr_qmm_args *a, const uint8_t *pack, int64_t pbytes, int64_t nb, int64_t n,
                  const int nv[2], int64_t m, const int R, const int P, const int T) {
    const int8_t *xq[4];
    const float *xd[4], *xs[4];
    const int32_t *xc8[4];
    __m256 acc[2][4];
    for (int r = 0; r < R; r++) {
        xq[r] = (const int8_t *)(a->xq + (m + r) * a->xq_stride);
        xd[r] = (const float *)(xq[r] + nb * FR_QK);
        xs[r] = xd[r] + nb;
        xc8[r] = (const int32_t *)(xd[r] + 2 * nb);
        for (int p = 0; p < P; p++)
            acc[p][r] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *pw = pack + b * PANEL_BLOCK_BYTES;
#if QG_VNNI
        /* 32-bit sums, even and odd groups apart: vpdpbusd's latency (~5 cycles) would otherwise
         * bound the loop to one group per row every 5 cycles. q8_0 multiplies w + 128 (w xor
         * 0x80, unsigned) and takes the 128 * sum(q) this adds off with the zero point, so it
         * needs no sign instruction; with 32-bit sums nothing saturates. */
        __m256i s[2][4], s1[2][4];
        for (int p = 0; p < P; p++)
            for (int r = 0; r < R; r++)
                s[p][r] = s1[p][r] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m256i u[2];
            for (int p = 0; p < P; p++) {
                const __m256i w = loadu(pw + p * pbytes + 32 * g);
                u[p] = T == T_Q8_0 ? _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80)) : w;
            }
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                int32_t quad;
                memcpy(&quad, xq[r] + b * FR_QK + 4 * g, 4);
                const __m256i x = _mm256_set1_epi32(quad);
                for (int p = 0; p < P; p++) {
                    if (g & 1)
                        s1[p][r] = _mm256_dpbusd_epi32(s1[p][r], u[p], x);
                    else
                        s[p][r] = _mm256_dpbusd_epi32(s[p][r], u[p], x);
                }
            }
        }
        for (int p = 0; p < P; p++)
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const __m256i si =
                    _mm256_add_epi32(_mm256_add_epi32(s[p][r], s1[p][r]),
                                     _mm256_set1_epi32(legacy_zero_point(T, xc8[r][b])));
                acc[p][r] = legacy_block_out(T, pw + p * pbytes, si, xd[r][b], xs[r][b], acc[p][r]);
            }
#else
        const __m256i ones = _mm256_set1_epi16(1);
        const int G = T == T_Q5_0 || T == T_Q5_1 ? 4 : 8; /* groups per 16-bit sum */
        /* 16-bit sums of the current run of groups (q8_0: 32-bit sums), and the widened runs */
        __m256i s[2][4], wide[2][4];
        for (int p = 0; p < P; p++)
            for (int r = 0; r < R; r++)
                s[p][r] = wide[p][r] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m256i w[2], u[2];
            for (int p = 0; p < P; p++) {
                w[p] = loadu(pw + p * pbytes + 32 * g);
                u[p] = T == T_Q8_0 ? _mm256_abs_epi8(w[p]) : w[p];
            }
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                int32_t quad;
                memcpy(&quad, xq[r] + b * FR_QK + 4 * g, 4);
                const __m256i x = _mm256_set1_epi32(quad);
                for (int p = 0; p < P; p++) {
                    if (T == T_Q8_0)
                        s[p][r] = _mm256_add_epi32(
                            s[p][r],
                            _mm256_madd_epi16(_mm256_maddubs_epi16(u[p], _mm256_sign_epi8(x, w[p])),
                                              ones));
                    else
                        s[p][r] = _mm256_add_epi16(s[p][r], _mm256_maddubs_epi16(u[p], x));
                }
            }
            for (int p = 0; p < P; p++)
                fence_sums(s[p], R);
            if (T != T_Q8_0 && g % G == G - 1)
                for (int p = 0; p < P; p++)
#pragma GCC unroll 4
                    for (int r = 0; r < R; r++) {
                        wide[p][r] =
                            G == 8 ? _mm256_madd_epi16(s[p][r], ones)
                                   : _mm256_add_epi32(wide[p][r], _mm256_madd_epi16(s[p][r], ones));
                        s[p][r] = _mm256_setzero_si256();
                    }
        }
        for (int p = 0; p < P; p++)
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                /* the zero point joins in integers, so one conversion and one FMA per block
                 * remain (q4_0: the f32 correction cost a second FMA, +7 %) */
                const __m256i si =
                    T == T_Q8_0
                        ? s[p][r]
                        : _mm256_add_epi32(wide[p][r],
                                           _mm256_set1_epi32(legacy_zero_point(T, xc8[r][b])));
                acc[p][r] = legacy_block_out(T, pw + p * pbytes, si, xd[r][b], xs[r][b], acc[p][r]);
            }
#endif
    }
    for (int p = 0; p < P; p++)
        store_rows(a, acc[p], n + 8 * p, nv[p], m, R);
}

/* The panel kernel of type T for P (1..2) panels against R (1..4) activation rows */
INLINE void panel_any(const fr_qmm_args *a, const uint8_t *pack, int64_t pbytes, int64_t n,
                      const int nv[2], int64_t m, const int R, const int P, const int T) {
    const int64_t nb = a->K / FR_QK, ns = a->K / FR_QK_K;
    if (T == T_Q4_K || T == T_Q5_K)
        panel_q45_k(a, pack, pbytes, ns, n, nv, m, R, P, T);
    else if (T == T_Q6_K)
        for (int p = 0; p < P; p++)
            panel_q6_k(a, pack + p * pbytes, ns, n + 8 * p, nv[p], m, R);
    else
        panel(a, pack, pbytes, nb, n, nv, m, R, P, T);
}

/* panel_any with R and P as compile-time constants */
INLINE void panel_rp(const fr_qmm_args *a, const uint8_t *pack, int64_t pbytes, int64_t n,
                     const int nv[2], int64_t m, int R, int P, const int T) {
    if (P == 2) {
        if (R == 4)
            panel_any(a, pack, pbytes, n, nv, m, 4, 2, T);
        else if (R == 3)
            panel_any(a, pack, pbytes, n, nv, m, 3, 2, T);
        else if (R == 2)
            panel_any(a, pack, pbytes, n, nv, m, 2, 2, T);
        else
            panel_any(a, pack, pbytes, n, nv, m, 1, 2, T);
    } else if (R == 4)
        panel_any(a, pack, pbytes, n, nv, m, 4, 1, T);
    else if (R == 3)
        panel_any(a, pack, pbytes, n, nv, m, 3, 1, T);
    else if (R == 2)
        panel_any(a, pack, pbytes, n, nv, m, 2, 1, T);
    else
        panel_any(a, pack, pbytes, n, nv, m, 1, 1, T);
}

/* Packs the task's weight rows, then runs every panel against the activation rows. */
INLINE void qgemm(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1, void *pack,
                  const int T) {
    const int64_t nb = a->K / FR_QK, ns = a->K / FR_QK_K;
    const int64_t np = (n1 - n0 + 7) / 8;
    const int64_t pbytes = T == T_Q4_K || T == T_Q5_K ? ns * Q4K_PANEL_BYTES
                           : T == T_Q6_K              ? ns * Q6K_PANEL_BYTES
                                                      : nb * PANEL_BLOCK_BYTES;
    uint8_t *pk = pack;
    for (int64_t p = 0; p < np; p++) {
        uint8_t *dst = pk + p * pbytes;
        if (T == T_Q8_0)
            pack_q8_0(a, n0 + 8 * p, n1, nb, dst);
        else if (T == T_Q4_K || T == T_Q5_K)
            pack_q45_k(a, n0 + 8 * p, n1, ns, dst, T);
        else if (T == T_Q6_K)
            pack_q6_k(a, n0 + 8 * p, n1, ns, dst);
        else
            pack_legacy45(a, n0 + 8 * p, n1, nb, dst, T);
    }
    /* activation rows in groups of 4 outermost: the group (4 x ~1.1 KiB per 1024 of K) stays in
     * L1 while the task's panels pass by */
    for (int64_t m = m0; m < m1; m += 4) {
        const int R = m1 - m < 4 ? (int)(m1 - m) : 4;
        for (int64_t p = 0; p < np; p++) {
            const int64_t n = n0 + 8 * p;
            /* two panels at a time where there are two, except q6_k (AVX2: no gain) and the K
             * formats with VNNI (their runs of groups already fill the registers; SPR, 2 cores:
             * Q4_0 pp128 1.15x, Q8_0 1.10x, Q5_K_M 0.74x with two) */
            const bool kfmt = T == T_Q4_K || T == T_Q5_K || T == T_Q6_K;
            const int P = p + 1 < np && T != T_Q6_K && !(QG_VNNI && kfmt) ? 2 : 1;
            const int nv[2] = {n1 - n < 8 ? (int)(n1 - n) : 8,
                               P == 2 && n1 - n - 8 < 8 ? (int)(n1 - n - 8) : 8};
            panel_rp(a, pk + p * pbytes, pbytes, n, nv, m, R, P, T);
            p += P - 1;
        }
    }
}

/* The kernels by type (each build's table, fr_qgemm_avx2 / fr_qgemm_avx512, points at its own
 * copies); T must be a constant for qgemm to specialise on it. */
#define DEFINE_QGEMM(NAME, T)                                                                      \
    static void NAME(const fr_qmm_args *a, int64_t n0, int64_t n1, int64_t m0, int64_t m1,         \
                     void *pack) {                                                                 \
        qgemm(a, n0, n1, m0, m1, pack, T);                                                         \
    }
DEFINE_QGEMM(qgemm_q8_0, T_Q8_0)
DEFINE_QGEMM(qgemm_q4_0, T_Q4_0)
DEFINE_QGEMM(qgemm_q4_1, T_Q4_1)
DEFINE_QGEMM(qgemm_q5_0, T_Q5_0)
DEFINE_QGEMM(qgemm_q5_1, T_Q5_1)
DEFINE_QGEMM(qgemm_q4_k, T_Q4_K)
DEFINE_QGEMM(qgemm_q5_k, T_Q5_K)
DEFINE_QGEMM(qgemm_q6_k, T_Q6_K)

#endif
