/* The model runner on the CUDA backend against Hugging Face transformers (float64 references in
 * tests/data/fixtures), for each compute type (fr_session_params.compute):
 *   f32:  every logits row within relative error 1e-4, greedy continuation equal;
 *   f16:  every logits row within relative error 2e-2 (issue #7), 16-bit activations and KV cache;
 *   bf16: every logits row within relative error 6e-2, NOT the 2e-2 issue #7 asks for: these tiny
 *         random fixtures amplify rounding about tenfold, and bf16 keeps 8 significant bits, so
 *         rounding only layer 0's first normed input to bf16 already moves llama3-tiny-f16's
 *         logits by 2.4%; an emulation of this path on the CPU (every 16-bit store rounded, prefill
 *         weights rounded to bf16 as cuBLASLt's conversion does) gave 1.0-4.6% (f16: 0.2-0.8%).
 *   For bf16 and f16, how many greedy tokens match the reference is reported, not required (the
 *   references' closest top-2 gaps are as small as 1e-3).
 * The error of a row is its relative L2 error ||x - ref|| / ||ref|| over the vocabulary
 * (fr_test_max_row_err: the largest over all rows), for the logits of every position after one
 * prefill (cuBLASLt GEMMs, tensor cores for 16-bit inputs), after chunks of 5 (GEMV) and token by
 * token (decode steps replayed from the session's recorded graph). The greedy continuation runs
 * free (each step fed the previous step's argmax, computed on the device, which must equal the
 * host's argmax of the same downloaded row).
 *
 * Graph replay: a session with graphs off (every decode step's ops launched directly) and one
 * with graphs on run the same tokens one at a time; every row of logits must be bit-identical,
 * also after a reset replays the recorded step at positions it has seen before (every compute
 * type).
 *
 * Prints one line per fixture and compute type ("cuda-model NAME TYPE ...") with the largest row
 * errors; needs a GPU (label `cuda`). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fixture.h"
#include "common/testutil.h"
#include "engine/session.h"
#include "ferrum.h"

#define TOL_F32  1e-4 /* issue #7: the f32 compute path */
#define TOL_F16  2e-2 /* issue #7: the f16 compute path */
#define TOL_BF16 6e-2 /* issue #7 says 2e-2, unreachable on these fixtures (see the top) */

static int32_t host_argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static fr_session *new_session(fr_model *m, int n_ctx, int n_batch, fr_compute_type ct,
                               const char *what) {
    fr_session_params sp = fr_session_default_params();
    sp.n_ctx = n_ctx;
    sp.n_batch = n_batch;
    sp.compute = ct;
    fr_session *s = NULL;
    fr_error err = {0};
    fr_status st = fr_session_create(m, &sp, &s, &err);
    CHECK(st == FR_OK, "%s %s: session: %s", what, fr_compute_type_name(ct), err.msg);
    if (!st)
        CHECK(fr_session_compute(s) == ct, "%s: session compute type %s", what,
              fr_compute_type_name(fr_session_compute(s)));
    return st ? NULL : s;
}

