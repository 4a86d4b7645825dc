/* The `sample` op (fr_op_sample) on the CPU backend against a float64 reference of its contract:
 *   - the shared arithmetic (fixed-point exp, key order, 64x64 high product, generator);
 *   - greedy (temperature <= 0) and top_k = 1 equal fr_op_argmax, NaN / ties / -0 included;
 *   - every drawn id lies in the allowed set computed in float64 (top-k, top-p, min-p and their
 *     combinations, V from 7 to 151936), skipping only rows where a token sits within 1e-5 of a
 *     threshold;
 *   - chi-square of many draws (distinct rows in one call, and distinct counters over calls)
 *     against the float64 filtered distribution;
 *   - tie rules (top-k keeps every token tied with the k-th, top-p keeps or drops tied tokens
 *     together), masked logits, reproducibility and the counter advancing once per call;
 *   - the support agrees with the host sampler (src/engine/sampler.c) where nothing is tied;
 *   - parameter validation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/sample_ref.h"
#include "common/testutil.h"
#include "ferrum.h"
#include "kernels/backend.h"
#include "kernels/sample_common.h"

static fr_backend *B;
static fr_test_rng RNG = {20240607};

static double gauss(void) {
    double u = fr_test_rng_uniform(&RNG), v = fr_test_rng_uniform(&RNG);
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static void random_logits(float *x, size_t n, double scale) {
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * gauss());
}

static fr_sample_params sp(float t, int k, float top_p, float min_p) {
    return (fr_sample_params){.temperature = t, .top_k = k, .top_p = top_p, .min_p = min_p};
}

static int run(const float *x, int T, int V, fr_sample_params p, uint64_t seed, uint64_t counter,
               int32_t *ids, uint64_t *after) {
    fr_error err = {0};
    fr_status s = fr_ref_run_op(B, x, T, V, &p, seed, counter, ids, after, &err);
    CHECK(s == FR_OK, "sample op: %s", err.msg);
    return s == FR_OK;
}

/* ------------------------------------------------------------------ shared arithmetic */

static void test_common(void) {
    /* weights: floor(2^40 exp(d)) to about 1 ulp of float, exact at 0 */
    CHECK(fr_smp_weight(1.5f, 1.5f) == FR_SMP_ONE, "weight of the maximum");
    double worst = 0;
    for (int i = 0; i < 200000; i++) {
        const float m = (float)(4 * gauss());
        const float l = m - (float)(27.0 * fr_test_rng_uniform(&RNG));
        const double want = ldexp(exp((double)l - (double)m), 40);
        const double got = (double)fr_smp_weight(l, m);
        if (want > 1e9) worst = fmax(worst, fabs(got - want) / want);
    }
    CHECK(worst < 4e-7, "fixed-point exp relative error %.3g", worst);
    CHECK(fr_smp_weight(-40.0f, 0.0f) == 0 && fr_smp_weight(-INFINITY, 0.0f) == 0,
          "weights below exp(-28) are 0");
    CHECK(fr_smp_weight(3.0f, INFINITY) == 0 && fr_smp_weight(INFINITY, INFINITY) == FR_SMP_ONE,
          "an infinite maximum");
    /* order-preserving keys */
    int bad = 0;
    for (int i = 0; i < 100000; i++) {
        float a = (float)(100 * gauss()), b = (float)(100 * gauss());
        if (i % 7 == 0) b = a;
        if ((a < b) != (fr_smp_key(a) < fr_smp_key(b)) || fr_smp_unkey(fr_smp_key(a)) != a) bad++;
    }
    CHECK(bad == 0, "%d key order violations", bad);
    CHECK(fr_smp_key(-INFINITY) < fr_smp_key(-1e30f) && fr_smp_key(1e30f) < fr_smp_key(INFINITY),
          "infinities order");
    CHECK(fr_smp_argmax_key(-0.0f) == fr_smp_argmax_key(0.0f), "-0 ties +0");
    CHECK(fr_smp_ftz(1e-40f) == 0 && fr_smp_ftz(-1e-40f) == 0 && fr_smp_ftz(1e-30f) == 1e-30f,
          "flush to zero");
    /* 64x64 -> high 64 */
    bad = 0;
    for (int i = 0; i < 100000; i++) {
        const uint64_t a = fr_test_rng_u64(&RNG), b = i % 3 ? fr_test_rng_u64(&RNG) : ~0ull;
        __extension__ const unsigned __int128 w = (unsigned __int128)a * b;
        if (fr_smp_mulhi(a, b) != (uint64_t)(w >> 64)) bad++;
    }
    CHECK(bad == 0, "%d mulhi mismatches", bad);
    /* the generator: distinct per counter and per row, and uniform enough */
    double mean = 0;
    for (int i = 0; i < 100000; i++)
        mean += (double)(fr_smp_random(7, (uint64_t)i / 100, i % 100) >> 11) * 0x1p-53;
    mean /= 100000;
    CHECK(fabs(mean - 0.5) < 0.005, "generator mean %.4f", mean);
    CHECK(fr_smp_random(1, 2, 3) != fr_smp_random(1, 3, 2) &&
              fr_smp_random(1, 2, 3) != fr_smp_random(2, 2, 3),
          "generator inputs matter");
    CHECK(fr_smp_min_p_limit(0.0f) == 0 && fr_smp_min_p_limit(1.0f) == FR_SMP_ONE, "min-p limits");
    CHECK(fr_smp_top_p_limit(1e-30f, 1ull << 41) == 1 && fr_smp_top_p_limit(1.0f, 12345) == 12345 &&
              fr_smp_top_p_limit(0.5f, 3) == 2,
          "top-p limits");
}

