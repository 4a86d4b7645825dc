/* Quantized block formats.
 *
 * With no arguments: self-test.
 *   - Block layouts: fr_dequantize_row against a float64 per-element decoder written here from
 *     the GGML layout description, on random blocks with extreme scales (f16 subnormal, 65504,
 *     zero, negative).
 *   - Round trips on several data sets, with a per-element error bound for the legacy formats
 *     that follows from their rounding rule, a per-super-block RMSE bound for the K formats, and
 *     on Gaussian data absolute RMSE bounds plus "the K search beats plain min/max rounding".
 *   - Argument checks, saturation, q8_k activations.
 * With arguments it is the C side of tests/test_gguf.sh (the gguf PyPI package as oracle):
 *   test_quant gen OUT.gguf OUT.json    writes metadata of every type and random/quantized
 *                                        tensors of every dtype with our writer + our dequant
 *   test_quant dump IN.gguf OUTDIR       reads a GGUF with our reader: OUTDIR/meta.json and
 *                                        OUTDIR/t<i>.f32 (our dequantization of tensor i) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "core/quant.h"
#include "model/gguf.h"

static const fr_dtype qtypes[] = {FR_DTYPE_Q8_0, FR_DTYPE_Q4_0, FR_DTYPE_Q4_1, FR_DTYPE_Q5_0,
                                  FR_DTYPE_Q5_1, FR_DTYPE_Q4_K, FR_DTYPE_Q5_K, FR_DTYPE_Q6_K};
#define N_QTYPES (int)(sizeof qtypes / sizeof qtypes[0])

static double gauss(fr_test_rng *r) {
    double u = 1.0 - fr_test_rng_uniform(r), v = fr_test_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* ---------------------------------------------------------------- float64 reference decoder */

