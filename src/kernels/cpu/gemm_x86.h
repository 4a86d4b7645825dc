/* Helpers shared by the x86 float-weight kernels (matmul_avx2.c, matmul_avx512.c, both compiled
 * with at least AVX2 + FMA + F16C): weight loads widened to f32, and the packing of a GEMM weight
 * block into k-major panels for an outer-product micro tile. Private to those files. */
#ifndef FR_KERNELS_CPU_GEMM_X86_H
#define FR_KERNELS_CPU_GEMM_X86_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "core/dtype.h"

#define INLINE static inline __attribute__((always_inline))

enum { W_F32, W_F16, W_BF16 };
#define WBYTES(wt) ((wt) == W_F32 ? 4 : 2)

/* 8 weights at w[k..k+8) (type wt) widened to f32 */
INLINE __m256 load8_w(const char *w, int64_t k, const int wt) {
    if (wt == W_F32) return _mm256_loadu_ps((const float *)w + k);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + k));
    if (wt == W_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* One weight: memcpy, not a float/uint16_t dereference, since weights are read in place from the
 * mapped file, where a safetensors header of any length leaves them at any address (compilers
 * turn the memcpy into one plain load). */
INLINE float load1_w(const char *w, int64_t k, const int wt) {
    if (wt == W_F32) {
        float f;
        memcpy(&f, w + k * 4, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, w + k * 2, 2);
    if (wt == W_F16) return _cvtsh_ss(h);
    return fr_bf16_to_f32(h);
}

/* Transposes 8 rows x 8 columns of w (type wt, converted to f32 on load; ws elements between rows)
 * into 8 k-major rows of 8 at p (PW floats between them; p 32-byte aligned). */
INLINE void transpose8(const char *w, int64_t ws, float *p, const int PW, const int wt) {
    __m256 r[8], t[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        r[i] = load8_w(w, i * ws, wt);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
        r[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        _mm256_store_ps(p + PW * i, _mm256_permute2f128_ps(r[i], r[4 + i], 0x20));
        _mm256_store_ps(p + PW * (4 + i), _mm256_permute2f128_ps(r[i], r[4 + i], 0x31));
    }
}

/* Packs rows [0, nr) x columns [0, kc) of w (type wt, ws elements between rows) into a k-major
 * f32 panel of PW rows (PW floats per k), zero padded; the panel is rebuilt per gemm_block call,
 * so full 8 x 8 blocks go through register transposes. 16-bit weights are converted here, on the
 * way into the panel, so they need no f32 copy first (AVX2: Qwen3-0.6B F16 pp128 1.09x, pp512
 * 1.01x). */
INLINE void pack_panel(const char *w, int64_t ws, int64_t nr, int64_t kc, float *panel,
                       const int PW, const int wt) {
    const int64_t eb = WBYTES(wt);
    int64_t j = 0;
    for (; j + 8 <= nr; j += 8) {
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8)
            transpose8(w + (j * ws + k) * eb, ws, panel + PW * k + j, PW, wt);
        for (; k < kc; k++)
            for (int64_t i = 0; i < 8; i++)
                panel[PW * k + j + i] = load1_w(w, (j + i) * ws + k, wt);
    }
    for (int64_t k = 0; k < kc; k++)
        for (int64_t i = j; i < PW; i++)
            panel[PW * k + i] = i < nr ? load1_w(w, i * ws + k, wt) : 0.0f;
}

#endif
