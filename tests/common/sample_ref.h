/* Shared by test_sample_op.c and test_cuda_sample.c: a float64 reference of the distribution
 * fr_op_sample draws from (written from the op's contract in backend.h, independently of the
 * fixed-point kernels), a chi-square statistic, and a helper that runs the op once on any
 * backend. Header-only (static functions) so it is compiled only into the tests that use it. */
#ifndef FR_TESTS_SAMPLE_REF_H
#define FR_TESTS_SAMPLE_REF_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "kernels/backend.h"

typedef struct {
    double l;
    int id;
} fr_ref_cand;

static inline int fr_ref_cmp_desc(const void *a, const void *b) {
    const fr_ref_cand *x = a, *y = b;
    if (x->l != y->l) return x->l > y->l ? -1 : 1;
    return x->id - y->id;
}

/* probs[V] = the filtered, renormalised distribution of one row in float64 (0 outside the set);
 * amb[V] (may be NULL) marks tokens whose own keep/drop decision is within 1e-5 of a threshold,
 * which the op may decide either way.
 * Returns the smallest margin of any keep/drop decision: for top-k the logit gap between the
 * k-th value and the next smaller one, for top-p the distance of a token's "mass above" from
 * top_p, for min-p the distance of log(p / p_max) from log(min_p). A row whose margin is below
 * ~1e-5 may legitimately differ from the op (f32 logits, fixed-point weights); callers skip it.
 * Greedy rows give one-hot probs and margin +inf. */
static inline double fr_ref_sample_probs_amb(const float *x, int V, const fr_sample_params *p,
                                             double *probs, unsigned char *amb) {
    const double tol = 1e-5;
    memset(probs, 0, sizeof(double) * (size_t)V);
    if (amb) memset(amb, 0, (size_t)V);
    if (!(p->temperature > 0)) {
        int best = -1;
        for (int i = 0; i < V; i++)
            if (!isnan(x[i]) && (best < 0 || x[i] > x[best])) best = i;
        probs[best < 0 ? 0 : best] = 1;
        return INFINITY;
    }
    fr_ref_cand *c = malloc(sizeof *c * (size_t)V);
    int n = 0;
    for (int i = 0; i < V; i++)
        if (!isnan(x[i]) && x[i] != -INFINITY)
            c[n++] = (fr_ref_cand){(double)x[i] / (double)p->temperature, i};
    if (n == 0) {
        free(c);
        probs[0] = 1;
        return INFINITY;
    }
    qsort(c, (size_t)n, sizeof *c, fr_ref_cmp_desc);
    const double m = c[0].l;
    double margin = INFINITY;
    if (p->top_k > 0 && p->top_k < n) {
        const double lk = c[p->top_k - 1].l;
        int keep = p->top_k;
        while (keep < n && c[keep].l == lk)
            keep++;
        if (keep < n) margin = fmin(margin, (lk - c[keep].l) / (1 + fabs(lk)));
        for (int i = 0; amb && i < n; i++)
            if (c[i].l != lk && fabs(c[i].l - lk) < tol * (1 + fabs(lk))) amb[c[i].id] = 1;
        n = keep;
    }
    double z = 0;
    for (int i = 0; i < n; i++)
        z += exp(c[i].l - m);
    if (p->top_p < 1.0f) {
        /* groups of equal logits, largest first: kept while the mass strictly above is below
         * top_p (a prefix, since that mass only grows) */
        double above = 0;
        int keep = n;
        for (int i = 0; i < n;) {
            int j = i;
            double g = 0;
            while (j < n && c[j].l == c[i].l)
                g += exp(c[j++].l - m);
            const double dist = fabs(above / z - p->top_p);
            margin = fmin(margin, dist);
            for (int q = i; amb && q < j; q++)
                if (dist < tol) amb[c[q].id] = 1;
            if (!(above / z < p->top_p) && keep == n) keep = i;
            if (keep != n && !amb) break;
            if (above / z > p->top_p + tol) break; /* nothing further can be ambiguous */
            above += g;
            i = j;
        }
        n = keep;
    }
    if (p->min_p > 0) {
        int keep = 0;
        for (int i = 0; i < n; i++) {
            const double rel = c[i].l - m;
            margin = fmin(margin, fabs(rel - log((double)p->min_p)));
            if (amb && fabs(rel - log((double)p->min_p)) < tol) amb[c[i].id] = 1;
            if (rel >= log((double)p->min_p)) c[keep++] = c[i];
        }
        n = keep;
    }
    double zz = 0;
    for (int i = 0; i < n; i++)
        zz += exp(c[i].l - m);
    for (int i = 0; i < n; i++)
        probs[c[i].id] = exp(c[i].l - m) / zz;
    free(c);
    return margin;
}

