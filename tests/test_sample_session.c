/* The engine's device-sampling path (fr_session_decode_sample and fr_generate's use of it), run
 * on the CPU backend with device sampling switched on (the CPU implements the `sample` op; GPUs
 * use the path by default):
 *   - greedy generation gives exactly the host sampler's ids;
 *   - sampled generation gives, step by step, the id the `sample` op draws from the same logits
 *     with the session's generator at counter 0, 1, 2, ... (recomputed here from logits the
 *     host path produces), so the only difference from the host path is the generator;
 *   - the counter continues across fr_generate calls with the same seed and restarts with a
 *     new one; a sampler with penalties keeps the host path.
 * Needs the qwen3-tiny fixture model in $FR_TEST_DATA/fixtures/models. */
#include <stdlib.h>
#include <string.h>

#include "common/sample_ref.h"
#include "common/testutil.h"
#include "engine/session.h"
#include "ferrum.h"

enum { MAX_GEN = 24 };

typedef struct {
    int32_t ids[MAX_GEN];
    int n;
} collected;

static bool on_token(void *user, int32_t id) {
    collected *c = user;
    if (c->n < MAX_GEN) c->ids[c->n++] = id;
    return true;
}

static fr_sampler_params params(float t, int k, float top_p, float min_p, uint64_t seed) {
    fr_sampler_params p = fr_sampler_default_params();
    p.temperature = t;
    p.top_k = k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = 1.0f;
    p.presence_penalty = p.frequency_penalty = 0.0f;
    p.seed = seed;
    return p;
}

static int generate(fr_model *m, bool device, fr_sampler_params sp, const int32_t *prompt, int n,
                    int max_tokens, collected *out, fr_session **keep) {
    fr_error err = {0};
    fr_session *s = keep && *keep ? *keep : NULL;
    if (!s && fr_session_create(m, NULL, &s, &err) != FR_OK) {
        CHECK(0, "session: %s", err.msg);
        return 0;
    }
    fr_session_set_device_sampling(s, device);
    CHECK(fr_session_device_sampling(s) == device, "device sampling switch");
    fr_sampler *smp = NULL;
    CHECK(fr_sampler_create(&sp, fr_model_vocab_size(m), &smp, &err) == FR_OK, "sampler: %s",
          err.msg);
    fr_generate_params gp = fr_generate_default_params();
    gp.max_tokens = max_tokens;
    gp.ignore_eos = true;
    gp.on_token = on_token;
    gp.user = out;
    memset(out, 0, sizeof *out);
    fr_generate_stats stats;
    const fr_status st = fr_generate(s, smp, NULL, prompt, n, &gp, &stats, &err);
    CHECK(st == FR_OK, "generate: %s", err.msg);
    fr_sampler_free(smp);
    if (keep)
        *keep = s;
    else
        fr_session_free(s);
    return st == FR_OK;
}

/* The ids the device path must give: host-path logits, the sample op at counter c0, c0+1, ... */
static void expected_ids(fr_model *m, fr_sampler_params sp, const int32_t *prompt, int n, int count,
                         uint64_t c0, collected *out) {
    fr_error err = {0};
    fr_session *s = NULL;
    CHECK(fr_session_create(m, NULL, &s, &err) == FR_OK, "session: %s", err.msg);
    if (!s) return;
    fr_backend *be = fr_session_model(s)->backend;
    const int V = fr_model_vocab_size(m);
    float *logits = malloc(sizeof(float) * (size_t)V);
    const fr_sample_params dsp = {sp.temperature, sp.top_k, sp.top_p, sp.min_p};
    memset(out, 0, sizeof *out);
    fr_status st = fr_session_eval_last(s, prompt, n, logits, &err);
    for (int i = 0; i < count && !st; i++) {
        int32_t id = -1;
        st = fr_ref_run_op(be, logits, 1, V, &dsp, sp.seed, c0 + (uint64_t)i, &id, NULL, &err);
        out->ids[out->n++] = id;
        if (!st && i + 1 < count) st = fr_session_eval_last(s, &id, 1, logits, &err);
    }
    CHECK(st == FR_OK, "reference run: %s", err.msg);
    free(logits);
    fr_session_free(s);
}