/* ------------------------------------------------------------------ greedy */

static void argmax_ids(const float *x, int T, int V, int32_t *ids) {
    fr_buffer xb, ob;
    fr_error err = {0};
    fr_buffer_alloc(B, sizeof(float) * (size_t)T * (size_t)V, &xb, &err);
    fr_buffer_alloc(B, sizeof(int32_t) * (size_t)T, &ob, &err);
    fr_buffer_upload(&xb, 0, x, sizeof(float) * (size_t)T * (size_t)V, &err);
    fr_tensor xt = fr_tensor_2d(&xb, 0, FR_DTYPE_F32, T, V),
              ot = fr_tensor_1d(&ob, 0, FR_DTYPE_I32, T);
    CHECK(fr_op_argmax(B, &xt, &ot, &err) == FR_OK, "argmax: %s", err.msg);
    fr_buffer_download(&ob, 0, ids, sizeof(int32_t) * (size_t)T, &err);
    fr_buffer_free(&xb);
    fr_buffer_free(&ob);
}

static void test_greedy(void) {
    enum { T = 64, V = 300 };
    float *x = malloc(sizeof(float) * T * V);
    random_logits(x, (size_t)T * V, 3);
    for (int t = 0; t < T; t++) {
        float *r = x + (size_t)t * V;
        if (t % 4 == 1) r[t] = r[t + 7] = 50; /* a tie: the lower index wins */
        if (t % 4 == 2)
            for (int i = 0; i < V; i += 2)
                r[i] = NAN;
        if (t % 8 == 3) r[0] = NAN, r[5] = INFINITY;
        if (t == 5)
            for (int i = 0; i < V; i++)
                r[i] = NAN;
        if (t == 6)
            for (int i = 0; i < V; i++)
                r[i] = -INFINITY;
        if (t == 7) {
            for (int i = 0; i < V; i++)
                r[i] = -1;
            r[3] = -0.0f, r[9] = 0.0f; /* -0 and +0 tie: 3 wins */
        }
    }
    int32_t want[T], got[T];
    argmax_ids(x, T, V, want);
    uint64_t after = 0;
    const float temps[] = {0.0f, -1.0f};
    for (int k = 0; k < 2; k++) {
        if (!run(x, T, V, sp(temps[k], 40, 0.5f, 0.2f), 99, 41, got, &after)) break;
        int bad = 0;
        for (int t = 0; t < T; t++)
            bad += got[t] != want[t];
        CHECK(bad == 0, "greedy (temperature %g): %d rows differ from argmax", temps[k], bad);
        CHECK(after == 42, "greedy advanced the counter to %llu", (unsigned long long)after);
    }
    CHECK(want[5] == 0 && want[6] == 0 && want[7] == 3, "argmax edge rows %d %d %d", want[5],
          want[6], want[7]);
    /* top_k = 1 with temperature is argmax too (rows without ties / NaN) */
    random_logits(x, (size_t)T * V, 2);
    argmax_ids(x, T, V, want);
    for (uint64_t c = 0; c < 4; c++) {
        if (!run(x, T, V, sp(1.3f, 1, 1.0f, 0.0f), 5, c, got, NULL)) break;
        int bad = 0;
        for (int t = 0; t < T; t++)
            bad += got[t] != want[t];
        CHECK(bad == 0, "top_k=1: %d rows differ from argmax", bad);
    }
    free(x);
}

