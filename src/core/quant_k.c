/* K formats (q4_k, q5_k, q6_k) and q8_k activations.
 *
 * Quantization works in two levels, as the format does: first every sub-block gets its own real
 * scale (and min) from a small search, then those scales are themselves quantized (6 bits
 * relative to the largest for q4_k/q5_k, int8 for q6_k) under one f16 super-scale, and finally
 * every element is rounded again against the scale that will actually be decoded.
 *
 * The sub-block search: rounding to the min/max grid is rarely optimal, because the extreme
 * values waste part of the first and last level. So we try a few slightly stretched or shrunk
 * grids, and for the integer levels each grid produces we solve the weighted least-squares
 * problem for the scale (and offset) in closed form, keeping the grid with the smallest error.
 * Weights emphasise large values (|x| plus the block RMS for the affine formats, x^2 for the
 * symmetric one), which is what keeps outliers accurate. */
#include <math.h>
#include <string.h>

#include "core/quant.h"

static inline int round_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo; /* also NaN */
    if (v >= (float)hi) return hi;
    return (int)lrintf(v);
}

/* The super-scale as decoded: rounded away from zero to the next f16 (saturating at 65504), so
 * the largest sub-scale never has to clip and a tiny block's scale never flushes to zero (which
 * in the subnormal range round-to-nearest would do, decoding the whole block to its mins). */
static float super_scale(float d) {
    const float a = fabsf(d);
    uint16_t h = fr_f32_to_f16_sat(a);
    if (fr_f16_to_f32(h) < a && h < 0x7bff) h++;
    return d < 0 ? -fr_f16_to_f32(h) : fr_f16_to_f32(h);
}

/* x ~= s*l + o with l in [0, nmax], s >= 0, o <= 0 (the format stores -o as an unsigned min).
 * Tries grids whose step maps the range [min(x,0), max(x)] onto nmax + rmin + rdelta*k levels. */
static void fit_affine(const float *x, const float *w, int n, int nmax, float rmin, float rdelta,
                       int nstep, uint8_t *L, float *scale, float *offset) {
    float lo = x[0], hi = x[0];
    double sw = 0, sx = 0;
    for (int i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
        sw += w[i];
        sx += (double)w[i] * x[i];
    }
    if (lo > 0.0f) lo = 0.0f;
    if (!(hi > lo)) {
        memset(L, 0, (size_t)n);
        *scale = 0.0f;
        *offset = lo;
        return;
    }
    float best_s = (hi - lo) / (float)nmax, best_o = lo;
    double best_err = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)round_clamp((x[i] - lo) / best_s, 0, nmax);
        double e = (double)best_s * L[i] + best_o - x[i];
        best_err += w[i] * e * e;
    }
    uint8_t aux[FR_QK_K];
    for (int k = 0; k <= nstep; k++) {
        /* the grid is anchored at the best offset found so far, which refines it as we go */
        const float iscale = ((float)nmax + rmin + rdelta * (float)k) / (hi - lo);
        double sl = 0, sll = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int l = round_clamp(iscale * (x[i] - lo), 0, nmax);
            aux[i] = (uint8_t)l;
            sl += (double)w[i] * l;
            sll += (double)w[i] * l * l;
            sxl += (double)w[i] * l * x[i];
        }
        const double det = sw * sll - sl * sl;
        if (!(det > 0)) continue;
        double s = (sw * sxl - sx * sl) / det, o = (sll * sx - sl * sxl) / det;
        if (o > 0) { /* a positive offset is not representable: refit through zero */
            o = 0;
            s = sxl / sll;
        }
        if (!(s > 0)) continue;
        double err = 0;
        for (int i = 0; i < n; i++) {
            double e = s * aux[i] + o - x[i];
            err += w[i] * e * e;
        }
        if (err < best_err) {
            best_err = err;
            best_s = (float)s;
            best_o = (float)o;
            lo = best_o;
            memcpy(L, aux, (size_t)n);
        }
    }
    /* alternate rounding and refitting while it still helps (a few steps of Lloyd's method) */
    for (int it = 0; it < 4; it++) {
        double sl = 0, sll = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int l = round_clamp((x[i] - best_o) / best_s, 0, nmax);
            aux[i] = (uint8_t)l;
            sl += (double)w[i] * l;
            sll += (double)w[i] * l * l;
            sxl += (double)w[i] * l * x[i];
        }
        const double det = sw * sll - sl * sl;
        if (!(det > 0)) break;
        double s = (sw * sxl - sx * sl) / det, o = (sll * sx - sl * sxl) / det;
        if (o > 0) {
            o = 0;
            s = sxl / sll;
        }
        if (!(s > 0)) break;
        double err = 0;
        for (int i = 0; i < n; i++) {
            double e = s * aux[i] + o - x[i];
            err += w[i] * e * e;
        }
        if (!(err < best_err)) break;
        best_err = err;
        best_s = (float)s;
        best_o = (float)o;
        memcpy(L, aux, (size_t)n);
    }
    *scale = best_s;
    *offset = best_o;
}