static double h16(const uint8_t *p) {
    return fr_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* Element i of one block, straight from the layout description in core/quant.h. */
static double ref_elem(fr_dtype t, const uint8_t *b, int i) {
    const int nib = 4 * ((i % 32) / 16); /* legacy: low nibble for the first half */
    switch (t) {
    case FR_DTYPE_Q8_0:
        return h16(b) * (int8_t)b[2 + i];
    case FR_DTYPE_Q4_0:
        return h16(b) * (((b[2 + i % 16] >> nib) & 15) - 8);
    case FR_DTYPE_Q4_1:
        return h16(b) * ((b[4 + i % 16] >> nib) & 15) + h16(b + 2);
    case FR_DTYPE_Q5_0: {
        uint32_t qh = b[2] | b[3] << 8 | b[4] << 16 | (uint32_t)b[5] << 24;
        int q = ((b[6 + i % 16] >> nib) & 15) | (int)((qh >> i) & 1) << 4;
        return h16(b) * (q - 16);
    }
    case FR_DTYPE_Q5_1: {
        uint32_t qh = b[4] | b[5] << 8 | b[6] << 16 | (uint32_t)b[7] << 24;
        int q = ((b[8 + i % 16] >> nib) & 15) | (int)((qh >> i) & 1) << 4;
        return h16(b) * q + h16(b + 2);
    }
    case FR_DTYPE_Q4_K:
    case FR_DTYPE_Q5_K: {
        const int j = i / 32, l = i % 32;
        const uint8_t *s = b + 4;
        int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        int m = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | (s[j] >> 6) << 4;
        const uint8_t *qs = b + (t == FR_DTYPE_Q4_K ? 16 : 48);
        int q = (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15;
        if (t == FR_DTYPE_Q5_K) q |= ((b[16 + l] >> j) & 1) << 4;
        return h16(b) * sc * q - h16(b + 2) * m;
    }
    case FR_DTYPE_Q6_K: {
        const int h = i / 128, e = i % 128;
        int lo = (b[64 * h + e % 64] >> (4 * (e / 64))) & 15;
        int hi = (b[128 + 32 * h + e % 32] >> (2 * (e / 32))) & 3;
        return h16(b + 208) * (int8_t)b[192 + i / 16] * ((lo | hi << 4) - 32);
    }
    default:
        return NAN;
    }
}

/* Offsets of the f16 scale fields of a block (-1 terminated). */
static const int *scale_fields(fr_dtype t) {
    static const int d0[] = {0, -1}, dm[] = {0, 2, -1}, q6[] = {208, -1};
    switch (t) {
    case FR_DTYPE_Q4_1:
    case FR_DTYPE_Q5_1:
    case FR_DTYPE_Q4_K:
    case FR_DTYPE_Q5_K:
        return dm;
    case FR_DTYPE_Q6_K:
        return q6;
    default:
        return d0;
    }
}

/* A finite f16 from one of five regimes: normal, subnormal, near 65504, zero, negative. */
static uint16_t regime_f16(fr_test_rng *r, int regime) {
    uint16_t man = (uint16_t)(fr_test_rng_u64(r) & 0x3ff);
    switch (regime % 5) {
    case 0:
        return (uint16_t)((1 + fr_test_rng_u64(r) % 18) << 10 | man); /* 2^-14 .. 2^3 */
    case 1:
        return man ? man : 1; /* subnormal */
    case 2:
        return (uint16_t)((29 + fr_test_rng_u64(r) % 2) << 10 | man); /* 16384 .. 65504 */
    case 3:
        return 0;
    default:
        return (uint16_t)(0x8000 | (10 + fr_test_rng_u64(r) % 8) << 10 | man);
    }
}

/* Random bytes with every scale field replaced by a finite f16 of a regime cycling per block. */
static void random_blocks(fr_dtype t, uint8_t *dst, int64_t n_blocks, fr_test_rng *r) {
    const int bb = fr_dtype_get(t)->block_bytes;
    for (int64_t b = 0; b < n_blocks; b++) {
        uint8_t *p = dst + b * bb;
        for (int k = 0; k < bb; k++)
            p[k] = (uint8_t)fr_test_rng_u64(r);
        for (const int *f = scale_fields(t); *f >= 0; f++) {
            uint16_t h = regime_f16(r, (int)(b + (f - scale_fields(t))));
            p[*f] = (uint8_t)h;
            p[*f + 1] = (uint8_t)(h >> 8);
        }
    }
}

static void test_layouts(void) {
    fr_test_rng rng = {11};
    for (int k = 0; k < N_QTYPES; k++) {
        const fr_dtype t = qtypes[k];
        const fr_dtype_info *info = fr_dtype_get(t);
        const int64_t nb = 200, n = nb * info->block_elems;
        uint8_t *blocks = malloc((size_t)(nb * info->block_bytes));
        float *out = malloc((size_t)n * sizeof(float));
        random_blocks(t, blocks, nb, &rng);
        fr_dequantize_row(t, blocks, out, n);
        int bad = 0;
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *blk = blocks + (i / info->block_elems) * info->block_bytes;
            double ref = ref_elem(t, blk, (int)(i % info->block_elems));
            double err = fabs(out[i] - ref), tol = 4e-7 * fabs(ref);
            if (!(err <= tol)) bad++;
            if (err > worst) worst = err;
        }
        CHECK(bad == 0, "%s: %d of %lld elements differ from the float64 layout decoder (max %g)",
              info->name, bad, (long long)n, worst);
        free(blocks);
        free(out);
    }
    /* type ids stored in files: the GGML numbering */
    static const struct {
        fr_dtype t;
        int id;
    } ids[] = {{FR_DTYPE_F32, 0},   {FR_DTYPE_F16, 1},   {FR_DTYPE_Q4_0, 2},  {FR_DTYPE_Q4_1, 3},
               {FR_DTYPE_Q5_0, 6},  {FR_DTYPE_Q5_1, 7},  {FR_DTYPE_Q8_0, 8},  {FR_DTYPE_Q4_K, 12},
               {FR_DTYPE_Q5_K, 13}, {FR_DTYPE_Q6_K, 14}, {FR_DTYPE_BF16, 30}, {FR_DTYPE_I32, 26}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        fr_dtype back = FR_DTYPE_COUNT;
        CHECK(fr_dtype_to_ggml(ids[i].t) == ids[i].id, "%s ggml id", fr_dtype_name(ids[i].t));
        CHECK(fr_dtype_from_ggml((uint32_t)ids[i].id, &back) && back == ids[i].t, "id %d back",
              ids[i].id);
        int be, bb;
        CHECK(fr_ggml_type_info((uint32_t)ids[i].id, &be, &bb, NULL) &&
                  be == fr_dtype_get(ids[i].t)->block_elems &&
                  bb == fr_dtype_get(ids[i].t)->block_bytes,
              "%s block layout agrees with dtype.c", fr_dtype_name(ids[i].t));
    }
    fr_dtype dummy;
    CHECK(!fr_dtype_from_ggml(10, &dummy) && fr_ggml_type_info(10, NULL, NULL, NULL),
          "Q2_K is known but not computable");
    CHECK(!fr_ggml_type_info(4, NULL, NULL, NULL) && !fr_ggml_type_info(1000, NULL, NULL, NULL),
          "removed / unknown ids");
}

/* ---------------------------------------------------------------- round trips */

enum {
    DATA_GAUSS,
    DATA_MIXED,
    DATA_OUTLIERS,
    DATA_CONST,
    DATA_ZEROS,
    DATA_POSITIVE,
    DATA_TINY,
    DATA_COUNT
};
static const char *data_names[DATA_COUNT] = {"gaussian", "mixed-scale", "outliers", "constant",
                                             "zeros",    "positive",    "tiny"};

static void make_data(int kind, float *x, int64_t n, fr_test_rng *r) {
    double scale = 1.0, c = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (i % 256 == 0) { /* per super-block parameters */
            scale = pow(10.0, 6.0 * fr_test_rng_uniform(r) - 3.0);
            c = gauss(r) * pow(10.0, 4.0 * fr_test_rng_uniform(r) - 2.0);
        }
        double g = gauss(r);
        switch (kind) {
        case DATA_GAUSS:
            x[i] = (float)g;
            break;
        case DATA_MIXED:
            x[i] = (float)(g * scale);
            break;
        case DATA_OUTLIERS:
            x[i] = (float)(fr_test_rng_uniform(r) < 0.01 ? 30.0 * g : g);
            break;
        case DATA_CONST:
            x[i] = (float)c;
            break;
        case DATA_ZEROS:
            x[i] = 0.0f;
            break;
        case DATA_POSITIVE:
            x[i] = (float)fr_test_rng_uniform(r);
            break;
        default:
            x[i] = (float)(g * 1e-5);
            break;
        }
    }
}

