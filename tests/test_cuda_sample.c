/* The `sample` op on CUDA against the CPU backend's (which test_sample_op checks against float64):
 *   - exact id equality, CUDA vs CPU, on the same logits and state: random rows at several
 *     scales (flat to peaked), rows rounded to bf16 (many ties, so the radix selects meet equal
 *     keys), rows with NaN / -inf / +inf / all masked, V in {7, 1000, 151936}, many rows and
 *     counters, greedy, top_k = 1, top_k >= V, combinations of top-k / top-p / min-p;
 *   - greedy equals the CUDA argmax op;
 *   - draws from the CUDA op lie in the float64 allowed set (V = 151936) and pass a chi-square
 *     test against the float64 filtered distribution;
 *   - a captured graph containing the op draws fresh numbers on every replay (the counter is
 *     advanced on the device, by the last of several blocks too): replay i equals the CPU op at
 *     counter i, and the counter ends at the number of replays;
 *   - the time of one op on a 151936-wide row (printed, not checked).
 * Needs a GPU (label `cuda`). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/sample_ref.h"
#include "common/testutil.h"
#include "kernels/backend.h"

static fr_backend *GPU, *CPU;
static fr_test_rng RNG = {4242};

static double gauss(void) {
    double u = fr_test_rng_uniform(&RNG), v = fr_test_rng_uniform(&RNG);
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static float bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

enum { ROW_GAUSS, ROW_BF16, ROW_MASKED, ROW_KINDS };

/* Row t of kind t % ROW_KINDS (the masked kind cycles through its variants). */
static void fill_rows(float *x, int T, int V, double scale) {
    for (int t = 0; t < T; t++) {
        float *r = x + (size_t)t * V;
        for (int i = 0; i < V; i++)
            r[i] = (float)(scale * gauss());
        switch (t % ROW_KINDS) {
        case ROW_BF16:
            for (int i = 0; i < V; i++)
                r[i] = bf16_round(r[i] * 0.5f);
            break;
        case ROW_MASKED:
            switch ((t / ROW_KINDS) % 4) {
            case 0:
                for (int i = 0; i < V; i += 3)
                    r[i] = NAN;
                for (int i = 1; i < V; i += 5)
                    r[i] = -INFINITY;
                break;
            case 1:
                for (int i = 0; i < V; i++)
                    r[i] = NAN;
                break;
            case 2:
                r[V / 2] = INFINITY;
                if (V > 3) r[V - 1] = INFINITY;
                break;
            default:
                for (int i = 0; i < V; i++)
                    r[i] = i % 2 ? -INFINITY : 1.0f; /* equal logits */
                break;
            }
            break;
        }
    }
}

static fr_sample_params sp(float t, int k, float top_p, float min_p) {
    return (fr_sample_params){.temperature = t, .top_k = k, .top_p = top_p, .min_p = min_p};
}

/* CUDA and CPU on the same rows and states: every id equal. */
static void compare(int V, int T, double scale, fr_sample_params p, int calls) {
    float *x = malloc(sizeof(float) * (size_t)T * (size_t)V);
    int32_t *a = malloc(sizeof(int32_t) * (size_t)T), *b = malloc(sizeof(int32_t) * (size_t)T);
    fill_rows(x, T, V, scale);
    int bad = 0, total = 0;
    for (int c = 0; c < calls; c++) {
        const uint64_t counter = (uint64_t)c * 7919 + 3, seed = 0x5eed + (uint64_t)V;
        uint64_t ga = 0, ca = 0;
        fr_error err = {0};
        if (fr_ref_run_op(GPU, x, T, V, &p, seed, counter, a, &ga, &err) != FR_OK) {
            CHECK(0, "cuda sample: %s", err.msg);
            break;
        }
        if (fr_ref_run_op(CPU, x, T, V, &p, seed, counter, b, &ca, &err) != FR_OK) {
            CHECK(0, "cpu sample: %s", err.msg);
            break;
        }
        CHECK(ga == counter + 1 && ca == counter + 1, "counters after: cuda %llu cpu %llu",
              (unsigned long long)ga, (unsigned long long)ca);
        for (int t = 0; t < T; t++, total++)
            if (a[t] != b[t] && bad++ < 8)
                fprintf(stderr, "  V=%d row %d (kind %d) counter %llu: cuda %d cpu %d\n", V, t,
                        t % ROW_KINDS, (unsigned long long)counter, a[t], b[t]);
    }
    CHECK(bad == 0, "V=%d scale %g T=%g k=%d p=%g min_p=%g: %d of %d ids differ", V, scale,
          p.temperature, p.top_k, p.top_p, p.min_p, bad, total);
    free(x);
    free(a);
    free(b);
}

