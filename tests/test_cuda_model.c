/* The model runner on the CUDA backend against Hugging Face transformers (float64 references in
 * ../shared/fixtures), with the f32 compute path: for every fixture model, the logits of every
 * position after one prefill, after chunks of 5 and token by token (decode steps, replayed from
 * the session's recorded graph) must each be within relative L2 error 1e-4 of the reference,
 * and the greedy continuation (argmax computed on the device) must equal the reference's.
 *
 * Graph replay: a session with graphs off (every decode step's ops launched directly) and one
 * with graphs on run the same tokens one at a time; every row of logits must be bit-identical,
 * also after a reset replays the recorded step at positions it has seen before.
 *
 * Prints one line per fixture ("cuda-model NAME ...") with the largest row errors; needs a GPU
 * (label `cuda`). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fixture.h"
#include "common/testutil.h"
#include "engine/session.h"
#include "ferrum.h"

#define TOL 1e-4

static int32_t host_argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static fr_session *new_session(fr_model *m, int n_ctx, int n_batch, const char *what) {
    fr_session_params sp = fr_session_default_params();
    sp.n_ctx = n_ctx;
    sp.n_batch = n_batch;
    fr_session *s = NULL;
    fr_error err = {0};
    fr_status st = fr_session_create(m, &sp, &s, &err);
    CHECK(st == FR_OK, "%s: session: %s", what, err.msg);
    return st ? NULL : s;
}

/* Graphs off vs on over the prompt and the greedy continuation, one token at a time. */
static void check_graph_replay(fr_model *m, const fr_test_fixture *f) {
    const int n = f->T + f->n_greedy, V = f->V;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    float *a = malloc((size_t)n * V * sizeof(float)), *b = malloc((size_t)n * V * sizeof(float));
    memcpy(ids, f->prompt, (size_t)f->T * sizeof *ids);
    memcpy(ids + f->T, f->greedy, (size_t)f->n_greedy * sizeof *ids);
    fr_session *direct = new_session(m, n, 0, f->name), *graph = new_session(m, n, 0, f->name);
    if (direct && graph) {
        fr_session_set_graphs(direct, false);
        fr_error err = {0};
        fr_status s = FR_OK;
        for (int t = 0; t < n && !s; t++) {
            s = fr_session_decode(direct, ids[t], a + (size_t)t * V, NULL, &err);
            if (!s) s = fr_session_decode(graph, ids[t], b + (size_t)t * V, NULL, &err);
        }
        CHECK(s == FR_OK, "%s: decode: %s", f->name, err.msg);
        CHECK(fr_session_graph_replays(direct) == 0, "%s: graphs off, yet %lld replays", f->name,
              (long long)fr_session_graph_replays(direct));
        CHECK(fr_session_graph_replays(graph) == n, "%s: %lld of %d steps replayed", f->name,
              (long long)fr_session_graph_replays(graph), n);
        int differ = 0;
        for (int t = 0; t < n; t++)
            if (memcmp(a + (size_t)t * V, b + (size_t)t * V, (size_t)V * sizeof(float))) differ++;
        CHECK(differ == 0, "%s: %d of %d replayed rows differ from direct execution", f->name,
              differ, n);
        /* the same graph again at positions 0..3 after a reset */
        fr_session_reset(graph);
        differ = 0;
        float *row = malloc((size_t)V * sizeof(float));
        for (int t = 0; t < 4 && !s; t++) {
            s = fr_session_decode(graph, ids[t], row, NULL, &err);
            if (memcmp(row, a + (size_t)t * V, (size_t)V * sizeof(float))) differ++;
        }
        free(row);
        CHECK(s == FR_OK, "%s: decode after reset: %s", f->name, err.msg);
        CHECK(differ == 0, "%s: %d rows differ after reset", f->name, differ);
        double e = fr_test_max_row_err(b, f->logits, f->T, V);
        CHECK(e < TOL, "%s: graph-replayed prompt logits error %.3g", f->name, e);
    }
    fr_session_free(direct);
    fr_session_free(graph);
    free(ids);
    free(a);
    free(b);
}