static double f16_err(double d) {
    return fabs(d - fr_f16_to_f32(fr_f32_to_f16_sat((float)d)));
}

/* Worst-case error of element x in a legacy block, from the rounding rule: half a step, or the
 * clipped distance for the one level the symmetric formats lack at +half; plus the error the f16
 * rounding of the scale (and min) causes at the largest level; plus float slack. */
static double legacy_bound(fr_dtype t, const float *blk, int i) {
    double amax = 0, mx = 0, lo = blk[0], hi = blk[0];
    for (int j = 0; j < 32; j++) {
        if (fabs(blk[j]) > amax) {
            amax = fabs(blk[j]);
            mx = blk[j];
        }
        lo = fmin(lo, blk[j]);
        hi = fmax(hi, blk[j]);
    }
    const double slack = 1e-6 * amax + 1e-30;
    switch (t) {
    case FR_DTYPE_Q8_0:
        return amax / 254 + 127 * f16_err(amax / 127) + slack;
    case FR_DTYPE_Q4_0:
    case FR_DTYPE_Q5_0: {
        const int half = t == FR_DTYPE_Q4_0 ? 8 : 16;
        double d = fabs(mx) / half, v = mx != 0 ? blk[i] / (mx / -half) : 0;
        double round_err = v > half - 0.5 ? (v - (half - 1)) * d : d / 2;
        return round_err + half * f16_err(d) + slack;
    }
    default: {
        const int top = t == FR_DTYPE_Q4_1 ? 15 : 31;
        double d = (hi - lo) / top;
        return d / 2 + top * f16_err(d) + f16_err(lo) + slack;
    }
    }
}

typedef struct rt_result {
    double rmse, rms, worst_ratio; /* worst_ratio: max over blocks of error / bound */
} rt_result;

static rt_result round_trip(fr_dtype t, const float *x, int64_t n) {
    const fr_dtype_info *info = fr_dtype_get(t);
    void *q = malloc(fr_dtype_row_bytes(t, n));
    float *y = malloc((size_t)n * sizeof(float));
    fr_error err;
    rt_result res = {0, 0, 0};
    fr_status st = fr_quantize_row(t, x, q, n, &err);
    CHECK(st == FR_OK, "%s quantize: %s", info->name, err.msg);
    fr_dequantize_row(t, q, y, n);
    double se = 0, sx = 0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        sx += (double)x[i] * x[i];
    }
    res.rmse = sqrt(se / n);
    res.rms = sqrt(sx / n);
    if (info->block_elems == 32) {
        for (int64_t i = 0; i < n; i++) {
            const float *blk = x + i / 32 * 32;
            double r = fabs((double)y[i] - x[i]) / legacy_bound(t, blk, (int)(i % 32));
            if (!(r <= res.worst_ratio)) res.worst_ratio = r; /* NaN propagates as a failure */
        }
    } else {
        /* K formats: per super-block, RMSE <= 1.25 * step/sqrt(12) with the plainest step
         * 2*amax/(2^bits - 1) (where the search starts), plus what an f16 super-scale that is
         * subnormal can cost: it is off by up to 2^-25, times the largest level (15/31/32) and
         * sub-scale (63/63/128), plus the same for dmin (63 * 2^-25). */
        const int bits = t == FR_DTYPE_Q4_K ? 4 : t == FR_DTYPE_Q5_K ? 5 : 6;
        const double levels = (1 << bits) - 1;
        const double floor16 = (t == FR_DTYPE_Q6_K ? 32 * 128 : levels * 63 + 63) * 0x1p-25;
        for (int64_t b = 0; b < n / 256; b++) {
            double amax = 0, s = 0;
            for (int i = 0; i < 256; i++) {
                amax = fmax(amax, fabs(x[256 * b + i]));
                s += ((double)y[256 * b + i] - x[256 * b + i]) *
                     ((double)y[256 * b + i] - x[256 * b + i]);
            }
            double bound = 1.25 * 2 * amax / (levels * sqrt(12.0)) + floor16 + 1e-6 * amax + 1e-30;
            double r = sqrt(s / 256) / bound;
            if (!(r <= res.worst_ratio)) res.worst_ratio = r;
        }
    }
    free(q);
    free(y);
    return res;
}

/* Plain float64 quantizers with exact (unrounded) scales, for the K formats' sub-block sizes:
 * affine min/max rounding for q4_k/q5_k, symmetric absmax rounding for q6_k. */
static double naive_k_rmse(fr_dtype t, const float *x, int64_t n) {
    const int sub = t == FR_DTYPE_Q6_K ? 16 : 32;
    const int top = t == FR_DTYPE_Q4_K ? 15 : 31;
    double se = 0;
    for (int64_t b = 0; b < n / sub; b++) {
        const float *v = x + b * sub;
        double lo = v[0], hi = v[0], amax = 0;
        for (int i = 0; i < sub; i++) {
            lo = fmin(lo, v[i]);
            hi = fmax(hi, v[i]);
            amax = fmax(amax, fabs(v[i]));
        }
        for (int i = 0; i < sub; i++) {
            double y;
            if (t == FR_DTYPE_Q6_K) {
                double d = amax / 31.5;
                y = d > 0 ? fmax(-32, fmin(31, round(v[i] / d))) * d : 0;
            } else {
                double d = (hi - lo) / top;
                y = d > 0 ? round((v[i] - lo) / d) * d + lo : lo;
            }
            se += (y - v[i]) * (y - v[i]);
        }
    }
    return sqrt(se / n);
}