/* ------------------------------------------------------------------ allowed sets */

static void check_sets(int V, int T, double scale, fr_sample_params p, int calls) {
    float *x = malloc(sizeof(float) * (size_t)T * (size_t)V);
    double *probs = malloc(sizeof(double) * (size_t)V);
    unsigned char *amb = malloc((size_t)V);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)T);
    random_logits(x, (size_t)T * V, scale);
    /* ok: in the float64 set, or a token within float rounding of a threshold */
    unsigned char *ok = calloc((size_t)T * (size_t)V, 1);
    int n_amb = 0, n_open = 0; /* n_open: rows with two tokens of probability >= 0.1 */
    for (int t = 0; t < T; t++) {
        fr_ref_sample_probs_amb(x + (size_t)t * V, V, &p, probs, amb);
        int big = 0;
        for (int i = 0; i < V; i++) {
            big += probs[i] >= 0.1;
            ok[(size_t)t * V + i] = probs[i] > 0 || amb[i];
            n_amb += amb[i] && probs[i] == 0;
        }
        n_open += big >= 2;
    }
    int bad = 0, changed = 0;
    int32_t *prev = malloc(sizeof(int32_t) * (size_t)T);
    for (int c = 0; c < calls; c++) {
        uint64_t after = 0;
        if (!run(x, T, V, p, 1234, (uint64_t)c * 1000, ids, &after)) break;
        CHECK(after == (uint64_t)c * 1000 + 1, "counter after the call");
        for (int t = 0; t < T; t++) {
            if (ids[t] < 0 || ids[t] >= V || !ok[(size_t)t * V + ids[t]]) {
                if (bad++ < 5)
                    fprintf(stderr, "  V=%d row %d: drew %d outside the allowed set\n", V, t,
                            ids[t]);
            }
            if (c > 0 && ids[t] != prev[t]) changed++;
        }
        memcpy(prev, ids, sizeof(int32_t) * (size_t)T);
    }
    CHECK(calls < 2 || n_open == 0 || changed > 0, "V=%d: new counters never changed a draw", V);
    CHECK(bad == 0,
          "V=%d T=%g k=%d p=%g min_p=%g: %d draws outside the float64 allowed set (%d tokens "
          "dropped in float64 but within 1e-5 of a threshold)",
          V, p.temperature, p.top_k, p.top_p, p.min_p, bad, n_amb);
    free(x);
    free(probs);
    free(amb);
    free(ids);
    free(ok);
    free(prev);
}

static void test_allowed_sets(void) {
    const fr_sample_params ps[] = {
        sp(1.0f, 0, 1.0f, 0.0f), sp(0.7f, 5, 1.0f, 0.0f),    sp(1.0f, 0, 0.6f, 0.0f),
        sp(1.0f, 0, 1.0f, 0.3f), sp(0.8f, 40, 0.95f, 0.05f), sp(1.5f, 20, 0.5f, 0.0f),
        sp(0.6f, 0, 0.9f, 0.1f), sp(2.0f, 300, 0.3f, 0.0f),
    };
    const int vs[] = {7, 100, 1000};
    for (size_t v = 0; v < sizeof vs / sizeof vs[0]; v++)
        for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++)
            check_sets(vs[v], 48, 1 + (double)k, ps[k], 4);
    /* the real vocabulary size, a few rows */
    check_sets(151936, 3, 3, sp(0.8f, 40, 0.95f, 0.05f), 2);
    check_sets(151936, 3, 2, sp(1.0f, 0, 0.9f, 0.0f), 2);
    check_sets(151936, 2, 4, sp(0.7f, 0, 1.0f, 0.02f), 2);
}

/* ------------------------------------------------------------------ chi-square */

