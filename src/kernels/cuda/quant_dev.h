/* Quantized weight blocks decoded on the device (CUDA C++ only), GGML byte layouts exactly as
 * src/core/quant.h documents them. Every kernel that reads quantized data (decode GEMV, the
 * prefill dequantizer, embedding) decodes through fr_cuq_deq8: eight consecutive elements of one
 * block into registers.
 *
 * Blocks are 18 to 210 bytes and sit at any even address (a row of q6_k is rarely 16-byte
 * aligned), so fields are read byte by byte from wherever the block is (shared memory in the
 * GEMV, global memory elsewhere); multi-byte fields are little-endian. Eight elements never
 * straddle a sub-block (sub-blocks hold 16 or 32 elements), so each group has one scale. */
#ifndef FR_KERNELS_CUDA_QUANT_DEV_H
#define FR_KERNELS_CUDA_QUANT_DEV_H

#include "kernels/cuda/cuda_backend.h"

/* Block geometry per type: BE elements in BB bytes (the sizes quant.h asserts). */
template <int QT> struct fr_cuq;
template <> struct fr_cuq<FR_DTYPE_Q8_0> { static constexpr int BE = 32, BB = 34; };
template <> struct fr_cuq<FR_DTYPE_Q4_0> { static constexpr int BE = 32, BB = 18; };
template <> struct fr_cuq<FR_DTYPE_Q4_1> { static constexpr int BE = 32, BB = 20; };
template <> struct fr_cuq<FR_DTYPE_Q5_0> { static constexpr int BE = 32, BB = 22; };
template <> struct fr_cuq<FR_DTYPE_Q5_1> { static constexpr int BE = 32, BB = 24; };
template <> struct fr_cuq<FR_DTYPE_Q4_K> { static constexpr int BE = 256, BB = 144; };
template <> struct fr_cuq<FR_DTYPE_Q5_K> { static constexpr int BE = 256, BB = 176; };
template <> struct fr_cuq<FR_DTYPE_Q6_K> { static constexpr int BE = 256, BB = 210; };

/* Runs the statement in __VA_ARGS__ with constexpr int QT set to the quantized dtype; nothing
 * for other dtypes (callers check fr_cuq_supported first). */
#define FR_CUQ_DISPATCH(dtype, ...)                                                                \
    switch (dtype) {                                                                               \
    case FR_DTYPE_Q8_0: {                                                                          \
        constexpr int QT = FR_DTYPE_Q8_0;                                                          \
        __VA_ARGS__;                                                                               \
        break;                                                                                     \
    }                                                                                              \
    case FR_DTYPE_Q4_0: {                                                                          \
        constexpr int QT = FR_DTYPE_Q4_0;                                                          \
        __VA_ARGS__;                                                                               \
        break;                                                                                     \
    }                                                                                              \
    case FR_DTYPE_Q4_1: {                                                                          \
        constexpr int QT = FR_DTYPE_Q4_1;                                                          \
        __VA_ARGS__;                                                                               \
        break;                                                                                     \
    }                                                                                              \
    case FR_DTYPE_Q5_0: {                                                                          \
        constexpr int QT = FR_DTYPE_Q5_0;                                                          \
        __VA_ARGS__;                                                                               \
        break;                                                                                     \
    }                                                                                              \
    case FR_DTYPE_Q5_1: {                                                                          \
        constexpr int QT = FR_DTYPE_Q5_1;                                                          \
        __VA_ARGS__;                                                                               \
        break;                                                                                     \
    }                                                                                              \
    case FR_DTYPE_Q4_K: {                                                                          \
        constexpr int QT = FR_DTYPE_Q4_K;                                                          \
        __VA_ARGS__;                                                                               \
        break;                                                                                     \
    }                                                                                              \
    case FR_DTYPE_Q5_K: {                                                                          \
        constexpr int QT = FR_DTYPE_Q5_K;                                                          \
        __VA_ARGS__;                                                                               \
        break;                                                                                     \
    }                                                                                              \
    case FR_DTYPE_Q6_K: {                                                                          \
        constexpr int QT = FR_DTYPE_Q6_K;                                                          \
        __VA_ARGS__;                                                                               \
        break;                                                                                     \
    }                                                                                              \
    default:                                                                                       \
        break;                                                                                     \
    }