static void test_round_trips(void) {
    const int64_t n = 256 * 256;
    float *x = malloc((size_t)n * sizeof(float));
    /* RMSE / RMS on unit Gaussian data. Expected: step/sqrt(12) with the step set by the extreme
     * values of a block (32 Gaussians: |max| ~ 2.1, range ~ 4.1; 16: |max| ~ 1.8): q8_0
     * 2.1/127/3.46 = 0.0048, q4_0 2.1/8/3.46 = 0.076 (+ the missing +8 level), q4_1 4.1/15/3.46
     * = 0.079, q5_0 0.038 (+), q5_1 0.038, q4_k/q5_k as q4_1/q5_1 less what the scale search
     * gains, q6_k 2*1.8/63/3.46 = 0.0165 (+ int8 sub-scales). Bounds are those with margin. */
    static const double gauss_bound[] = {0.0060, 0.092, 0.085, 0.046, 0.041, 0.076, 0.039, 0.0195};
    for (int d = 0; d < DATA_COUNT; d++) {
        fr_test_rng rng = {1000 + (uint64_t)d};
        make_data(d, x, n, &rng);
        for (int k = 0; k < N_QTYPES; k++) {
            const fr_dtype t = qtypes[k];
            rt_result r = round_trip(t, x, n);
            CHECK(r.worst_ratio <= 1.0, "%s on %s data: error reaches %.3f x its bound",
                  fr_dtype_name(t), data_names[d], r.worst_ratio);
            if (getenv("FR_TEST_VERBOSE"))
                fprintf(stderr, "  %-5s %-11s rel rmse %.5f, worst error/bound %.3f\n",
                        fr_dtype_name(t), data_names[d], r.rms > 0 ? r.rmse / r.rms : r.rmse,
                        r.worst_ratio);
            if (d == DATA_ZEROS) CHECK(r.rmse == 0.0, "%s: zeros are exact", fr_dtype_name(t));
            if (d == DATA_CONST)
                CHECK(r.rmse <= 2e-3 * r.rms, "%s constant blocks: rel rmse %g", fr_dtype_name(t),
                      r.rmse / r.rms);
            if (d == DATA_TINY && fr_dtype_get(t)->block_elems == 256)
                /* at 1e-5 the K super-scales are f16 subnormals; sub-scales are rounded against
                 * the decoded value, so accuracy stays close to normal-range data */
                CHECK(r.rmse / r.rms <= 1.25 * gauss_bound[k], "%s tiny: rel rmse %.5f",
                      fr_dtype_name(t), r.rmse / r.rms);
            if (d == DATA_GAUSS) {
                CHECK(r.rmse / r.rms <= gauss_bound[k], "%s gaussian: rel rmse %.5f > %.5f",
                      fr_dtype_name(t), r.rmse / r.rms, gauss_bound[k]);
                fprintf(stderr, "  %-5s gaussian rel rmse %.5f\n", fr_dtype_name(t),
                        r.rmse / r.rms);
            }
            if ((d == DATA_GAUSS || d == DATA_OUTLIERS || d == DATA_POSITIVE) &&
                fr_dtype_get(t)->block_elems == 256) {
                double naive = naive_k_rmse(t, x, n);
                CHECK(r.rmse <= naive, "%s on %s: search %.5g worse than min/max rounding %.5g",
                      fr_dtype_name(t), data_names[d], r.rmse, naive);
            }
        }
    }
    /* f16 / bf16: every element within half an ulp (relative 2^-11 / 2^-8 in the normal range) */
    fr_test_rng rng = {5};
    make_data(DATA_MIXED, x, n, &rng);
    float *y = malloc((size_t)n * sizeof(float));
    uint16_t *h = malloc((size_t)n * 2);
    fr_error err;
    const fr_dtype half_types[] = {FR_DTYPE_F16, FR_DTYPE_BF16};
    for (int k = 0; k < 2; k++) {
        CHECK(fr_quantize_row(half_types[k], x, h, n, &err) == FR_OK, "%s", err.msg);
        fr_dequantize_row(half_types[k], h, y, n);
        const double rel = k == 0 ? 0x1p-11 : 0x1p-8;
        int bad = 0;
        for (int64_t i = 0; i < n; i++)
            if (!(fabs((double)y[i] - x[i]) <= rel * fabs(x[i]) + (k == 0 ? 0x1p-25 : 0))) bad++;
        CHECK(bad == 0, "%s: %d elements beyond half an ulp", fr_dtype_name(half_types[k]), bad);
    }
    free(h);
    free(y);
    free(x);
}