static void chi2_rows(const char *what, const float *row, int V, fr_sample_params p, int N) {
    double *probs = malloc(sizeof(double) * (size_t)V);
    const double margin = fr_ref_sample_probs(row, V, &p, probs);
    CHECK(margin > 1e-4, "%s: test row too close to a threshold (%g)", what, margin);
    float *x = malloc(sizeof(float) * (size_t)N * (size_t)V);
    for (int t = 0; t < N; t++)
        memcpy(x + (size_t)t * V, row, sizeof(float) * (size_t)V);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)N);
    int64_t *counts = calloc((size_t)V, sizeof(int64_t));
    /* (a) N rows of one call: distinct row numbers */
    if (run(x, N, V, p, 77, 3, ids, NULL)) {
        for (int t = 0; t < N; t++)
            counts[ids[t]]++;
        int df;
        const double c2 = fr_ref_chi2(counts, probs, V, N, &df);
        CHECK(c2 < fr_ref_chi2_limit(df), "%s (rows): chi2 %.1f with %d dof", what, c2, df);
    }
    /* (b) one row, N calls: distinct counters */
    memset(counts, 0, sizeof(int64_t) * (size_t)V);
    const int calls = N / 4;
    for (int c = 0; c < calls; c++) {
        int32_t id;
        if (!run(row, 1, V, p, 31337, (uint64_t)c, &id, NULL)) break;
        counts[id]++;
    }
    int df;
    const double c2 = fr_ref_chi2(counts, probs, V, calls, &df);
    CHECK(c2 < fr_ref_chi2_limit(df), "%s (counters): chi2 %.1f with %d dof", what, c2, df);
    free(probs);
    free(x);
    free(ids);
    free(counts);
}

static void test_chi2(void) {
    float row[40];
    for (int i = 0; i < 40; i++)
        row[i] = (float)(0.15 * i - 0.002 * i * i) + (i % 3 ? 0.1f : 0.0f);
    chi2_rows("temperature", row, 40, sp(1.0f, 0, 1.0f, 0.0f), 40000);
    chi2_rows("temperature 0.5", row, 40, sp(0.5f, 0, 1.0f, 0.0f), 40000);
    chi2_rows("top_k 7", row, 40, sp(1.0f, 7, 1.0f, 0.0f), 40000);
    chi2_rows("top_p 0.7", row, 40, sp(0.9f, 0, 0.7f, 0.0f), 40000);
    chi2_rows("min_p 0.4", row, 40, sp(1.1f, 0, 1.0f, 0.4f), 40000);
    chi2_rows("k 20 p 0.8 min_p 0.1", row, 40, sp(0.8f, 20, 0.8f, 0.1f), 40000);
}

/* ------------------------------------------------------------------ ties and masks */

static void counts_of(const float *row, int V, fr_sample_params p, int N, int64_t *counts) {
    float *x = malloc(sizeof(float) * (size_t)N * (size_t)V);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)N);
    for (int t = 0; t < N; t++)
        memcpy(x + (size_t)t * V, row, sizeof(float) * (size_t)V);
    memset(counts, 0, sizeof(int64_t) * (size_t)V);
    if (run(x, N, V, p, 5, 0, ids, NULL))
        for (int t = 0; t < N; t++)
            counts[ids[t]]++;
    free(x);
    free(ids);
}