static void same(const char *what, const collected *a, const collected *b) {
    int diff = a->n != b->n;
    for (int i = 0; !diff && i < a->n; i++)
        diff += a->ids[i] != b->ids[i];
    CHECK(diff == 0, "%s: sequences differ (%d vs %d tokens)", what, a->n, b->n);
    if (diff)
        for (int i = 0; i < a->n && i < b->n; i++)
            fprintf(stderr, "  %2d: %6d %6d\n", i, a->ids[i], b->ids[i]);
}

int main(void) {
    char path[4096];
    fr_error err = {0};
    fr_model *m = NULL;
    fr_model_params mp = {0};
    mp.backend = "cpu";
    if (fr_model_load(fr_test_data_path("fixtures/models/qwen3-tiny", path, sizeof path), &mp, &m,
                      &err) != FR_OK) {
        fprintf(stderr, "model: %s\n", err.msg);
        return 1;
    }
    const int32_t prompt[] = {1, 17, 42, 99, 5, 300, 7};
    const int n = (int)(sizeof prompt / sizeof prompt[0]);
    collected a, b;

    /* greedy: the same ids either way */
    fr_sampler_params g = params(0.0f, 0, 1.0f, 0.0f, 1);
    if (generate(m, false, g, prompt, n, 16, &a, NULL) &&
        generate(m, true, g, prompt, n, 16, &b, NULL))
        same("greedy", &a, &b);
    CHECK(a.n == 16, "greedy generated %d tokens", a.n);

    /* sampling: the op's draws on the host path's logits */
    const fr_sampler_params ps[] = {params(1.0f, 0, 1.0f, 0.0f, 42),
                                    params(0.8f, 20, 0.9f, 0.05f, 7),
                                    params(1.5f, 0, 0.7f, 0.0f, 99)};
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        if (!generate(m, true, ps[k], prompt, n, 12, &a, NULL)) continue;
        expected_ids(m, ps[k], prompt, n, 12, 0, &b);
        same("sampled", &a, &b);
    }

    /* the counter continues over calls with the same seed, restarts with another */
    fr_session *s = NULL;
    collected c1, c2;
    if (generate(m, true, ps[0], prompt, n, 5, &c1, &s)) {
        uint64_t seed = 0;
        CHECK(fr_session_sample_seed(s, &seed) && seed == 42, "session seeded with 42");
        fr_session_reset(s);
        generate(m, true, ps[0], prompt, n, 5, &c2, &s);
        expected_ids(m, ps[0], prompt, n, 5, 5, &b); /* counters 5..9 */
        same("second call continues the counter", &c2, &b);
        fr_session_reset(s);
        generate(m, true, ps[1], prompt, n, 5, &c2, &s); /* seed 7: counter 0 again */
        expected_ids(m, ps[1], prompt, n, 5, 0, &b);
        same("new seed restarts the counter", &c2, &b);
    }
    fr_session_free(s);

    /* penalties keep the host sampler (its own generator): the host path's ids */
    fr_sampler_params pen = params(0.9f, 0, 1.0f, 0.0f, 3);
    pen.repeat_penalty = 1.3f;
    if (generate(m, false, pen, prompt, n, 10, &a, NULL) &&
        generate(m, true, pen, prompt, n, 10, &b, NULL))
        same("penalties", &a, &b);

    /* the session API directly: errors */
    s = NULL;
    CHECK(fr_session_create(m, NULL, &s, &err) == FR_OK, "session");
    int32_t next;
    const fr_sample_params badp = {1.0f, 0, 0.0f, 0.0f};
    CHECK(fr_session_decode_sample(s, 1, &badp, &next, &err) == FR_ERR_INVALID, "bad top_p");
    CHECK(fr_session_pos(s) == 0, "a failed step leaves the position");
    const fr_sample_params okp = {0.0f, 0, 1.0f, 0.0f};
    CHECK(fr_session_decode_sample(s, 1, &okp, NULL, &err) == FR_ERR_INVALID, "NULL next");
    CHECK(fr_session_decode_sample(s, -1, &okp, &next, &err) == FR_ERR_INVALID, "bad id");
    CHECK(fr_session_decode_sample(s, 1, &okp, &next, &err) == FR_OK, "greedy step: %s", err.msg);
    CHECK(fr_session_pos(s) == 1 && next >= 0 && next < fr_model_vocab_size(m), "step result");
    fr_session_free(s);

    fr_model_free(m);
    return fr_test_finish("test_sample_session");
}