static void test_edges(void) {
    fr_error err;
    float x[512], y[512];
    uint8_t q[1024];
    for (int i = 0; i < 512; i++)
        x[i] = (float)(i % 7) - 3.0f;
    CHECK(fr_quantize_row(FR_DTYPE_Q4_K, x, q, 100, &err) == FR_ERR_INVALID &&
              strstr(err.msg, "multiple"),
          "partial block rejected: %s", err.msg);
    CHECK(fr_quantize_row(FR_DTYPE_COUNT, x, q, 32, &err) == FR_ERR_INVALID, "invalid dtype");
    x[37] = NAN;
    CHECK(fr_quantize_row(FR_DTYPE_Q8_0, x, q, 64, &err) == FR_ERR_INVALID &&
              strstr(err.msg, "element 37"),
          "NaN rejected with its index: %s", err.msg);
    x[37] = INFINITY;
    CHECK(fr_quantize_row(FR_DTYPE_Q6_K, x, q, 256, &err) == FR_ERR_INVALID, "inf rejected");
    CHECK(fr_quantize_row(FR_DTYPE_F16, x, q, 64, &err) == FR_OK, "f16 keeps inf");
    /* beyond the f16 range the scales saturate: finite output; the legacy formats clip */
    for (int k = 0; k < N_QTYPES; k++) {
        for (int i = 0; i < 512; i++)
            x[i] = (float)((i % 2 ? 1 : -1) * (1e7 + 1e5 * i));
        CHECK(fr_quantize_row(qtypes[k], x, q, 512, &err) == FR_OK, "%s", err.msg);
        fr_dequantize_row(qtypes[k], q, y, 512);
        int bad = 0;
        for (int i = 0; i < 512; i++)
            if (!isfinite(y[i]) ||
                (fr_dtype_get(qtypes[k])->block_elems == 32 && fabsf(y[i]) > fabsf(x[i])))
                bad++;
        CHECK(bad == 0, "%s saturates instead of overflowing (%d bad)", fr_dtype_name(qtypes[k]),
              bad);
    }
    /* q8_k activations: half-step rounding and block sums */
    fr_test_rng rng = {9};
    make_data(DATA_MIXED, x, 512, &rng);
    fr_block_q8_k a[2];
    fr_quantize_row_q8_k(x, a, 512);
    int bad = 0;
    for (int b = 0; b < 2; b++) {
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int i = 0; i < 16; i++)
                s += a[b].qs[16 * j + i];
            bad += s != a[b].bsums[j];
        }
        for (int i = 0; i < 256; i++)
            bad += !(fabs((double)a[b].d * a[b].qs[i] - x[256 * b + i]) <= a[b].d * 0.5001);
    }
    CHECK(bad == 0, "q8_k: %d bad elements or sums", bad);
}

/* ---------------------------------------------------------------- helper modes for the script */

static void json_hex(FILE *f, const char *s, uint64_t len) {
    fputc('"', f);
    for (uint64_t i = 0; i < len; i++)
        fprintf(f, "%02x", (uint8_t)s[i]);
    fputc('"', f);
}

/* Canonical form shared with tests/gguf_check.py: scalars {"t","v"}, strings {"t","hex"},
 * arrays {"t":"array","elem","items"}; floats with 17 digits (exact for f32 and f64). */
static void json_value(FILE *f, const fr_gguf_value *v) {
    fprintf(f, "{\"t\":\"%s\"", fr_gguf_type_name(v->type));
    switch (v->type) {
    case FR_GGUF_U8:
    case FR_GGUF_U16:
    case FR_GGUF_U32:
    case FR_GGUF_U64:
        fprintf(f, ",\"v\":%llu", (unsigned long long)v->v.u);
        break;
    case FR_GGUF_I8:
    case FR_GGUF_I16:
    case FR_GGUF_I32:
    case FR_GGUF_I64:
        fprintf(f, ",\"v\":%lld", (long long)v->v.i);
        break;
    case FR_GGUF_F32:
    case FR_GGUF_F64:
        fprintf(f, ",\"v\":%.17g", v->v.f);
        break;
    case FR_GGUF_BOOL:
        fprintf(f, ",\"v\":%s", v->v.b ? "true" : "false");
        break;
    case FR_GGUF_STRING:
        fputs(",\"hex\":", f);
        json_hex(f, v->v.str.s, v->v.str.len);
        break;
    case FR_GGUF_ARRAY: {
        const fr_gguf_array *a = &v->v.arr;
        fprintf(f, ",\"elem\":\"%s\",\"items\":[", fr_gguf_type_name(a->type));
        for (uint64_t i = 0; i < a->n; i++) {
            fr_gguf_value e = {.type = a->type};
            if (a->type == FR_GGUF_STRING)
                e.v.str = fr_gguf_arr_str(a, i);
            else if (a->type == FR_GGUF_ARRAY)
                e = a->items[i];
            else if (a->type == FR_GGUF_F32 || a->type == FR_GGUF_F64)
                e.v.f = fr_gguf_arr_f64(a, i);
            else if (a->type == FR_GGUF_BOOL)
                e.v.b = fr_gguf_arr_u64(a, i) != 0;
            else if (a->type == FR_GGUF_U8 || a->type == FR_GGUF_U16 || a->type == FR_GGUF_U32 ||
                     a->type == FR_GGUF_U64)
                e.v.u = fr_gguf_arr_u64(a, i);
            else
                e.v.i = fr_gguf_arr_i64(a, i);
            if (i) fputc(',', f);
            json_value(f, &e);
        }
        fputc(']', f);
        break;
    }
    default:
        break;
    }
    fputc('}', f);
}