static inline double fr_ref_sample_probs(const float *x, int V, const fr_sample_params *p,
                                         double *probs) {
    return fr_ref_sample_probs_amb(x, V, p, probs, NULL);
}

/* Pearson's statistic of counts (N draws) against probs; cells expected below 5 are pooled.
 * A count on a zero-probability token makes it +inf. *df gets the degrees of freedom. */
static inline double fr_ref_chi2(const int64_t *counts, const double *probs, int V, int64_t N,
                                 int *df) {
    double stat = 0, pool_e = 0, pool_o = 0;
    int cells = 0;
    *df = 1;
    for (int i = 0; i < V; i++) {
        const double e = probs[i] * (double)N;
        if (probs[i] == 0) {
            if (counts[i]) return INFINITY;
            continue;
        }
        if (e < 5) {
            pool_e += e;
            pool_o += (double)counts[i];
            continue;
        }
        stat += ((double)counts[i] - e) * ((double)counts[i] - e) / e;
        cells++;
    }
    if (pool_e > 0) {
        stat += (pool_o - pool_e) * (pool_o - pool_e) / (pool_e > 1 ? pool_e : 1);
        cells++;
    }
    *df = cells > 1 ? cells - 1 : 1;
    return stat;
}

/* A bound the statistic exceeds with probability far below 1e-6 (normal approximation of
 * chi-square with df degrees of freedom, 6 standard deviations, plus slack for small df). */
static inline double fr_ref_chi2_limit(int df) {
    return df + 6.0 * sqrt(2.0 * df) + 10.0;
}

/* Runs fr_op_sample once on backend b over T rows of V logits with state {seed, counter};
 * ids[T] gets the answer, *counter_after the state's counter afterwards. Returns the status. */
static inline fr_status fr_ref_run_op(fr_backend *b, const float *logits, int T, int V,
                                      const fr_sample_params *p, uint64_t seed, uint64_t counter,
                                      int32_t *ids, uint64_t *counter_after, fr_error *err) {
    fr_buffer lb = {0}, sb = {0}, ob = {0};
    fr_status s = fr_buffer_alloc(b, sizeof(float) * (size_t)T * (size_t)V, &lb, err);
    if (!s) s = fr_buffer_alloc(b, sizeof(fr_sample_state), &sb, err);
    if (!s) s = fr_buffer_alloc(b, sizeof(int32_t) * (size_t)T, &ob, err);
    int32_t words[FR_SAMPLE_STATE_WORDS];
    fr_sample_state_pack(seed, counter, words);
    if (!s) s = fr_buffer_upload(&lb, 0, logits, sizeof(float) * (size_t)T * (size_t)V, err);
    if (!s) s = fr_buffer_upload(&sb, 0, words, sizeof words, err);
    fr_tensor lt = fr_tensor_2d(&lb, 0, FR_DTYPE_F32, T, V);
    fr_tensor st = fr_tensor_1d(&sb, 0, FR_DTYPE_I32, FR_SAMPLE_STATE_WORDS);
    fr_tensor ot = fr_tensor_1d(&ob, 0, FR_DTYPE_I32, T);
    if (!s) s = fr_backend_begin(b, err);
    if (!s) {
        s = fr_op_sample(b, &lt, p, &st, &ot, err);
        if (!s) s = fr_backend_sync(b, err);
        fr_error e2;
        const fr_status e = fr_backend_end(b, s ? &e2 : err);
        if (!s) s = e;
    }
    if (!s) s = fr_buffer_download(&ob, 0, ids, sizeof(int32_t) * (size_t)T, err);
    fr_sample_state after;
    if (!s) s = fr_buffer_download(&sb, 0, &after, sizeof after, err);
    if (!s && counter_after) *counter_after = after.counter;
    fr_buffer_free(&lb);
    fr_buffer_free(&sb);
    fr_buffer_free(&ob);
    return s;
}

#endif
