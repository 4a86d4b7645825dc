/* Token sampling on the host: penalties, temperature, top-k, top-p, min-p, seeded draw.
 * Work is proportional to the vocabulary only for the penalties and the softmax; sorting is
 * limited to the candidates that can survive the filters. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ferrum.h"

typedef struct {
    float logit;
    int32_t id;
} candidate;

struct fr_sampler {
    fr_sampler_params p;
    int vocab;
    uint64_t rng[4];   /* xoshiro256** state */
    int32_t *history;  /* ring of the last `cap` accepted tokens */
    int64_t n_history; /* total accepted */
    int cap;
    int32_t *counts; /* per-token occurrences in the window; all zero between draws */
    float *work;     /* logits after penalties */
    float *probs;    /* probabilities of the surviving candidates */
    candidate *cand;
};

fr_sampler_params fr_sampler_default_params(void) {
    return (fr_sampler_params){.temperature = 0.8f,
                               .top_k = 40,
                               .top_p = 0.95f,
                               .min_p = 0.05f,
                               .repeat_penalty = 1.0f,
                               .presence_penalty = 0.0f,
                               .frequency_penalty = 0.0f,
                               .penalty_last_n = 64,
                               .seed = 0x5eed};
}

/* ------------------------------------------------------------------ generator */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static void rng_seed(uint64_t s[4], uint64_t seed) {
    for (int i = 0; i < 4; i++) { /* splitmix64 expands the seed */
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        s[i] = z ^ (z >> 31);
    }
}

static double rng_uniform(uint64_t s[4]) { return (double)(rng_next(s) >> 11) * 0x1p-53; }

/* ------------------------------------------------------------------ lifetime */

fr_status fr_sampler_create(const fr_sampler_params *params, int vocab_size, fr_sampler **out,
                            fr_error *err) {
    if (vocab_size <= 0) return fr_error_set(err, FR_ERR_INVALID, "sampler: vocab size %d", vocab_size);
    fr_sampler_params p = params ? *params : fr_sampler_default_params();
    if (!(p.top_p > 0) || p.min_p > 1 || !(p.repeat_penalty > 0) || isnan(p.temperature))
        return fr_error_set(err, FR_ERR_INVALID,
                            "sampler: invalid parameters (top_p %g, min_p %g, repeat_penalty %g)",
                            p.top_p, p.min_p, p.repeat_penalty);
    fr_sampler *s = calloc(1, sizeof *s);
    if (!s) return fr_error_set(err, FR_ERR_NOMEM, "sampler: out of memory");
    s->p = p;
    s->vocab = vocab_size;
    s->cap = p.penalty_last_n < 0 ? 1 << 20 : (p.penalty_last_n > 0 ? p.penalty_last_n : 1);
    s->history = malloc(sizeof(int32_t) * (size_t)s->cap);
    s->counts = calloc((size_t)vocab_size, sizeof(int32_t));
    s->work = malloc(sizeof(float) * (size_t)vocab_size);
    s->cand = malloc(sizeof(candidate) * (size_t)vocab_size);
    s->probs = malloc(sizeof(float) * (size_t)vocab_size);
    if (!s->history || !s->counts || !s->work || !s->cand || !s->probs) {
        fr_sampler_free(s);
        return fr_error_set(err, FR_ERR_NOMEM, "sampler: out of memory");
    }
    fr_sampler_reset(s);
    *out = s;
    return FR_OK;
}

void fr_sampler_free(fr_sampler *s) {
    if (!s) return;
    free(s->history);
    free(s->counts);
    free(s->work);
    free(s->cand);
    free(s->probs);
    free(s);
}

void fr_sampler_reset(fr_sampler *s) {
    s->n_history = 0;
    rng_seed(s->rng, s->p.seed);
}

void fr_sampler_accept(fr_sampler *s, int32_t token) {
    s->history[s->n_history % s->cap] = token;
    s->n_history++;
}

/* ------------------------------------------------------------------ filters */

static bool penalties_active(const fr_sampler_params *p) {
    return p->penalty_last_n != 0 &&
           (p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f);
}

static void apply_penalties(fr_sampler *s) {
    if (!penalties_active(&s->p)) return;
    const int64_t n = s->n_history < s->cap ? s->n_history : s->cap;
    for (int64_t i = 0; i < n; i++) {
        int32_t t = s->history[i];
        if (t >= 0 && t < s->vocab) s->counts[t]++;
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t t = s->history[i];
        if (t < 0 || t >= s->vocab || s->counts[t] == 0) continue;
        float l = s->work[t];
        l = l > 0 ? l / s->p.repeat_penalty : l * s->p.repeat_penalty;
        l -= s->p.presence_penalty + s->p.frequency_penalty * (float)s->counts[t];
        s->work[t] = l;
        s->counts[t] = 0; /* each distinct token once; also leaves counts zeroed for next time */
    }
}