/* Shared by q4_k and q5_k: chooses d, dmin, the packed 6-bit scales/mins and the final levels
 * L[0..255] in [0, nmax]. */
static void quantize_affine_superblock(const float *x, int nmax, float rmin, float rdelta,
                                       int nstep, uint16_t *d_out, uint16_t *dmin_out,
                                       uint8_t *packed, uint8_t *L) {
    float sc[8], mn[8], w[32];
    float max_sc = 0.0f, max_mn = 0.0f;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        double s2 = 0;
        for (int l = 0; l < 32; l++)
            s2 += (double)xs[l] * xs[l];
        const float rms = (float)sqrt(s2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = rms + fabsf(xs[l]);
        float o;
        fit_affine(xs, w, 32, nmax, rmin, rdelta, nstep, L + 32 * j, &sc[j], &o);
        mn[j] = -o;
        max_sc = fmaxf(max_sc, sc[j]);
        max_mn = fmaxf(max_mn, mn[j]);
    }
    /* the sub-scales are rounded against the super-scales as they will be decoded */
    const float d = super_scale(max_sc / 63.0f), dmin = super_scale(max_mn / 63.0f);
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)(d > 0.0f ? round_clamp(sc[j] / d, 0, 63) : 0);
        lm[j] = (uint8_t)(dmin > 0.0f ? round_clamp(mn[j] / dmin, 0, 63) : 0);
    }
    memset(packed, 0, FR_K_SCALE);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            packed[j] |= ls[j];
            packed[j + 4] |= lm[j];
        } else {
            packed[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
            packed[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            packed[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
    *d_out = fr_f32_to_f16(d);
    *dmin_out = fr_f32_to_f16(dmin);
    for (int j = 0; j < 8; j++) {
        const float ds = d * ls[j], dm = dmin * lm[j];
        for (int l = 0; l < 32; l++)
            L[32 * j + l] =
                (uint8_t)(ds > 0.0f ? round_clamp((x[32 * j + l] + dm) / ds, 0, nmax) : 0);
    }
}

void fr_quantize_row_q4_k(const float *x, fr_block_q4_k *y, int64_t n) {
    uint8_t L[FR_QK_K];
    for (int64_t b = 0; b < n / FR_QK_K; b++, x += FR_QK_K) {
        quantize_affine_superblock(x, 15, -1.0f, 0.1f, 20, &y[b].d, &y[b].dmin, y[b].scales, L);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                y[b].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
    }
}

void fr_quantize_row_q5_k(const float *x, fr_block_q5_k *y, int64_t n) {
    uint8_t L[FR_QK_K];
    for (int64_t b = 0; b < n / FR_QK_K; b++, x += FR_QK_K) {
        quantize_affine_superblock(x, 31, -0.5f, 0.1f, 15, &y[b].d, &y[b].dmin, y[b].scales, L);
        memset(y[b].qh, 0, sizeof y[b].qh);
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                const uint8_t lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                y[b].qs[32 * c + l] = (uint8_t)((lo & 0xF) | (hi & 0xF) << 4);
                y[b].qh[l] |= (uint8_t)((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
            }
        }
    }
}

/* x ~= s*l with l in [-nmax, nmax-1]; returns s (sign opposite to the extreme value, so that
 * the extreme lands on the extra negative level). Grids are scanned around nmax levels. */
static float fit_symmetric(const float *x, int n, int nmax, int8_t *L) {
    float amax = 0.0f, mx = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            mx = x[i];
        }
    }
    if (amax < 1e-30f) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    double best = -1;
    float best_s = 0.0f;
    int8_t aux[FR_QK_K];
    for (int k = -9; k <= 9; k++) {
        const float iscale = -((float)nmax + 0.1f * (float)k) / mx;
        double sxl = 0, sll = 0;
        for (int i = 0; i < n; i++) {
            const int l = round_clamp(iscale * x[i], -nmax, nmax - 1);
            const double w = (double)x[i] * x[i];
            aux[i] = (int8_t)l;
            sxl += w * x[i] * l;
            sll += w * l * l;
        }
        if (sll > 0 && sxl * sxl / sll > best) {
            best = sxl * sxl / sll;
            best_s = (float)(sxl / sll);
            memcpy(L, aux, (size_t)n);
        }
    }
    return best_s;
}

void fr_quantize_row_q6_k(const float *x, fr_block_q6_k *y, int64_t n) {
    int8_t L[FR_QK_K];
    float sc[16];
    for (int64_t b = 0; b < n / FR_QK_K; b++, x += FR_QK_K) {
        float max_s = 0.0f, amax_s = 0.0f;
        for (int j = 0; j < 16; j++) {
            sc[j] = fit_symmetric(x + 16 * j, 16, 32, L + 16 * j);
            if (fabsf(sc[j]) > amax_s) {
                amax_s = fabsf(sc[j]);
                max_s = sc[j];
            }
        }
        memset(&y[b], 0, sizeof y[b]);
        if (amax_s < 1e-30f) continue; /* an all-zero block decodes to zeros */
        /* the largest sub-scale maps to -128 so that int8 range is used fully */
        const float d = super_scale(max_s / -128.0f);
        y[b].d = fr_f32_to_f16(d);
        for (int j = 0; j < 16; j++) {
            y[b].scales[j] = (int8_t)(d != 0.0f ? round_clamp(sc[j] / d, -128, 127) : 0);
            const float ds = d * y[b].scales[j];
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(ds != 0.0f ? round_clamp(x[16 * j + l] / ds, -32, 31) : 0);
        }
        for (int h = 0; h < 2; h++) {
            const int8_t *q = L + 128 * h;
            uint8_t *ql = y[b].ql + 64 * h, *qh = y[b].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                const int q0 = q[l] + 32, q1 = q[l + 32] + 32, q2 = q[l + 64] + 32,
                          q3 = q[l + 96] + 32;
                ql[l] = (uint8_t)((q0 & 0xF) | (q2 & 0xF) << 4);
                ql[l + 32] = (uint8_t)((q1 & 0xF) | (q3 & 0xF) << 4);
                qh[l] = (uint8_t)((q0 >> 4) | (q1 >> 4) << 2 | (q2 >> 4) << 4 | (q3 >> 4) << 6);
            }
        }
    }
}