/* Graphs off vs on over the prompt and the greedy continuation, one token at a time. */
static void check_graph_replay(fr_model *m, const fr_test_fixture *f, fr_compute_type ct,
                               double tol) {
    const char *cn = fr_compute_type_name(ct);
    const int n = f->T + f->n_greedy, V = f->V;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    float *a = malloc((size_t)n * V * sizeof(float)), *b = malloc((size_t)n * V * sizeof(float));
    memcpy(ids, f->prompt, (size_t)f->T * sizeof *ids);
    memcpy(ids + f->T, f->greedy, (size_t)f->n_greedy * sizeof *ids);
    fr_session *direct = new_session(m, n, 0, ct, f->name),
               *graph = new_session(m, n, 0, ct, f->name);
    if (direct && graph) {
        fr_session_set_graphs(direct, false);
        fr_error err = {0};
        fr_status s = FR_OK;
        for (int t = 0; t < n && !s; t++) {
            s = fr_session_decode(direct, ids[t], a + (size_t)t * V, NULL, &err);
            if (!s) s = fr_session_decode(graph, ids[t], b + (size_t)t * V, NULL, &err);
        }
        CHECK(s == FR_OK, "%s %s: decode: %s", f->name, cn, err.msg);
        CHECK(fr_session_graph_replays(direct) == 0, "%s %s: graphs off, yet %lld replays", f->name,
              cn, (long long)fr_session_graph_replays(direct));
        CHECK(fr_session_graph_replays(graph) == n, "%s %s: %lld of %d steps replayed", f->name, cn,
              (long long)fr_session_graph_replays(graph), n);
        int differ = 0;
        for (int t = 0; t < n; t++)
            if (memcmp(a + (size_t)t * V, b + (size_t)t * V, (size_t)V * sizeof(float))) differ++;
        CHECK(differ == 0, "%s %s: %d of %d replayed rows differ from direct execution", f->name,
              cn, differ, n);
        /* the same graph again at positions 0..3 after a reset */
        fr_session_reset(graph);
        differ = 0;
        float *row = malloc((size_t)V * sizeof(float));
        for (int t = 0; t < 4 && !s; t++) {
            s = fr_session_decode(graph, ids[t], row, NULL, &err);
            if (memcmp(row, a + (size_t)t * V, (size_t)V * sizeof(float))) differ++;
        }
        free(row);
        CHECK(s == FR_OK, "%s %s: decode after reset: %s", f->name, cn, err.msg);
        CHECK(differ == 0, "%s %s: %d rows differ after reset", f->name, cn, differ);
        double e = fr_test_max_row_err(b, f->logits, f->T, V);
        CHECK(e < tol, "%s %s: graph-replayed prompt logits error %.3g", f->name, cn, e);
    }
    fr_session_free(direct);
    fr_session_free(graph);
    free(ids);
    free(a);
    free(b);
}

