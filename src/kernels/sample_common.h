/* The arithmetic of the `sample` op (see fr_op_sample in backend.h), shared verbatim by the CPU
 * backend (C) and the CUDA backend (device code), so that both compute bit-identical token
 * weights, thresholds and random numbers and therefore return identical ids.
 *
 * Why it is bit-exact: every float operation here is a single IEEE operation with a defined
 * rounding (explicit fmaf where a fused multiply-add is wanted; __fmul_rn / __fsub_rn on the
 * device, which nvcc never contracts into an FMA even under --use_fast_math), denormals are
 * flushed to zero by looking at the bits (the CUDA build flushes them in hardware, the CPU does
 * not, so both flush them explicitly first), the exponential is our own polynomial instead of
 * libm's or CUDA's expf, and every sum of weights is an integer sum (fixed point), which is
 * associative: the order in which threads add does not matter. */
#ifndef FR_KERNELS_SAMPLE_COMMON_H
#define FR_KERNELS_SAMPLE_COMMON_H

#include <stdint.h>

#ifdef __CUDACC__
#define FR_SMP_FN static __host__ __device__ __forceinline__
#else
#include <math.h>
#include <string.h>
#define FR_SMP_FN static inline
#endif

#if defined(__CUDA_ARCH__)
#define FR_SMP_MUL(a, b)    __fmul_rn((a), (b))
#define FR_SMP_SUB(a, b)    __fsub_rn((a), (b))
#define FR_SMP_FMA(a, b, c) __fmaf_rn((a), (b), (c))
#define FR_SMP_DMUL(a, b)   __dmul_rn((a), (b))
#else
#define FR_SMP_MUL(a, b)    ((a) * (b))
#define FR_SMP_SUB(a, b)    ((a) - (b))
#define FR_SMP_FMA(a, b, c) fmaf((a), (b), (c))
#define FR_SMP_DMUL(a, b)   ((a) * (b))
#endif

/* A token's weight is exp(l - max) in fixed point with 40 fraction bits: the top token weighs
 * exactly 2^40 and anything below exp(-28) (< 2^-40) weighs 0. */
#define FR_SMP_ONE (1ull << 40)
/* Sums of up to 2^23 weights stay below 2^63 (the wrapper enforces V <= FR_SMP_MAX_VOCAB). */
#define FR_SMP_MAX_VOCAB (1 << 23)

FR_SMP_FN uint32_t fr_smp_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
#endif
}

FR_SMP_FN float fr_smp_float(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, 4);
    return f;
#endif
}

/* Denormals and -0 become +0 (decided on the bits, so hardware flush-to-zero cannot differ). */
FR_SMP_FN float fr_smp_ftz(float f) {
    return (fr_smp_bits(f) & 0x7f800000u) ? f : 0.0f;
}

/* A logit takes part unless it is NaN or -inf (both mean "masked"). */
FR_SMP_FN int fr_smp_valid(float x) {
    const uint32_t u = fr_smp_bits(x);
    return (u & 0x7fffffffu) <= 0x7f800000u && u != 0xff800000u;
}

/* Order-preserving map of floats to unsigned keys: a < b as floats <=> key(a) < key(b)
 * (for non-NaN values with -0 already folded into +0). */