static void test_compare(void) {
    const fr_sample_params ps[] = {
        sp(0.0f, 0, 1.0f, 0.0f),    sp(1.0f, 0, 1.0f, 0.0f),         sp(1.0f, 1, 1.0f, 0.0f),
        sp(0.7f, 5, 1.0f, 0.0f),    sp(1.0f, 0, 0.6f, 0.0f),         sp(1.0f, 0, 1.0f, 0.3f),
        sp(0.8f, 40, 0.95f, 0.05f), sp(1.3f, 20, 0.5f, 0.0f),        sp(0.6f, 0, 0.9f, 0.1f),
        sp(2.0f, 300, 0.3f, 0.0f),  sp(1.0f, 1000000, 0.999f, 0.0f), sp(1.0f, 0, 1e-6f, 0.0f),
        sp(0.9f, 0, 1.0f, 1.0f),
    };
    const int n = (int)(sizeof ps / sizeof ps[0]);
    for (int k = 0; k < n; k++) {
        compare(7, 96, 1 + k % 3, ps[k], 6);
        compare(1000, 96, k % 2 ? 0.05 : 4.0, ps[k], 4);
        compare(151936, 6, k % 3 == 0 ? 0.3 : 3.0, ps[k], 2);
    }
}

/* Greedy equals the CUDA argmax op. */
static void test_greedy_vs_argmax(void) {
    enum { T = 24, V = 151936 };
    float *x = malloc(sizeof(float) * (size_t)T * V);
    fill_rows(x, T, V, 2.0);
    int32_t got[T], want[T];
    fr_error err = {0};
    fr_sample_params g = sp(0.0f, 0, 1.0f, 0.0f);
    CHECK(fr_ref_run_op(GPU, x, T, V, &g, 1, 0, got, NULL, &err) == FR_OK, "%s", err.msg);
    fr_buffer xb, ob;
    fr_buffer_alloc(GPU, sizeof(float) * (size_t)T * V, &xb, &err);
    fr_buffer_alloc(GPU, sizeof want, &ob, &err);
    fr_buffer_upload(&xb, 0, x, sizeof(float) * (size_t)T * V, &err);
    fr_tensor xt = fr_tensor_2d(&xb, 0, FR_DTYPE_F32, T, V),
              ot = fr_tensor_1d(&ob, 0, FR_DTYPE_I32, T);
    CHECK(fr_op_argmax(GPU, &xt, &ot, &err) == FR_OK, "argmax: %s", err.msg);
    fr_backend_sync(GPU, &err);
    fr_buffer_download(&ob, 0, want, sizeof want, &err);
    int bad = 0;
    for (int t = 0; t < T; t++)
        bad += got[t] != want[t];
    CHECK(bad == 0, "greedy sample vs argmax: %d rows differ", bad);
    fr_buffer_free(&xb);
    fr_buffer_free(&ob);
    free(x);
}

