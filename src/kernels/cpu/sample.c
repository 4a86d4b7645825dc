/* The `sample` op on the CPU: the semantics of fr_op_sample (backend.h) computed with the shared
 * arithmetic of kernels/sample_common.h, so it returns the same ids as the CUDA kernel. The
 * thresholds (top-k's k-th largest logit, top-p's cut) are found the way the GPU finds them, by a
 * three-level radix select over the order-preserving keys of the scaled logits (11, 11 and 10
 * bits), with a 2048-bin histogram and no sort or allocation. One task per row. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/sample_common.h"

#define SMP_BINS 2048

static const int smp_shift[3] = {21, 10, 0};
static const uint32_t smp_mask[3] = {2047u, 2047u, 1023u};

/* True when key k has the digits already fixed in `prefix` (levels before `level`). */
static inline int smp_match(uint32_t k, uint32_t prefix, int level) {
    if (level == 0) return 1;
    const int s = smp_shift[level - 1];
    return (k >> s) == (prefix >> s);
}

static inline uint32_t smp_digit(uint32_t k, int level) {
    return (k >> smp_shift[level]) & smp_mask[level];
}

/* The top_k-th largest key among the valid logits (counted with multiplicity). */
static uint32_t select_top_k(const float *x, int64_t V, float inv_t, int top_k) {
    uint64_t hist[SMP_BINS];
    uint64_t need = (uint64_t)top_k;
    uint32_t prefix = 0;
    for (int level = 0; level < 3; level++) {
        memset(hist, 0, sizeof hist);
        for (int64_t i = 0; i < V; i++) {
            if (!fr_smp_valid(x[i])) continue;
            const uint32_t k = fr_smp_key(fr_smp_scale(x[i], inv_t));
            if (smp_match(k, prefix, level)) hist[smp_digit(k, level)]++;
        }
        int b = (int)smp_mask[level];
        for (; b > 0 && need > hist[b]; b--)
            need -= hist[b];
        prefix |= (uint32_t)b << smp_shift[level];
    }
    return prefix;
}

/* The smallest key v with sum{w_j : key_j > v, key_j >= tau} < P (top-p's cut; see
 * fr_op_sample): the survivors of top-p are exactly the keys >= v. */
static uint32_t select_top_p(const float *x, int64_t V, float inv_t, float m, uint32_t tau,
                             float top_p) {
    uint64_t hist[SMP_BINS];
    uint64_t above = 0, P = 1;
    uint32_t prefix = 0;
    for (int level = 0; level < 3; level++) {
        memset(hist, 0, sizeof hist);
        for (int64_t i = 0; i < V; i++) {
            if (!fr_smp_valid(x[i])) continue;
            const float l = fr_smp_scale(x[i], inv_t);
            const uint32_t k = fr_smp_key(l);
            if (k >= tau && smp_match(k, prefix, level))
                hist[smp_digit(k, level)] += fr_smp_weight(l, m);
        }
        if (level == 0) {
            uint64_t z = 0;
            for (int b = 0; b < SMP_BINS; b++)
                z += hist[b];
            P = fr_smp_top_p_limit(top_p, z);
        }
        /* `above` is the weight of keys above every key of bin b; the cut lies in the lowest
         * bin whose own `above` is still below P */
        int b = (int)smp_mask[level];
        for (; b > 0 && above + hist[b] < P; b--)
            above += hist[b];
        prefix |= (uint32_t)b << smp_shift[level];
    }
    return prefix;
}

static int32_t sample_row(const float *x, int64_t V, const fr_sample_params *p, float inv_t,
                          uint64_t wmin, uint64_t rnd) {
    if (!(p->temperature > 0)) { /* greedy: fr_op_argmax's rule */
        int64_t best = -1;
        uint32_t bk = 0;
        for (int64_t i = 0; i < V; i++) {
            if (isnan(x[i])) continue;
            const uint32_t k = fr_smp_argmax_key(x[i]);
            if (best < 0 || k > bk) best = i, bk = k;
        }
        return best < 0 ? 0 : (int32_t)best;
    }
    int64_t n_valid = 0;
    uint32_t kmax = 0;
    for (int64_t i = 0; i < V; i++) {
        if (!fr_smp_valid(x[i])) continue;
        const uint32_t k = fr_smp_key(fr_smp_scale(x[i], inv_t));
        kmax = k > kmax ? k : kmax;
        n_valid++;
    }
    if (n_valid == 0) return 0;
    const float m = fr_smp_unkey(kmax);
    uint32_t thr = 0; /* every key is >= 0 */
    if (p->top_k > 0 && p->top_k < n_valid) thr = select_top_k(x, V, inv_t, p->top_k);
    if (p->top_p < 1.0f) {
        const uint32_t cut = select_top_p(x, V, inv_t, m, thr, p->top_p);
        thr = cut > thr ? cut : thr;
    }
    uint64_t z = 0;
    for (int64_t i = 0; i < V; i++) {
        if (!fr_smp_valid(x[i])) continue;
        const float l = fr_smp_scale(x[i], inv_t);
        if (fr_smp_key(l) < thr) continue;
        const uint64_t w = fr_smp_weight(l, m);
        if (w >= wmin) z += w;
    }
    const uint64_t r = fr_smp_mulhi(rnd, z); /* z >= 2^40: the top token is always kept */
    uint64_t cum = 0;
    for (int64_t i = 0; i < V; i++) {
        if (!fr_smp_valid(x[i])) continue;
        const float l = fr_smp_scale(x[i], inv_t);
        if (fr_smp_key(l) < thr) continue;
        const uint64_t w = fr_smp_weight(l, m);
        if (w < wmin) continue;
        cum += w;
        if (cum > r) return (int32_t)i;
    }
    return 0; /* unreachable: cum ends at z > r */
}

typedef struct {
    const fr_tensor *logits;
    fr_tensor *out;
    const fr_sample_params *p;
    float inv_t;
    uint64_t wmin, seed, counter;
} sample_args;

static void sample_task(void *varg, int64_t row, int thread) {
    const sample_args *g = varg;
    const float *x = (const float *)fr_cpu_at2(g->logits, row);
    const uint64_t rnd = fr_smp_random(g->seed, g->counter, row);
    const int32_t id = sample_row(x, g->logits->shape[1], g->p, g->inv_t, g->wmin, rnd);
    *(int32_t *)fr_cpu_at2(g->out, row) = id;
}

fr_status fr_cpu_sample(void *vctx, const fr_tensor *logits, const fr_sample_params *p,
                        fr_tensor *state, fr_tensor *out, fr_error *err) {
    fr_cpu_ctx *ctx = vctx;
    fr_sample_state *st = (fr_sample_state *)fr_tensor_host(state);
    sample_args g = {logits,
                     out,
                     p,
                     p->temperature > 0 ? fr_smp_inv_temperature(p->temperature) : 0.0f,
                     fr_smp_min_p_limit(p->min_p),
                     st->seed,
                     st->counter};
    const int64_t T = logits->shape[0];
    /* several passes over each row: worth the pool from a few rows of a large vocabulary on */
    fr_cpu_run(ctx, T, 24.0 * (double)T * (double)logits->shape[1], sample_task, &g);
    st->counter++;
    return FR_OK;
}