static void test_ties(void) {
    int64_t c[8];
    /* top-k keeps everything tied with the k-th value (Hugging Face's rule) */
    const float a[6] = {3, 2, 2, 2, 1, 0};
    counts_of(a, 6, sp(1.0f, 2, 1.0f, 0.0f), 4000, c);
    CHECK(c[0] > 0 && c[1] > 0 && c[2] > 0 && c[3] > 0 && c[4] == 0 && c[5] == 0,
          "top-k ties: %lld %lld %lld %lld %lld %lld", (long long)c[0], (long long)c[1],
          (long long)c[2], (long long)c[3], (long long)c[4], (long long)c[5]);
    /* top-p keeps tied tokens together: four equal logits and top_p 0.3 keep all four */
    const float e[4] = {1, 1, 1, 1};
    counts_of(e, 4, sp(1.0f, 0, 0.3f, 0.0f), 4000, c);
    CHECK(c[0] > 800 && c[1] > 800 && c[2] > 800 && c[3] > 800, "top-p ties: %lld %lld %lld %lld",
          (long long)c[0], (long long)c[1], (long long)c[2], (long long)c[3]);
    /* ... and a strictly larger token reaching top_p alone drops the tied rest */
    const float f[4] = {0.5f, 5, 0.5f, 0.5f};
    counts_of(f, 4, sp(1.0f, 0, 0.9f, 0.0f), 1000, c);
    CHECK(c[1] == 1000, "top-p: the dominant token alone (%lld)", (long long)c[1]);
    /* masked logits never come out; a single valid one always does */
    const float g[5] = {NAN, -INFINITY, 2, NAN, -INFINITY};
    counts_of(g, 5, sp(1.0f, 0, 1.0f, 0.0f), 500, c);
    CHECK(c[2] == 500, "the only valid logit (%lld)", (long long)c[2]);
    const float h[3] = {NAN, NAN, -INFINITY};
    counts_of(h, 3, sp(1.0f, 3, 0.5f, 0.1f), 50, c);
    CHECK(c[0] == 50, "no valid logit gives 0 (%lld)", (long long)c[0]);
    /* +inf: only the infinite tokens */
    const float i4[5] = {1, INFINITY, 3, INFINITY, 2};
    counts_of(i4, 5, sp(1.0f, 0, 1.0f, 0.0f), 2000, c);
    CHECK(c[1] + c[3] == 2000 && c[1] > 800 && c[3] > 800, "infinite logits: %lld %lld",
          (long long)c[1], (long long)c[3]);
    /* V = 1 */
    const float one = 0.25f;
    counts_of(&one, 1, sp(0.9f, 1, 0.1f, 0.9f), 10, c);
    CHECK(c[0] == 10, "V=1");
    /* min_p = 1 keeps only the maxima */
    const float j[5] = {1, 4, 4, 3.999f, 0};
    counts_of(j, 5, sp(1.0f, 0, 1.0f, 1.0f), 2000, c);
    CHECK(c[1] + c[2] == 2000 && c[1] > 800 && c[2] > 800, "min_p 1: %lld %lld", (long long)c[1],
          (long long)c[2]);
}

/* ------------------------------------------------------------------ reproducibility */

static void test_repro(void) {
    enum { T = 32, V = 500 };
    float *x = malloc(sizeof(float) * T * V);
    random_logits(x, (size_t)T * V, 2);
    int32_t a[T], b[T], c[T];
    const fr_sample_params p = sp(1.0f, 0, 0.95f, 0.0f);
    if (run(x, T, V, p, 11, 7, a, NULL) && run(x, T, V, p, 11, 7, b, NULL) &&
        run(x, T, V, p, 11, 8, c, NULL)) {
        CHECK(!memcmp(a, b, sizeof a), "same state, same ids");
        int diff = 0;
        for (int t = 0; t < T; t++)
            diff += a[t] != c[t];
        CHECK(diff > T / 2, "next counter changes most rows (%d of %d)", diff, T);
    }
    free(x);
}

/* ------------------------------------------------------------------ the host sampler */

/* Where nothing sits near a threshold, the op's support is the host sampler's. */
static void test_vs_host_sampler(void) {
    enum { V = 200, ROWS = 40 };
    float x[V];
    double probs[V];
    float hp[V];
    const fr_sample_params ps[] = {sp(0.8f, 10, 1.0f, 0.0f), sp(1.0f, 0, 0.8f, 0.0f),
                                   sp(1.0f, 0, 1.0f, 0.2f), sp(0.7f, 30, 0.9f, 0.05f)};
    int compared = 0;
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        fr_sampler_params hpar = fr_sampler_default_params();
        hpar.temperature = ps[k].temperature;
        hpar.top_k = ps[k].top_k;
        hpar.top_p = ps[k].top_p;
        hpar.min_p = ps[k].min_p;
        hpar.repeat_penalty = 1.0f;
        hpar.presence_penalty = hpar.frequency_penalty = 0.0f;
        fr_sampler *s = NULL;
        fr_error err = {0};
        CHECK(fr_sampler_create(&hpar, V, &s, &err) == FR_OK, "sampler: %s", err.msg);
        if (!s) continue;
        for (int r = 0; r < ROWS; r++) {
            random_logits(x, V, 2);
            if (fr_ref_sample_probs(x, V, &ps[k], probs) < 1e-4) continue;
            fr_sampler_probs(s, x, hp, &err);
            int bad = 0;
            for (int i = 0; i < V; i++)
                bad += (probs[i] > 0) != (hp[i] > 0) || fabs(probs[i] - hp[i]) > 1e-5;
            CHECK(bad == 0, "params %zu row %d: %d tokens differ from the host sampler", k, r, bad);
            compared++;
        }
        fr_sampler_free(s);
    }
    CHECK(compared > 100, "only %d rows compared", compared);
}