/* CUDA draws lie in the float64 allowed set (tokens within 1e-5 of a threshold excepted). */
static void test_allowed(void) {
    enum { T = 16, V = 151936 };
    const fr_sample_params ps[] = {sp(0.8f, 40, 0.95f, 0.05f), sp(1.0f, 0, 0.9f, 0.0f),
                                   sp(0.7f, 0, 1.0f, 0.02f), sp(1.0f, 100, 1.0f, 0.0f)};
    float *x = malloc(sizeof(float) * (size_t)T * V);
    double *probs = malloc(sizeof(double) * V);
    unsigned char *amb = malloc(V);
    int32_t ids[T];
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        for (size_t i = 0; i < (size_t)T * V; i++)
            x[i] = (float)(3.0 * gauss());
        int bad = 0;
        for (int c = 0; c < 3; c++) {
            fr_error err = {0};
            if (fr_ref_run_op(GPU, x, T, V, &ps[k], 9, (uint64_t)c, ids, NULL, &err) != FR_OK) {
                CHECK(0, "cuda sample: %s", err.msg);
                break;
            }
            for (int t = 0; t < T; t++) {
                fr_ref_sample_probs_amb(x + (size_t)t * V, V, &ps[k], probs, amb);
                if (ids[t] < 0 || ids[t] >= V || !(probs[ids[t]] > 0 || amb[ids[t]])) bad++;
            }
        }
        CHECK(bad == 0, "params %zu: %d cuda draws outside the float64 allowed set", k, bad);
    }
    free(x);
    free(probs);
    free(amb);
}

/* Chi-square of N rows of one call against the float64 filtered distribution. */
static void test_chi2(void) {
    enum { V = 40, N = 40000 };
    float row[V];
    for (int i = 0; i < V; i++)
        row[i] = (float)(0.15 * i - 0.002 * i * i) + (i % 3 ? 0.1f : 0.0f);
    const fr_sample_params ps[] = {sp(1.0f, 0, 1.0f, 0.0f), sp(1.0f, 7, 1.0f, 0.0f),
                                   sp(0.9f, 0, 0.7f, 0.0f), sp(1.1f, 0, 1.0f, 0.4f),
                                   sp(0.8f, 20, 0.8f, 0.1f)};
    float *x = malloc(sizeof(float) * (size_t)N * V);
    for (int t = 0; t < N; t++)
        memcpy(x + (size_t)t * V, row, sizeof row);
    int32_t *ids = malloc(sizeof(int32_t) * N);
    double probs[V];
    int64_t counts[V];
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        fr_ref_sample_probs(row, V, &ps[k], probs);
        fr_error err = {0};
        if (fr_ref_run_op(GPU, x, N, V, &ps[k], 77, 3, ids, NULL, &err) != FR_OK) {
            CHECK(0, "cuda sample: %s", err.msg);
            continue;
        }
        memset(counts, 0, sizeof counts);
        for (int t = 0; t < N; t++)
            if (ids[t] >= 0 && ids[t] < V) counts[ids[t]]++;
        int df;
        const double c2 = fr_ref_chi2(counts, probs, V, N, &df);
        CHECK(c2 < fr_ref_chi2_limit(df), "params %zu: chi2 %.1f with %d dof", k, c2, df);
    }
    free(x);
    free(ids);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A graph holding the op, replayed: replay i = the CPU op at counter i. */