FR_SMP_FN uint32_t fr_smp_key(float f) {
    const uint32_t u = fr_smp_bits(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

FR_SMP_FN float fr_smp_unkey(uint32_t k) {
    return fr_smp_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

/* The key argmax compares: -0 and +0 tie, everything else keeps its IEEE order. */
FR_SMP_FN uint32_t fr_smp_argmax_key(float x) {
    return fr_smp_key(fr_smp_bits(x) == 0x80000000u ? 0.0f : x);
}

/* 1/temperature, or 0 when that is not a normal finite float (the wrapper rejects those). */
FR_SMP_FN float fr_smp_inv_temperature(float t) {
    const float inv = 1.0f / t; /* computed on the host only: both backends call this there */
    return fr_smp_valid(inv) && fr_smp_bits(inv) != 0x7f800000u && fr_smp_ftz(inv) == inv ? inv
                                                                                          : 0.0f;
}

/* The scaled logit l = x / temperature as x * (1/temperature), flushed. */
FR_SMP_FN float fr_smp_scale(float x, float inv_t) {
    return fr_smp_ftz(FR_SMP_MUL(fr_smp_ftz(x), inv_t));
}

/* Fixed-point weight of scaled logit l given the row maximum m >= l:
 * floor(2^40 * exp(l - m)), with exp from a Cody-Waite reduction and a degree-7 Taylor
 * polynomial (about 1 ulp of float). l == m weighs exactly 2^40 (also for m = +-inf). */
FR_SMP_FN uint64_t fr_smp_weight(float l, float m) {
    if (l == m) return FR_SMP_ONE;
    const float d = fr_smp_ftz(FR_SMP_SUB(l, m));
    if (!(d >= -28.0f)) return 0; /* also d = -inf or NaN */
    const float n = rintf(FR_SMP_MUL(d, 1.44269502f));
    float r = FR_SMP_FMA(-n, 0.693145751953125f, d); /* ln2 split: hi has 16 bits, n*hi exact */
    r = fr_smp_ftz(FR_SMP_FMA(-n, 1.42860677e-06f, r));
    float p = 1.98412701e-04f; /* 1/7! ... 1/0! */
    p = FR_SMP_FMA(p, r, 1.38888892e-03f);
    p = FR_SMP_FMA(p, r, 8.33333377e-03f);
    p = FR_SMP_FMA(p, r, 4.16666679e-02f);
    p = FR_SMP_FMA(p, r, 1.66666672e-01f);
    p = FR_SMP_FMA(p, r, 0.5f);
    p = FR_SMP_FMA(p, r, 1.0f);
    p = FR_SMP_FMA(p, r, 1.0f);
    const int k = 40 + (int)n; /* d in [-28, 0) gives n in [-40, 0] */
    if (k < 0) return 0;
    /* p * 2^k is exact (power-of-two scaling of a normal float) and below 2^41 */
    const float s = FR_SMP_MUL(p, fr_smp_float((uint32_t)(k + 127) << 23));
#ifdef __CUDA_ARCH__
    return __float2ull_rz(s);
#else
    return (uint64_t)s;
#endif
}

/* Kept by min-p when weight >= this (min_p <= 0: everything; min_p = 1: only the maxima). */
FR_SMP_FN uint64_t fr_smp_min_p_limit(float min_p) {
    if (!(min_p > 0.0f)) return 0;
    return (uint64_t)ceil(FR_SMP_DMUL((double)min_p, (double)FR_SMP_ONE));
}

/* Kept by top-p when the weight of strictly larger tokens is below this (>= 1, <= z). */
FR_SMP_FN uint64_t fr_smp_top_p_limit(float top_p, uint64_t z) {
    const uint64_t p = (uint64_t)ceil(FR_SMP_DMUL((double)top_p, (double)z));
    return p < 1 ? 1 : (p > z ? z : p);
}

/* splitmix64's finaliser: a bijection with full avalanche. */
FR_SMP_FN uint64_t fr_smp_mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The 64 random bits row `row` draws in the call that sees `counter`. Counter-based, so any
 * (seed, counter, row) can be recomputed anywhere (tests, other backends). */
FR_SMP_FN uint64_t fr_smp_random(uint64_t seed, uint64_t counter, int64_t row) {
    return fr_smp_mix(fr_smp_mix(fr_smp_mix(seed) ^ counter) ^ (uint64_t)row);
}

/* floor(a * b / 2^64): maps 64 random bits onto [0, b). */
FR_SMP_FN uint64_t fr_smp_mulhi(uint64_t a, uint64_t b) {
#ifdef __CUDA_ARCH__
    return __umul64hi(a, b);
#else
    const uint64_t al = a & 0xffffffffu, ah = a >> 32, bl = b & 0xffffffffu, bh = b >> 32;
    const uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    const uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
    return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
#endif
}

#endif