/* ------------------------------------------------------------------ validation */

static void test_validation(void) {
    fr_buffer lb, sb, ob;
    fr_error err = {0};
    fr_buffer_alloc(B, sizeof(float) * 4 * 10, &lb, &err);
    fr_buffer_alloc(B, 64, &sb, &err);
    fr_buffer_alloc(B, 16, &ob, &err);
    int32_t words[FR_SAMPLE_STATE_WORDS];
    fr_sample_state_pack(1, 0, words);
    fr_buffer_upload(&sb, 0, words, sizeof words, &err);
    float zeros[40] = {0};
    fr_buffer_upload(&lb, 0, zeros, sizeof zeros, &err);
    fr_tensor lt = fr_tensor_2d(&lb, 0, FR_DTYPE_F32, 4, 10);
    fr_tensor st = fr_tensor_1d(&sb, 0, FR_DTYPE_I32, FR_SAMPLE_STATE_WORDS);
    fr_tensor ot = fr_tensor_1d(&ob, 0, FR_DTYPE_I32, 4);
    fr_sample_params p = sp(1.0f, 0, 1.0f, 0.0f);
    CHECK(fr_op_sample(B, &lt, &p, &st, &ot, &err) == FR_OK, "valid call: %s", err.msg);
    const fr_sample_params bad[] = {sp(NAN, 0, 1, 0),   sp(1, 0, 0, 0),    sp(1, 0, 1.5f, 0),
                                    sp(1, 0, 1, -0.1f), sp(1, 0, 1, 1.1f), sp(1e-41f, 0, 1, 0),
                                    sp(1, 0, NAN, 0)};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(fr_op_sample(B, &lt, &bad[i], &st, &ot, &err) == FR_ERR_INVALID,
              "bad params %zu accepted", i);
    CHECK(fr_op_sample(B, &lt, NULL, &st, &ot, &err) == FR_ERR_INVALID, "NULL params");
    fr_tensor small = fr_tensor_1d(&sb, 0, FR_DTYPE_I32, FR_SAMPLE_STATE_WORDS - 1);
    CHECK(fr_op_sample(B, &lt, &p, &small, &ot, &err) == FR_ERR_INVALID, "short state");
    fr_tensor odd = fr_tensor_1d(&sb, 4, FR_DTYPE_I32, FR_SAMPLE_STATE_WORDS);
    CHECK(fr_op_sample(B, &lt, &p, &odd, &ot, &err) == FR_ERR_INVALID, "misaligned state");
    fr_tensor short_out = fr_tensor_1d(&ob, 0, FR_DTYPE_I32, 3);
    CHECK(fr_op_sample(B, &lt, &p, &st, &short_out, &err) == FR_ERR_INVALID, "short out");
    fr_tensor ff = fr_tensor_1d(&ob, 0, FR_DTYPE_F32, 4);
    CHECK(fr_op_sample(B, &lt, &p, &st, &ff, &err) == FR_ERR_INVALID, "f32 out");
    /* greedy ignores top_p / min_p, so out-of-range values there are fine */
    p = sp(0.0f, 0, 0.0f, 3.0f);
    CHECK(fr_op_sample(B, &lt, &p, &st, &ot, &err) == FR_OK, "greedy with unused params: %s",
          err.msg);
    fr_buffer_free(&lb);
    fr_buffer_free(&sb);
    fr_buffer_free(&ob);
}

int main(void) {
    fr_error err = {0};
    if (fr_cpu_backend_create(NULL, &B, &err) != FR_OK) {
        fprintf(stderr, "cpu backend: %s\n", err.msg);
        return 1;
    }
    test_common();
    test_greedy();
    test_allowed_sets();
    test_chi2();
    test_ties();
    test_repro();
    test_vs_host_sampler();
    test_validation();
    fr_backend_destroy(B);
    return fr_test_finish("test_sample_op");
}