static void replay(int T, int V, fr_sample_params p, int replays, bool timing) {
    fr_error err = {0};
    float *x = malloc(sizeof(float) * (size_t)T * V);
    fill_rows(x, T, V, 2.0);
    for (int t = 0; t < T; t++) /* keep every row samplable */
        x[(size_t)t * V] = 1.0f;
    fr_buffer lb, sb, ob;
    fr_buffer_alloc(GPU, sizeof(float) * (size_t)T * V, &lb, &err);
    fr_buffer_alloc(GPU, sizeof(fr_sample_state), &sb, &err);
    fr_buffer_alloc(GPU, sizeof(int32_t) * (size_t)T, &ob, &err);
    fr_buffer_upload(&lb, 0, x, sizeof(float) * (size_t)T * V, &err);
    int32_t words[FR_SAMPLE_STATE_WORDS];
    const uint64_t seed = 0xabcdef;
    fr_sample_state_pack(seed, 0, words);
    fr_buffer_upload(&sb, 0, words, sizeof words, &err);
    fr_tensor lt = fr_tensor_2d(&lb, 0, FR_DTYPE_F32, T, V);
    fr_tensor st = fr_tensor_1d(&sb, 0, FR_DTYPE_I32, FR_SAMPLE_STATE_WORDS);
    fr_tensor ot = fr_tensor_1d(&ob, 0, FR_DTYPE_I32, T);
    void *graph = NULL;
    fr_status s = fr_backend_begin(GPU, &err);
    if (!s) s = fr_graph_capture_begin(GPU, &err);
    if (!s) {
        const fr_status op = fr_op_sample(GPU, &lt, &p, &st, &ot, &err);
        s = fr_graph_capture_end(GPU, &graph, &err);
        if (!s) s = op;
    }
    CHECK(s == FR_OK && graph, "capture: %s", err.msg);
    int32_t *got = malloc(sizeof(int32_t) * (size_t)T), *want = malloc(sizeof(int32_t) * (size_t)T);
    int32_t *first = malloc(sizeof(int32_t) * (size_t)T);
    int bad = 0, changed = 0;
    for (int i = 0; i < replays && !s && graph; i++) {
        s = fr_graph_launch(GPU, graph, &err);
        if (!s) s = fr_backend_sync(GPU, &err);
        if (!s) s = fr_buffer_download(&ob, 0, got, sizeof(int32_t) * (size_t)T, &err);
        CHECK(s == FR_OK, "replay %d: %s", i, err.msg);
        if (s) break;
        if (fr_ref_run_op(CPU, x, T, V, &p, seed, (uint64_t)i, want, NULL, &err) != FR_OK) {
            CHECK(0, "cpu: %s", err.msg);
            break;
        }
        for (int t = 0; t < T; t++) {
            bad += got[t] != want[t];
            if (i > 0) changed += got[t] != first[t];
        }
        if (i == 0) memcpy(first, got, sizeof(int32_t) * (size_t)T);
    }
    fr_sample_state after = {0};
    fr_buffer_download(&sb, 0, &after, sizeof after, &err);
    CHECK(bad == 0, "T=%d V=%d: %d replayed ids differ from the CPU op", T, V, bad);
    CHECK(after.counter == (uint64_t)replays && after.done == 0,
          "T=%d: counter %llu after %d replays (done %u)", T, (unsigned long long)after.counter,
          replays, after.done);
    CHECK(!(p.temperature > 0) || changed > 0, "T=%d V=%d: replays never drew a different id", T,
          V);
    if (timing && graph && !s) {
        const int n = 200;
        double t0 = now_s();
        for (int i = 0; i < n; i++)
            fr_graph_launch(GPU, graph, &err);
        fr_backend_sync(GPU, &err);
        const double us = (now_s() - t0) / n * 1e6;
        printf("sample op, T=%d V=%d (t=%g k=%d p=%g min_p=%g): %.1f us per replay\n", T, V,
               p.temperature, p.top_k, p.top_p, p.min_p, us);
    }
    fr_backend_end(GPU, &err);
    fr_graph_free(GPU, graph);
    fr_buffer_free(&lb);
    fr_buffer_free(&sb);
    fr_buffer_free(&ob);
    free(x);
    free(got);
    free(want);
    free(first);
}

static void test_replay(void) {
    replay(1, 151936, sp(0.8f, 40, 0.95f, 0.05f), 12, true);
    replay(1, 151936, sp(0.6f, 0, 0.9f, 0.0f), 12, true);
    replay(1, 151936, sp(1.0f, 0, 1.0f, 0.0f), 12, true);
    replay(1, 151936, sp(0.0f, 0, 1.0f, 0.0f), 4, true);
    replay(5, 1000, sp(1.0f, 0, 1.0f, 0.0f), 40, false); /* five blocks share the counter */
    replay(64, 7, sp(1.0f, 3, 0.9f, 0.0f), 40, false);
}

int main(void) {
    fr_error err = {0};
    if (fr_backend_create("cuda", NULL, &GPU, &err) != FR_OK) {
        fprintf(stderr, "cuda backend: %s\n", err.msg);
        return 1;
    }
    if (fr_cpu_backend_create(NULL, &CPU, &err) != FR_OK) {
        fprintf(stderr, "cpu backend: %s\n", err.msg);
        return 1;
    }
    test_compare();
    test_greedy_vs_argmax();
    test_allowed();
    test_chi2();
    test_replay();
    fr_backend_destroy(GPU);
    fr_backend_destroy(CPU);
    return fr_test_finish("test_cuda_sample");
}