static int cmp_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id - y->id;
}

/* Moves the k largest candidates to the front (unordered), Hoare-style quickselect. */
static void select_top(candidate *c, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = c[lo + (hi - lo) / 2].logit;
        int i = lo, j = hi;
        while (i <= j) {
            while (c[i].logit > pivot) i++;
            while (c[j].logit < pivot) j--;
            if (i <= j) {
                candidate t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

static int argmax_row(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best] || (isnan(x[best]) && !isnan(x[i]))) best = i;
    return best;
}

static double mass_of(const candidate *c, int n, float maxl) {
    double m = 0;
    for (int i = 0; i < n; i++) m += exp((double)c[i].logit - maxl);
    return m;
}

/* Leaves the surviving candidates in s->cand[0..n) (sorted by logit when top-p ran) and their probabilities
 * (normalised over the survivors) in s->probs[0..n); returns n. Greedy leaves one candidate. */
static int filter(fr_sampler *s, const float *logits) {
    const fr_sampler_params *p = &s->p;
    memcpy(s->work, logits, sizeof(float) * (size_t)s->vocab);
    apply_penalties(s);
    candidate *c = s->cand;
    if (!(p->temperature > 0)) {
        int best = argmax_row(s->work, s->vocab);
        c[0] = (candidate){s->work[best], best};
        s->probs[0] = 1.0f;
        return 1;
    }
    int n = 0;
    const float inv_t = 1.0f / p->temperature;
    float maxl = -FLT_MAX;
    for (int i = 0; i < s->vocab; i++) {
        if (isnan(s->work[i]) || s->work[i] == -INFINITY) continue;
        c[n] = (candidate){s->work[i] * inv_t, i};
        maxl = c[n].logit > maxl ? c[n].logit : maxl;
        n++;
    }
    if (n == 0) { /* every logit masked: token 0, deterministically */
        c[0] = (candidate){0, 0};
        s->probs[0] = 1;
        return 1;
    }
    /* top-k: the k largest (unordered); the distribution is renormalised over them (HF masks the
     * rest to -inf before top-p sees it). */
    if (p->top_k > 0 && p->top_k < n) {
        select_top(c, n, p->top_k);
        n = p->top_k;
    }
    /* top-p: sort only a prefix large enough to hold top_p of the mass, growing it if needed. */
    const double total = mass_of(c, n, maxl);
    int sorted = n;
    if (p->top_p < 1.0f && n > 256) {
        for (sorted = 256;; sorted = sorted * 4 < n ? sorted * 4 : n) {
            select_top(c, n, sorted);
            if (sorted == n || mass_of(c, sorted, maxl) / total >= p->top_p) break;
        }
    }
    if (p->top_p < 1.0f) { /* smallest prefix whose mass reaches top_p (at least one token) */
        qsort(c, (size_t)sorted, sizeof *c, cmp_desc);
        n = sorted;
        double cum = 0;
        for (int i = 0; i < n; i++) {
            cum += exp((double)c[i].logit - maxl) / total;
            if (cum >= p->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0) { /* drop tokens below min_p times the top probability (order kept) */
        const double floor_rel = log((double)p->min_p);
        int keep = 0;
        for (int i = 0; i < n; i++)
            if ((double)c[i].logit - maxl >= floor_rel) c[keep++] = c[i];
        n = keep;
    }
    const double z = mass_of(c, n, maxl);
    for (int i = 0; i < n; i++) s->probs[i] = (float)(exp((double)c[i].logit - maxl) / z);
    return n;
}

int32_t fr_sampler_sample(fr_sampler *s, const float *logits) {
    const int n = filter(s, logits);
    if (n == 1) return s->cand[0].id;
    double u = rng_uniform(s->rng), cum = 0;
    for (int i = 0; i < n; i++) {
        cum += s->probs[i];
        if (u < cum) return s->cand[i].id;
    }
    return s->cand[n - 1].id; /* u beyond the rounded total */
}

fr_status fr_sampler_probs(fr_sampler *s, const float *logits, float *probs, fr_error *err) {
    if (!s || !logits || !probs)
        return fr_error_set(err, FR_ERR_INVALID, "sampler_probs: NULL argument");
    const int n = filter(s, logits);
    memset(probs, 0, sizeof(float) * (size_t)s->vocab);
    for (int i = 0; i < n; i++) probs[s->cand[i].id] = s->probs[i];
    return FR_OK;
}

fr_sampler_params fr_sampler_params_of(const fr_sampler *s) {
    return s->p;
}