static int fail_msg(const char *what, const fr_error *err) {
    fprintf(stderr, "test_quant: %s: %s\n", what, err->msg);
    return 1;
}

#define SPEC_MAX 40
typedef struct kv_spec {
    const char *key;
    fr_gguf_value v;
} kv_spec;

/* The metadata `gen` writes: every value type, typed arrays of each, strings with non-ASCII and
 * empty ones, empty arrays, arrays of string arrays and three-level nesting. */
static int metadata_spec(kv_spec *s) {
    static const uint8_t a_u8[] = {0, 1, 255};
    static const int8_t a_i8[] = {-128, 0, 127};
    static const uint16_t a_u16[] = {0, 65535};
    static const int16_t a_i16[] = {-32768, 12345};
    static const uint32_t a_u32[] = {4294967295u, 7};
    static const int32_t a_i32[] = {-2147483647 - 1, 2147483647, 0};
    static const float a_f32[] = {1.5f, -0.0f, 3.4028234e38f, 1e-45f};
    static const uint8_t a_bool[] = {1, 0, 1};
    static const uint64_t a_u64[] = {18446744073709551615ull, 1};
    static const int64_t a_i64[] = {-9223372036854775807ll - 1, 42};
    static const double a_f64[] = {2.718281828459045, -1e300};
    static const fr_gguf_str strs[] = {{"a", 1}, {"", 0}, {"\xc3\xbc\xe2\x9c\x93", 5}, {"x y", 3}};
    static const int32_t in0[] = {1, 2, 3}, in2[] = {4};
    static fr_gguf_value inner[3], sinner[2], deep_mid[2], deep_leaf[2];
    static const fr_gguf_str s0[] = {{"x", 1}, {"y", 1}}, s1[] = {{"z", 1}};
    static const uint8_t leaf0[] = {9}, leaf1[] = {8, 7};
    inner[0] = (fr_gguf_value){FR_GGUF_ARRAY, .v.arr = {FR_GGUF_I32, 3, in0, NULL, NULL}};
    inner[1] = (fr_gguf_value){FR_GGUF_ARRAY, .v.arr = {FR_GGUF_I32, 0, in0, NULL, NULL}};
    inner[2] = (fr_gguf_value){FR_GGUF_ARRAY, .v.arr = {FR_GGUF_I32, 1, in2, NULL, NULL}};
    sinner[0] = (fr_gguf_value){FR_GGUF_ARRAY, .v.arr = {FR_GGUF_STRING, 2, NULL, s0, NULL}};
    sinner[1] = (fr_gguf_value){FR_GGUF_ARRAY, .v.arr = {FR_GGUF_STRING, 1, NULL, s1, NULL}};
    deep_leaf[0] = (fr_gguf_value){FR_GGUF_ARRAY, .v.arr = {FR_GGUF_U8, 1, leaf0, NULL, NULL}};
    deep_leaf[1] = (fr_gguf_value){FR_GGUF_ARRAY, .v.arr = {FR_GGUF_U8, 2, leaf1, NULL, NULL}};
    deep_mid[0] =
        (fr_gguf_value){FR_GGUF_ARRAY, .v.arr = {FR_GGUF_ARRAY, 1, NULL, NULL, &deep_leaf[0]}};
    deep_mid[1] =
        (fr_gguf_value){FR_GGUF_ARRAY, .v.arr = {FR_GGUF_ARRAY, 1, NULL, NULL, &deep_leaf[1]}};
    int n = 0;
#define SCALAR(k, T, field, val)                                                                   \
    s[n++] = (kv_spec) {                                                                           \
        k, {                                                                                       \
            T, .v.field = val                                                                      \
        }                                                                                          \
    }
#define ARR(k, T, data, cnt)                                                                       \
    s[n++] = (kv_spec) {                                                                           \
        k, {                                                                                       \
            FR_GGUF_ARRAY, .v.arr = { T, cnt, data, NULL, NULL }                                   \
        }                                                                                          \
    }
    SCALAR("general.architecture", FR_GGUF_STRING, str, ((fr_gguf_str){"llama", 5}));
    SCALAR("t.u8", FR_GGUF_U8, u, 200);
    SCALAR("t.i8", FR_GGUF_I8, i, -100);
    SCALAR("t.u16", FR_GGUF_U16, u, 60000);
    SCALAR("t.i16", FR_GGUF_I16, i, -30000);
    SCALAR("t.u32", FR_GGUF_U32, u, 4000000000u);
    SCALAR("t.i32", FR_GGUF_I32, i, -2000000000);
    SCALAR("t.f32", FR_GGUF_F32, f, (double)3.14159274f);
    SCALAR("t.bool", FR_GGUF_BOOL, b, true);
    SCALAR("t.str", FR_GGUF_STRING, str, ((fr_gguf_str){"h\xc3\xa9llo \xe2\x9c\x93", 10}));
    SCALAR("t.empty", FR_GGUF_STRING, str, ((fr_gguf_str){"", 0}));
    SCALAR("t.u64", FR_GGUF_U64, u, 9223372036854775813ull);
    SCALAR("t.i64", FR_GGUF_I64, i, -4611686018427387907ll);
    SCALAR("t.f64", FR_GGUF_F64, f, 2.718281828459045);
    ARR("a.u8", FR_GGUF_U8, a_u8, 3);
    ARR("a.i8", FR_GGUF_I8, a_i8, 3);
    ARR("a.u16", FR_GGUF_U16, a_u16, 2);
    ARR("a.i16", FR_GGUF_I16, a_i16, 2);
    ARR("a.u32", FR_GGUF_U32, a_u32, 2);
    ARR("a.i32", FR_GGUF_I32, a_i32, 3);
    ARR("a.f32", FR_GGUF_F32, a_f32, 4);
    ARR("a.bool", FR_GGUF_BOOL, a_bool, 3);
    ARR("a.u64", FR_GGUF_U64, a_u64, 2);
    ARR("a.i64", FR_GGUF_I64, a_i64, 2);
    ARR("a.f64", FR_GGUF_F64, a_f64, 2);
    ARR("a.empty", FR_GGUF_F32, a_f32, 0);
    s[n++] = (kv_spec){"a.str", {FR_GGUF_ARRAY, .v.arr = {FR_GGUF_STRING, 4, NULL, strs, NULL}}};
    s[n++] = (kv_spec){"a.nested", {FR_GGUF_ARRAY, .v.arr = {FR_GGUF_ARRAY, 3, NULL, NULL, inner}}};
    s[n++] =
        (kv_spec){"a.nested_str", {FR_GGUF_ARRAY, .v.arr = {FR_GGUF_ARRAY, 2, NULL, NULL, sinner}}};
    s[n++] =
        (kv_spec){"a.deep", {FR_GGUF_ARRAY, .v.arr = {FR_GGUF_ARRAY, 2, NULL, NULL, deep_mid}}};
#undef SCALAR
#undef ARR
    return n;
}