static inline bool fr_cuq_supported(fr_dtype t) {
    switch (t) {
    case FR_DTYPE_Q8_0:
    case FR_DTYPE_Q4_0:
    case FR_DTYPE_Q4_1:
    case FR_DTYPE_Q5_0:
    case FR_DTYPE_Q5_1:
    case FR_DTYPE_Q4_K:
    case FR_DTYPE_Q5_K:
    case FR_DTYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

/* An IEEE half stored little-endian at p (any alignment). */
__device__ __forceinline__ float fr_cuq_half(const uint8_t *p) {
    return __half2float(__ushort_as_half((unsigned short)(p[0] | (p[1] << 8))));
}

__device__ __forceinline__ uint32_t fr_cuq_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* 6-bit scale and min of sub-block j of q4_k / q5_k (the packing of fr_q4k_scale_min). */
__device__ __forceinline__ void fr_cuq_scale_min(int j, const uint8_t *s, int &sc, int &m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* f[0..8) = elements 8j .. 8j+7 of the block at b. Products are formed in the same order as
 * the host dequantizers, so values match fr_dequantize_row up to fused multiply-adds. */
template <int QT> __device__ __forceinline__ void fr_cuq_deq8(const uint8_t *b, int j, float *f);

template <>
__device__ __forceinline__ void fr_cuq_deq8<FR_DTYPE_Q8_0>(const uint8_t *b, int j, float *f) {
    const float d = fr_cuq_half(b);
    const int8_t *q = (const int8_t *)(b + 2) + 8 * j;
#pragma unroll
    for (int i = 0; i < 8; i++)
        f[i] = (float)q[i] * d;
}

/* Nibbles of the legacy 4/5-bit formats: element e < 16 is the low nibble of qs[e], e >= 16 the
 * high nibble of qs[e - 16]; a group of eight lies entirely in one half. */
__device__ __forceinline__ void fr_cuq_nibbles(const uint8_t *qs, int j, int *q) {
    const uint8_t *p = qs + 8 * (j & 1);
    const int shift = j < 2 ? 0 : 4;
#pragma unroll
    for (int i = 0; i < 8; i++)
        q[i] = (p[i] >> shift) & 0xF;
}

template <>
__device__ __forceinline__ void fr_cuq_deq8<FR_DTYPE_Q4_0>(const uint8_t *b, int j, float *f) {
    const float d = fr_cuq_half(b);
    int q[8];
    fr_cuq_nibbles(b + 2, j, q);
#pragma unroll
    for (int i = 0; i < 8; i++)
        f[i] = (float)(q[i] - 8) * d;
}

template <>
__device__ __forceinline__ void fr_cuq_deq8<FR_DTYPE_Q4_1>(const uint8_t *b, int j, float *f) {
    const float d = fr_cuq_half(b), m = fr_cuq_half(b + 2);
    int q[8];
    fr_cuq_nibbles(b + 4, j, q);
#pragma unroll
    for (int i = 0; i < 8; i++)
        f[i] = (float)q[i] * d + m;
}

template <>
__device__ __forceinline__ void fr_cuq_deq8<FR_DTYPE_Q5_0>(const uint8_t *b, int j, float *f) {
    const float d = fr_cuq_half(b);
    const uint32_t qh = fr_cuq_u32(b + 2) >> (8 * j); /* bit 4 of element e is bit e of qh */
    int q[8];
    fr_cuq_nibbles(b + 6, j, q);
#pragma unroll
    for (int i = 0; i < 8; i++)
        f[i] = (float)((q[i] | (int)((qh >> i) & 1) << 4) - 16) * d;
}

template <>
__device__ __forceinline__ void fr_cuq_deq8<FR_DTYPE_Q5_1>(const uint8_t *b, int j, float *f) {
    const float d = fr_cuq_half(b), m = fr_cuq_half(b + 2);
    const uint32_t qh = fr_cuq_u32(b + 4) >> (8 * j);
    int q[8];
    fr_cuq_nibbles(b + 8, j, q);
#pragma unroll
    for (int i = 0; i < 8; i++)
        f[i] = (float)(q[i] | (int)((qh >> i) & 1) << 4) * d + m;
}

/* q4_k / q5_k: elements 64c .. 64c+31 are sub-block 2c (low nibbles of qs[32c + l]), elements
 * 64c+32 .. 64c+63 sub-block 2c+1 (high nibbles of the same bytes); q5_k adds bit (sub-block)
 * of qh[l] as bit 4. */
template <bool FIVE>
__device__ __forceinline__ void fr_cuq_deq8_k45(const uint8_t *b, const uint8_t *qh,
                                                const uint8_t *qs, int j, float *f) {
    const float d = fr_cuq_half(b), dmin = fr_cuq_half(b + 2);
    const int e0 = 8 * j, c = e0 >> 6, l0 = e0 & 63;
    const int sub = 2 * c + (l0 >= 32), l = l0 & 31, shift = l0 >= 32 ? 4 : 0;
    int sc, mn;
    fr_cuq_scale_min(sub, b + 4, sc, mn);
    const float ds = d * (float)sc, dm = dmin * (float)mn;
    const uint8_t *p = qs + 32 * c + l;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        int q = (p[i] >> shift) & 0xF;
        if (FIVE) q |= ((qh[l + i] >> sub) & 1) << 4;
        f[i] = ds * (float)q - dm;
    }
}

template <>
__device__ __forceinline__ void fr_cuq_deq8<FR_DTYPE_Q4_K>(const uint8_t *b, int j, float *f) {
    fr_cuq_deq8_k45<false>(b, nullptr, b + 16, j, f);
}

template <>
__device__ __forceinline__ void fr_cuq_deq8<FR_DTYPE_Q5_K>(const uint8_t *b, int j, float *f) {
    fr_cuq_deq8_k45<true>(b, b + 16, b + 48, j, f);
}

/* q6_k: per half h (128 elements, e = 0..127): low 4 bits in ql[64h + e%64] (low nibble for
 * e < 64, high nibble above), high 2 bits in qh[32h + e%32] at bit 2*(e/32); scale
 * scales[8h + e/16]. */
template <>
__device__ __forceinline__ void fr_cuq_deq8<FR_DTYPE_Q6_K>(const uint8_t *b, int j, float *f) {
    const float d = fr_cuq_half(b + 208);
    const int e0 = 8 * j, h = e0 >> 7, e = e0 & 127;
    const uint8_t *ql = b + 64 * h + (e & 63), *qh = b + 128 + 32 * h + (e & 31);
    const int lshift = e >= 64 ? 4 : 0, hshift = 2 * (e >> 5);
    const float ds = d * (float)((const int8_t *)(b + 192))[8 * h + (e >> 4)];
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int q = ((ql[i] >> lshift) & 0xF) | ((qh[i] >> hshift) & 3) << 4;
        f[i] = ds * (float)(q - 32);
    }
}

/* The aligned 16-byte chunk at a: one load when it lies inside [lo, hi) (the weight tensor),
 * otherwise only the bytes inside, one at a time (never a read outside the tensor). */
__device__ __forceinline__ uint4 fr_cuq_chunk(uintptr_t a, uintptr_t lo, uintptr_t hi) {
    if (a >= lo && a + 16 <= hi) return __ldg((const uint4 *)a);
    uint32_t v[4] = {0, 0, 0, 0};
    for (int i = 0; i < 16; i++)
        if (a + i >= lo && a + i < hi)
            v[i >> 2] |= (uint32_t)(*(const uint8_t *)(a + i)) << (8 * (i & 3));
    return make_uint4(v[0], v[1], v[2], v[3]);
}

#endif