/* Every check of one fixture with one compute type; returns the greedy tokens matched. */
static int test_compute(fr_model *m, const fr_test_fixture *f, fr_compute_type ct) {
    const char *name = f->name, *cn = fr_compute_type_name(ct);
    const bool exact = ct == FR_COMPUTE_F32;
    const double tol = exact ? TOL_F32 : ct == FR_COMPUTE_F16 ? TOL_F16 : TOL_BF16;
    const size_t V = (size_t)f->V;
    fr_error err = {0};
    fr_status s = FR_OK;
    float *logits = malloc((size_t)f->T * V * sizeof(float));
    double errs[3] = {INFINITY, INFINITY, INFINITY};

    const char *how[] = {"prefill", "chunked", "incremental"};
    for (int mode = 0; mode < 3; mode++) {
        fr_session *ss = new_session(m, f->T + f->n_greedy, mode == 1 ? 5 : 0, ct, name);
        if (!ss) break;
        for (size_t i = 0; i < (size_t)f->T * V; i++)
            logits[i] = NAN;
        if (mode < 2) {
            s = fr_session_eval(ss, f->prompt, f->T, logits, &err);
        } else {
            for (int t = 0; t < f->T && !s; t++)
                s = fr_session_eval(ss, &f->prompt[t], 1, logits + (size_t)t * V, &err);
            CHECK(fr_session_graph_replays(ss) == f->T, "%s %s: %lld of %d decode steps replayed",
                  name, cn, (long long)fr_session_graph_replays(ss), f->T);
        }
        CHECK(s == FR_OK, "%s %s %s: eval: %s", name, cn, how[mode], err.msg);
        CHECK(fr_session_pos(ss) == f->T, "%s %s: pos %d", name, cn, fr_session_pos(ss));
        errs[mode] = fr_test_max_row_err(logits, f->logits, f->T, f->V);
        CHECK(errs[mode] < tol, "%s %s %s: logits max row rel error %.3g (limit %.g)", name, cn,
              how[mode], errs[mode], tol);
        fr_session_free(ss);
    }

    /* free-running greedy continuation: last-row prefill, then decode steps each fed the argmax
     * of the previous one, computed on the device (and equal to the host's argmax of the same
     * downloaded row); `matched` counts the leading tokens equal to the reference's */
    int matched = 0, argmax_agree = 0, steps = 0;
    bool diverged = false;
    fr_session *ss = new_session(m, f->T + f->n_greedy, 0, ct, name);
    if (ss) {
        s = fr_session_eval_last(ss, f->prompt, f->T, logits, &err);
        CHECK(s == FR_OK, "%s %s: eval_last: %s", name, cn, err.msg);
        double e = fr_test_rel_l2(logits, f->logits + (size_t)(f->T - 1) * V, V);
        CHECK(e < tol, "%s %s: last-row logits rel error %.3g", name, cn, e);
        int32_t next = host_argmax(logits, f->V);
        for (int g = 0; g < f->n_greedy && !s; g++) {
            if (next != f->greedy[g]) diverged = true;
            if (!diverged) matched++;
            if (g + 1 == f->n_greedy) break;
            int32_t dev_next = -1;
            s = fr_session_decode(ss, next, logits, &dev_next, &err);
            CHECK(s == FR_OK, "%s %s: decode: %s", name, cn, err.msg);
            steps++;
            if (dev_next == host_argmax(logits, f->V)) argmax_agree++;
            next = dev_next;
        }
        if (exact)
            CHECK(matched == f->n_greedy, "%s %s: greedy continuation matches %d of %d tokens",
                  name, cn, matched, f->n_greedy);
        CHECK(argmax_agree == steps && steps == f->n_greedy - 1,
              "%s %s: device argmax agreed %d of %d times", name, cn, argmax_agree, steps);
        /* a 16-bit KV cache is half the bytes a decode step reads from it */
        const size_t kv_f32 = fr_model_decode_bytes(m, 9) - fr_model_decode_bytes(m, 0);
        const size_t kv_s = fr_session_decode_bytes(ss, 9) - fr_session_decode_bytes(ss, 0);
        CHECK(kv_s == (exact ? kv_f32 : kv_f32 / 2), "%s %s: KV bytes of 9 steps %zu (f32: %zu)",
              name, cn, kv_s, kv_f32);
        fr_session_free(ss);
    }

    check_graph_replay(m, f, ct, tol);
    fprintf(stderr,
            "cuda-model %-18s %-4s prefill %.3g  chunked %.3g  incremental(graph) %.3g  "
            "greedy %d/%d%s\n",
            name, cn, errs[0], errs[1], errs[2], matched, f->n_greedy,
            exact ? "" : " (reported, not required)");
    free(logits);
    return matched;
}

static void test_fixture(const char *name, int matched16[2], int *n_greedy) {
    fr_test_fixture f;
    if (fr_test_fixture_load(name, false, &f)) return;
    fr_model_params mp = fr_model_default_params();
    mp.backend = "cuda";
    fr_model *m = fr_test_fixture_model(name, &mp);
    if (!m) {
        fr_test_fixture_free(&f);
        return;
    }
    fr_model_info info;
    fr_model_get_info(m, &info);
    CHECK(!strcmp(info.backend, "cuda"), "%s: backend %s", name, info.backend);
    CHECK(fr_model_vocab_size(m) == f.V, "%s: vocab", name);
    test_compute(m, &f, FR_COMPUTE_F32);
    matched16[0] += test_compute(m, &f, FR_COMPUTE_BF16);
    matched16[1] += test_compute(m, &f, FR_COMPUTE_F16);
    *n_greedy += f.n_greedy;
    fr_model_free(m);
    fr_test_fixture_free(&f);
}

int main(void) {
    const char *names[] = {"qwen3-tiny", "qwen3-tiny-bf16", "llama3-tiny-f16", "qwen2-tiny",
                           "mistral-tiny-swa"};
    int matched16[2] = {0, 0}, n_greedy = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        test_fixture(names[i], matched16, &n_greedy);
    fprintf(stderr, "cuda-model greedy tokens matching the reference: bf16 %d/%d, f16 %d/%d\n",
            matched16[0], n_greedy, matched16[1], n_greedy);
    return fr_test_finish("test_cuda_model");
}
