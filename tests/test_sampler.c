/* Sampler: each filter against distributions computed by hand, reproducibility by seed, and a
 * chi-square test that sampled frequencies follow the filtered softmax. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "ferrum.h"

static fr_sampler_params plain(void) {
    fr_sampler_params p = fr_sampler_default_params();
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.presence_penalty = p.frequency_penalty = 0.0f;
    return p;
}

static void expect_probs(const char *what, fr_sampler_params p, const float *logits, int n,
                         const double *want) {
    fr_sampler *s = NULL;
    fr_error err = {0};
    CHECK(fr_sampler_create(&p, n, &s, &err) == FR_OK, "%s: create: %s", what, err.msg);
    if (!s) return;
    float probs[64];
    CHECK(fr_sampler_probs(s, logits, probs, &err) == FR_OK, "%s: probs", what);
    for (int i = 0; i < n; i++)
        CHECK(fabs(probs[i] - want[i]) < 1e-6, "%s: p[%d] = %.7f, want %.7f", what, i, probs[i],
              want[i]);
    fr_sampler_free(s);
}

static void test_filters(void) {
    const float l4[4] = {1, 2, 3, 4};
    double e[4], z = 0;
    for (int i = 0; i < 4; i++) z += (e[i] = exp(l4[i]));
    double soft[4] = {e[0] / z, e[1] / z, e[2] / z, e[3] / z};
    expect_probs("softmax", plain(), l4, 4, soft);

    fr_sampler_params p = plain();
    p.temperature = 0.5f; /* logits doubled */
    double t[4], zt = 0;
    for (int i = 0; i < 4; i++) zt += (t[i] = exp(2.0 * l4[i]));
    for (int i = 0; i < 4; i++) t[i] /= zt;
    expect_probs("temperature", p, l4, 4, t);

    p = plain();
    p.top_k = 2;
    expect_probs("top_k", p, l4, 4, (double[]){0, 0, e[2] / (e[2] + e[3]), e[3] / (e[2] + e[3])});

    /* probabilities 0.5 0.3 0.15 0.05 given as log-probs (order scrambled) */
    const float lp[4] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    p = plain();
    p.top_p = 0.75f; /* 0.5 < 0.75 <= 0.8: keeps 0.5 and 0.3 */
    expect_probs("top_p", p, lp, 4, (double[]){0, 0.625, 0, 0.375});
    p.top_p = 0.5f; /* the top token alone reaches 0.5 */
    expect_probs("top_p edge", p, lp, 4, (double[]){0, 1, 0, 0});

    p = plain();
    p.min_p = 0.2f; /* floor 0.1: drops 0.05 */
    expect_probs("min_p", p, lp, 4, (double[]){0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95});

    p = plain();
    p.top_k = 3;
    p.top_p = 0.9f; /* top-3 renormalised: 0.5/.95=.526, .3/.95=.316 -> cum .842 < .9, keep 3 */
    expect_probs("top_k then top_p", p, lp, 4, (double[]){0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95});

    p = plain();
    p.temperature = 0;
    expect_probs("greedy", p, (float[]){0.5f, 3.0f, 3.0f, -1.0f}, 4, (double[]){0, 1, 0, 0});
}

static void test_penalties(void) {
    fr_sampler_params p = plain();
    p.temperature = 0;
    p.repeat_penalty = 2.0f;
    fr_sampler *s = NULL;
    CHECK(fr_sampler_create(&p, 3, &s, NULL) == FR_OK, "create");
    /* logits 2, -2, 1.5; token 0 seen twice, token 1 once: 2/2=1, -2*2=-4, 1.5 untouched */
    fr_sampler_accept(s, 0);
    fr_sampler_accept(s, 1);
    fr_sampler_accept(s, 0);
    CHECK(fr_sampler_sample(s, (float[]){2.0f, -2.0f, 1.5f}) == 2, "repeat penalty flips argmax");
    fr_sampler_free(s);

    p = plain();
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    p.penalty_last_n = 2; /* only the last two accepted tokens count */
    CHECK(fr_sampler_create(&p, 3, &s, NULL) == FR_OK, "create");
    fr_sampler_accept(s, 2); /* falls out of the window */
    fr_sampler_accept(s, 0);
    fr_sampler_accept(s, 0);
    /* token 0: 1 - 0.5 - 0.25*2 = 0; tokens 1, 2 unchanged */
    float probs[3];
    fr_sampler_probs(s, (float[]){1.0f, 0.0f, 0.0f}, probs, NULL);
    CHECK(fabs(probs[0] - 1.0 / 3) < 1e-6 && fabs(probs[2] - 1.0 / 3) < 1e-6,
          "presence+frequency: %f %f %f", probs[0], probs[1], probs[2]);
    /* penalties must not leak into the next call's state */
    fr_sampler_probs(s, (float[]){1.0f, 0.0f, 0.0f}, probs, NULL);
    CHECK(fabs(probs[0] - 1.0 / 3) < 1e-6, "penalties are idempotent across calls");
    fr_sampler_free(s);
}