static void test_fixture(const char *name) {
    fr_test_fixture f;
    if (fr_test_fixture_load(name, false, &f)) return;
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "fixtures/models/%s", name);
    fr_test_shared_path(rel, path, sizeof path);
    fr_model_params mp = fr_model_default_params();
    mp.backend = "cuda";
    fr_error err = {0};
    fr_model *m = NULL;
    fr_status s = fr_model_load(path, &mp, &m, &err);
    CHECK(s == FR_OK, "%s: load on cuda: %s", name, err.msg);
    if (s) {
        fr_test_fixture_free(&f);
        return;
    }
    fr_model_info info;
    fr_model_get_info(m, &info);
    CHECK(!strcmp(info.backend, "cuda"), "%s: backend %s", name, info.backend);
    CHECK(fr_model_vocab_size(m) == f.V, "%s: vocab", name);
    const size_t V = (size_t)f.V;
    float *logits = malloc((size_t)f.T * V * sizeof(float));
    double errs[3] = {INFINITY, INFINITY, INFINITY};

    const char *how[] = {"prefill", "chunked", "incremental"};
    for (int mode = 0; mode < 3; mode++) {
        fr_session *ss = new_session(m, f.T + f.n_greedy, mode == 1 ? 5 : 0, name);
        if (!ss) break;
        for (size_t i = 0; i < (size_t)f.T * V; i++)
            logits[i] = NAN;
        if (mode < 2) {
            s = fr_session_eval(ss, f.prompt, f.T, logits, &err);
        } else {
            for (int t = 0; t < f.T && !s; t++)
                s = fr_session_eval(ss, &f.prompt[t], 1, logits + (size_t)t * V, &err);
            CHECK(fr_session_graph_replays(ss) == f.T, "%s: %lld of %d decode steps replayed", name,
                  (long long)fr_session_graph_replays(ss), f.T);
        }
        CHECK(s == FR_OK, "%s %s: eval: %s", name, how[mode], err.msg);
        CHECK(fr_session_pos(ss) == f.T, "%s: pos %d", name, fr_session_pos(ss));
        errs[mode] = fr_test_max_row_err(logits, f.logits, f.T, f.V);
        CHECK(errs[mode] < TOL, "%s %s: logits max row rel error %.3g", name, how[mode],
              errs[mode]);
        fr_session_free(ss);
    }

    /* greedy continuation: last-row prefill, then decode steps whose argmax comes from the
     * device (and agrees with the host's argmax of the same downloaded row) */
    int matched = 0, argmax_agree = 0;
    fr_session *ss = new_session(m, f.T + f.n_greedy, 0, name);
    if (ss) {
        s = fr_session_eval_last(ss, f.prompt, f.T, logits, &err);
        CHECK(s == FR_OK, "%s: eval_last: %s", name, err.msg);
        double e = fr_test_rel_l2(logits, f.logits + (size_t)(f.T - 1) * V, V);
        CHECK(e < TOL, "%s: last-row logits rel error %.3g", name, e);
        int32_t next = host_argmax(logits, f.V);
        for (int g = 0; g < f.n_greedy && !s; g++) {
            if (next != f.greedy[g]) break;
            matched++;
            if (g + 1 == f.n_greedy) break;
            int32_t dev_next = -1;
            s = fr_session_decode(ss, next, logits, &dev_next, &err);
            CHECK(s == FR_OK, "%s: decode: %s", name, err.msg);
            if (dev_next == host_argmax(logits, f.V)) argmax_agree++;
            next = dev_next;
        }
        CHECK(matched == f.n_greedy, "%s: greedy continuation matches %d of %d tokens", name,
              matched, f.n_greedy);
        CHECK(argmax_agree == f.n_greedy - 1, "%s: device argmax agreed %d of %d times", name,
              argmax_agree, f.n_greedy - 1);
        fr_session_free(ss);
    }

    check_graph_replay(m, &f);
    fprintf(stderr,
            "cuda-model %-18s prefill %.3g  chunked %.3g  incremental(graph) %.3g  greedy %d/%d\n",
            name, errs[0], errs[1], errs[2], matched, f.n_greedy);
    free(logits);
    fr_model_free(m);
    fr_test_fixture_free(&f);
}

int main(void) {
    const char *names[] = {"qwen3-tiny", "qwen3-tiny-bf16", "llama3-tiny-f16", "qwen2-tiny",
                           "mistral-tiny-swa"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        test_fixture(names[i]);
    return fr_test_finish("test_cuda_model");
}