/* Source data for quantized tensors: four rows of different character. */
static void gen_source(float *x, int64_t rows, int64_t cols, fr_test_rng *r) {
    for (int64_t i = 0; i < rows; i++)
        make_data((int[]){DATA_GAUSS, DATA_MIXED, DATA_OUTLIERS, DATA_POSITIVE}[i % 4],
                  x + i * cols, cols, r);
}

static int mode_gen(const char *out_path, const char *json_path) {
    fr_error err;
    fr_gguf_writer *w;
    if (fr_gguf_writer_create(&w, &err)) return fail_msg("writer", &err);
    kv_spec spec[SPEC_MAX];
    const int n_spec = metadata_spec(spec);
    for (int i = 0; i < n_spec; i++)
        if (fr_gguf_writer_set(w, spec[i].key, &spec[i].v, &err)) return fail_msg("set", &err);
    FILE *jf = fopen(json_path, "w");
    if (!jf) return 1;
    fputs("{\"kv\":[", jf);
    for (int i = 0; i < n_spec; i++) {
        fprintf(jf, "%s[\"%s\",", i ? "," : "", spec[i].key);
        json_value(jf, &spec[i].v);
        fputc(']', jf);
    }
    fputs("],\"tensors\":[", jf);
    fr_test_rng rng = {2024};
    const fr_dtype all[] = {FR_DTYPE_F32,  FR_DTYPE_F16,  FR_DTYPE_BF16, FR_DTYPE_Q8_0,
                            FR_DTYPE_Q4_0, FR_DTYPE_Q4_1, FR_DTYPE_Q5_0, FR_DTYPE_Q5_1,
                            FR_DTYPE_Q4_K, FR_DTYPE_Q5_K, FR_DTYPE_Q6_K};
    const int64_t rows = 4, cols = 512;
    void *keep[64];
    int n_keep = 0, n_json = 0;
    char name[64];
#define ADD(nm, dt, nd, shp, data)                                                                 \
    do {                                                                                           \
        if (fr_gguf_writer_add_tensor(w, nm, dt, nd, shp, data, &err))                             \
            return fail_msg("add_tensor", &err);                                                   \
        fprintf(jf, "%s[\"%s\",\"%s\",[", n_json++ ? "," : "", nm, fr_dtype_name(dt));             \
        for (int d_ = 0; d_ < nd; d_++)                                                            \
            fprintf(jf, "%s%lld", d_ ? "," : "", (long long)shp[d_]);                              \
        fputs("]]", jf);                                                                           \
    } while (0)
    const int64_t shape[2] = {rows, cols};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        const fr_dtype t = all[k];
        const size_t bytes = fr_dtype_row_bytes(t, cols) * rows;
        uint8_t *raw = malloc(bytes);
        float *deq = malloc(rows * cols * sizeof(float));
        float *src = malloc(rows * cols * sizeof(float));
        uint8_t *qd = malloc(bytes);
        float *qdeq = malloc(rows * cols * sizeof(float));
        keep[n_keep++] = raw, keep[n_keep++] = deq, keep[n_keep++] = src, keep[n_keep++] = qd;
        keep[n_keep++] = qdeq;
        if (fr_dtype_get(t)->quantized) {
            random_blocks(t, raw, (int64_t)(bytes / fr_dtype_get(t)->block_bytes), &rng);
        } else {
            float *tmp = malloc(rows * cols * sizeof(float));
            make_data(DATA_MIXED, tmp, rows * cols, &rng);
            fr_quantize_row(t, tmp, raw, rows * cols, &err);
            free(tmp);
        }
        fr_dequantize_row(t, raw, deq, rows * cols);
        gen_source(src, rows, cols, &rng);
        if (fr_quantize_row(t, src, qd, rows * cols, &err)) return fail_msg("quantize", &err);
        fr_dequantize_row(t, qd, qdeq, rows * cols);
        snprintf(name, sizeof name, "rand.%s", fr_dtype_name(t));
        ADD(name, t, 2, shape, raw);
        snprintf(name, sizeof name, "rand.%s.deq", fr_dtype_name(t));
        ADD(name, FR_DTYPE_F32, 2, shape, deq);
        snprintf(name, sizeof name, "quant.%s", fr_dtype_name(t));
        ADD(name, t, 2, shape, qd);
        snprintf(name, sizeof name, "quant.%s.src", fr_dtype_name(t));
        ADD(name, FR_DTYPE_F32, 2, shape, src);
        snprintf(name, sizeof name, "quant.%s.deq", fr_dtype_name(t));
        ADD(name, FR_DTYPE_F32, 2, shape, qdeq);
    }
    /* other ranks and an integer tensor */
    static int32_t ints[6] = {-7, 0, 1, 2147483647, -2147483647 - 1, 5};
    static float cube[2 * 3 * 32];
    static uint8_t q4d[2 * 1 * 3 * 2 * 34];
    for (int i = 0; i < 2 * 3 * 32; i++)
        cube[i] = (float)i * 0.25f;
    random_blocks(FR_DTYPE_Q8_0, q4d, 12, &rng);
    ADD("shape.i32", FR_DTYPE_I32, 1, ((int64_t[]){6}), ints);
    ADD("shape.3d", FR_DTYPE_F32, 3, ((int64_t[]){2, 3, 32}), cube);
    ADD("shape.4d", FR_DTYPE_Q8_0, 4, ((int64_t[]){2, 1, 3, 64}), q4d);