static void test_seed_and_chi_square(void) {
    enum { V = 10, N = 200000 };
    float logits[V];
    for (int i = 0; i < V; i++) logits[i] = 0.3f * (float)i - 0.02f * (float)(i * i);
    fr_sampler_params p = plain();
    p.seed = 1234;
    fr_sampler *a = NULL, *b = NULL;
    fr_sampler_create(&p, V, &a, NULL);
    fr_sampler_create(&p, V, &b, NULL);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= fr_sampler_sample(a, logits) == fr_sampler_sample(b, logits);
    CHECK(same, "same seed, same draws");
    fr_sampler_reset(a);
    fr_sampler_reset(b);
    p.seed = 99;
    fr_sampler *c = NULL;
    fr_sampler_create(&p, V, &c, NULL);
    int differ = 0;
    for (int i = 0; i < 200; i++) differ += fr_sampler_sample(a, logits) != fr_sampler_sample(c, logits);
    CHECK(differ > 20, "another seed, other draws (%d of 200 differ)", differ);

    long counts[V] = {0};
    for (int i = 0; i < N; i++) counts[fr_sampler_sample(b, logits)]++;
    double z = 0, chi = 0;
    for (int i = 0; i < V; i++) z += exp(logits[i]);
    for (int i = 0; i < V; i++) {
        double expect = N * exp(logits[i]) / z;
        chi += (counts[i] - expect) * (counts[i] - expect) / expect;
    }
    CHECK(chi < 27.88, "chi-square %.2f over 9 dof exceeds the 0.1%% critical value", chi);
    fr_sampler_free(a);
    fr_sampler_free(b);
    fr_sampler_free(c);
}

/* Large vocabulary: the partial-sort top-p path must equal a full sort done here. */
static void test_large_top_p(void) {
    enum { V = 50000 };
    float *logits = malloc(sizeof(float) * V), *probs = malloc(sizeof(float) * V);
    fr_test_rng rng = {5};
    for (int i = 0; i < V; i++) logits[i] = 4.0f * fr_test_rng_sym(&rng);
    fr_sampler_params p = plain();
    p.top_p = 0.9f;
    fr_sampler *s = NULL;
    fr_sampler_create(&p, V, &s, NULL);
    fr_sampler_probs(s, logits, probs, NULL);
    /* reference: sort indices by logit, keep the prefix reaching 0.9 */
    int *idx = malloc(sizeof(int) * V);
    for (int i = 0; i < V; i++) idx[i] = i;
    for (int gap = V / 2; gap > 0; gap /= 2) /* shell sort, descending */
        for (int i = gap; i < V; i++)
            for (int j = i; j >= gap && logits[idx[j - gap]] < logits[idx[j]]; j -= gap) {
                int t = idx[j];
                idx[j] = idx[j - gap];
                idx[j - gap] = t;
            }
    double z = 0, cum = 0;
    for (int i = 0; i < V; i++) z += exp(logits[i]);
    int keep = V;
    for (int i = 0; i < V; i++) {
        cum += exp(logits[idx[i]]) / z;
        if (cum >= 0.9) {
            keep = i + 1;
            break;
        }
    }
    double zk = 0;
    for (int i = 0; i < keep; i++) zk += exp(logits[idx[i]]);
    double maxdiff = 0;
    int kept = 0;
    for (int i = 0; i < V; i++) kept += probs[i] > 0;
    for (int i = 0; i < keep; i++) {
        double d = fabs(probs[idx[i]] - exp(logits[idx[i]]) / zk);
        maxdiff = d > maxdiff ? d : maxdiff;
    }
    CHECK(kept == keep && maxdiff < 1e-6, "top_p large: kept %d want %d, maxdiff %g", kept, keep,
          maxdiff);
    fr_sampler_free(s);
    free(idx);
    free(logits);
    free(probs);
}

static void test_bad_params(void) {
    fr_sampler_params p = plain();
    p.top_p = 0;
    fr_sampler *s = NULL;
    fr_error err = {0};
    CHECK(fr_sampler_create(&p, 10, &s, &err) == FR_ERR_INVALID && s == NULL, "top_p 0 rejected");
    CHECK(fr_sampler_create(NULL, 0, &s, &err) == FR_ERR_INVALID, "vocab 0 rejected");
}

int main(void) {
    test_filters();
    test_penalties();
    test_seed_and_chi_square();
    test_large_top_p();
    test_bad_params();
    return fr_test_finish("test_sampler");
}