void fr_quantize_row_q8_k(const float *x, fr_block_q8_k *y, int64_t n) {
    for (int64_t b = 0; b < n / FR_QK_K; b++, x += FR_QK_K) {
        float amax = 0.0f;
        for (int i = 0; i < FR_QK_K; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        const float iscale = amax > 0.0f ? 127.0f / amax : 0.0f;
        y[b].d = amax > 0.0f ? amax / 127.0f : 0.0f;
        for (int j = 0; j < FR_QK_K / 16; j++) {
            int sum = 0;
            for (int i = 16 * j; i < 16 * j + 16; i++) {
                y[b].qs[i] = (int8_t)round_clamp(x[i] * iscale, -127, 127);
                sum += y[b].qs[i];
            }
            y[b].bsums[j] = (int16_t)sum;
        }
    }
}

/* ---------------------------------------------------------------- dequantization */

void fr_dequantize_row_q4_k(const fr_block_q4_k *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const float d = fr_f16_to_f32(x[b].d), dmin = fr_f16_to_f32(x[b].dmin);
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            fr_q4k_scale_min(2 * c, x[b].scales, &sc0, &m0);
            fr_q4k_scale_min(2 * c + 1, x[b].scales, &sc1, &m1);
            const float d0 = d * sc0, o0 = dmin * m0, d1 = d * sc1, o1 = dmin * m1;
            const uint8_t *q = x[b].qs + 32 * c;
            for (int l = 0; l < 32; l++)
                y[l] = d0 * (float)(q[l] & 0xF) - o0;
            for (int l = 0; l < 32; l++)
                y[32 + l] = d1 * (float)(q[l] >> 4) - o1;
            y += 64;
        }
    }
}

void fr_dequantize_row_q5_k(const fr_block_q5_k *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const float d = fr_f16_to_f32(x[b].d), dmin = fr_f16_to_f32(x[b].dmin);
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            fr_q4k_scale_min(2 * c, x[b].scales, &sc0, &m0);
            fr_q4k_scale_min(2 * c + 1, x[b].scales, &sc1, &m1);
            const float d0 = d * sc0, o0 = dmin * m0, d1 = d * sc1, o1 = dmin * m1;
            const uint8_t *q = x[b].qs + 32 * c, *qh = x[b].qh;
            for (int l = 0; l < 32; l++)
                y[l] = d0 * (float)((q[l] & 0xF) | ((qh[l] >> (2 * c)) & 1) << 4) - o0;
            for (int l = 0; l < 32; l++)
                y[32 + l] = d1 * (float)((q[l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4) - o1;
            y += 64;
        }
    }
}

void fr_dequantize_row_q6_k(const fr_block_q6_k *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / FR_QK_K; b++) {
        const float d = fr_f16_to_f32(x[b].d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[b].ql + 64 * h, *qh = x[b].qh + 32 * h;
            const int8_t *sc = x[b].scales + 8 * h;
            for (int e = 0; e < 128; e++) {
                const int lo = e < 64 ? ql[e] & 0xF : ql[e - 64] >> 4;
                const int hi = (qh[e % 32] >> (2 * (e / 32))) & 3;
                y[e] = d * (float)sc[e / 16] * (float)((lo | hi << 4) - 32);
            }
            y += 128;
        }
    }
}