#undef ADD
    fputs("]}\n", jf);
    fclose(jf);
    fr_status st = fr_gguf_writer_write(w, out_path, &err);
    fr_gguf_writer_free(w);
    for (int i = 0; i < n_keep; i++)
        free(keep[i]);
    return st ? fail_msg("write", &err) : 0;
}

static int mode_dump(const char *in_path, const char *out_dir) {
    fr_error err;
    fr_gguf *g;
    if (fr_gguf_open(in_path, &g, &err)) return fail_msg("open", &err);
    char path[4096];
    snprintf(path, sizeof path, "%s/meta.json", out_dir);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fprintf(f, "{\"version\":%u,\"alignment\":%u,\"data_offset\":%llu,\"kv\":[", fr_gguf_version(g),
            fr_gguf_alignment(g), (unsigned long long)fr_gguf_data_offset(g));
    for (size_t i = 0; i < fr_gguf_kv_count(g); i++) {
        const fr_gguf_kv *kv = fr_gguf_kv_at(g, i);
        fprintf(f, "%s[", i ? "," : "");
        json_hex(f, kv->key.s, kv->key.len);
        fputc(',', f);
        json_value(f, &kv->value);
        fputc(']', f);
    }
    fputs("],\"tensors\":[", f);
    int rc = 0;
    for (size_t i = 0; i < fr_gguf_tensor_count(g); i++) {
        const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
        fprintf(f, "%s{\"name\":\"%s\",\"type\":\"%s\",\"offset\":%llu,\"nbytes\":%zu,\"shape\":[",
                i ? "," : "", t->name, t->type_name, (unsigned long long)t->offset, t->nbytes);
        for (int d = 0; d < t->ndim; d++)
            fprintf(f, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        fprintf(f, "],\"dequantized\":%s}", t->dtype != FR_DTYPE_COUNT ? "true" : "false");
        if (t->dtype == FR_DTYPE_COUNT) continue;
        float *out = malloc((size_t)(t->n_elements ? t->n_elements : 1) * sizeof(float));
        fr_dequantize_row(t->dtype, t->data, out, t->n_elements);
        snprintf(path, sizeof path, "%s/t%zu.f32", out_dir, i);
        FILE *tf = fopen(path, "wb");
        if (!tf || fwrite(out, sizeof(float), (size_t)t->n_elements, tf) != (size_t)t->n_elements)
            rc = 1;
        if (tf) fclose(tf);
        free(out);
    }
    fputs("]}\n", f);
    fclose(f);
    fr_gguf_close(g);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "gen")) return mode_gen(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "dump")) return mode_dump(argv[2], argv[3]);
    if (argc > 1) {
        fprintf(stderr, "usage: test_quant [gen OUT.gguf OUT.json | dump IN.gguf OUTDIR]\n");
        return 2;
    }
    test_layouts();
    test_round_trips();
    test_edges();
    return fr_test_finish("test_quant");
}
