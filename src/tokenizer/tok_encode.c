/* Encoding pipeline, in HF tokenizers' order: added tokens cut from the raw text, the rest
 * normalized, normalized added tokens cut, pre-tokenizer splits, BPE per piece, post-processor. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tok_impl.h"
#include "tokenizer/tok_unicode_compat.h"

typedef struct enc_ctx {
    fr_tokenizer *t;
    fr_tok_bpe_scratch bpe;
    fr_tok_matcher *matchers; /* one per pre-tokenizer step with a regex */
    fr_tok_buf *bufs;         /* per step: prefix-space copies */
    fr_tok_buf *alts;         /* per step: regex subject with U+180E substituted */
    fr_tok_buf norm;
    fr_tok_ids *out;
    fr_error *err;
} enc_ctx;

/* `first`: the piece starts the original text (HF offsets_original().0 == 0), which Metaspace's
 * prepend_scheme "first" asks. */
static fr_status pre_step(enc_ctx *c, size_t k, const char *s, size_t n, bool first);

static fr_status nomem(enc_ctx *c) {
    return fr_error_set(c->err, FR_ERR_NOMEM, "tokenizer: out of memory while encoding");
}

static uint32_t ucompat_standin(uint32_t cp) {
    size_t lo = 0, hi = fr_tok_ucompat_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const fr_tok_ucompat *e = &fr_tok_ucompat_table[mid];
        if (cp < e->lo)
            hi = mid;
        else if (cp > e->hi)
            lo = mid + 1;
        else
            return e->standin;
    }
    return 0;
}

/* PCRE2 and Oniguruma (which HF uses) disagree on the class of some code points: letters of
 * newer Unicode versions, U+180E that old tables call a space. Matching runs on a copy where each
 * such code point is replaced by a same-length stand-in that PCRE2 classes as Oniguruma does, so
 * the pieces (cut from the original at the same offsets) are HF's. */
static const char *regex_subject(enc_ctx *c, size_t k, const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s, *lead = c->t->ucompat_lead;
    fr_tok_buf *b = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!lead[u[i]]) continue;
        uint32_t cp, stand;
        size_t l = fr_utf8_decode(u + i, n - i, &cp);
        if (!l || !(stand = ucompat_standin(cp))) continue;
        if (!b) {
            b = &c->alts[k];
            fr_tok_buf_clear(b);
            if (!fr_tok_buf_append(b, s, n)) return NULL;
        }
        fr_utf8_encode(stand, b->data + i);
        i += l - 1;
    }
    return b ? b->data : s;
}

typedef struct pending {
    size_t a, b;
    bool m, valid;
} pending;

static fr_status split_regex(enc_ctx *c, size_t k, fr_tok_split_behavior beh, bool invert,
                             const char *s, size_t n, bool first) {
    const char *subj = regex_subject(c, k, s, n);
    if (!subj) return nomem(c);
    fr_tok_matcher *m = &c->matchers[k];
    size_t pos = 0, last_end = SIZE_MAX, prev = 0;
    pending pd = {0};
    bool prev_flag = false;
    fr_status st = FR_OK;
    for (bool done = false; !done && !st;) {
        size_t ma = n, mb = n;
        bool found;
        st = fr_tok_matcher_next(m, subj, n, &pos, &last_end, &ma, &mb, &found, c->err);
        if (st) break;
        /* Up to two pieces this round: the gap before the match, then the match. */
        size_t pa[2], pb[2];
        bool pm[2];
        int np = 0;
        if (!found) {
            done = true;
            ma = mb = n;
            if (prev != n) pa[np] = prev, pb[np] = n, pm[np++] = false;
        } else {
            if (prev != ma) pa[np] = prev, pb[np] = ma, pm[np++] = false;
            pa[np] = ma, pb[np] = mb, pm[np++] = true;
            prev = mb;
        }
        for (int i = 0; i < np && !st; i++) {
            bool flag = pm[i] != invert;
            size_t a = pa[i], b = pb[i];
            switch (beh) {
            case FR_TOK_SPLIT_ISOLATED:
                st = pre_step(c, k + 1, s + a, b - a, first && a == 0);
                break;
            case FR_TOK_SPLIT_REMOVED:
                if (!flag) st = pre_step(c, k + 1, s + a, b - a, first && a == 0);
                break;
            case FR_TOK_SPLIT_CONTIGUOUS:
                if (pd.valid && flag == prev_flag) {
                    pd.b = b;
                } else {
                    if (pd.valid)
                        st = pre_step(c, k + 1, s + pd.a, pd.b - pd.a, first && pd.a == 0);
                    pd = (pending){a, b, flag, true};
                }
                break;
            case FR_TOK_SPLIT_MERGED_WITH_PREVIOUS:
                if (pd.valid && flag && !prev_flag) {
                    pd.b = b;
                } else {
                    if (pd.valid)
                        st = pre_step(c, k + 1, s + pd.a, pd.b - pd.a, first && pd.a == 0);
                    pd = (pending){a, b, flag, true};
                }
                break;
            case FR_TOK_SPLIT_MERGED_WITH_NEXT:
                if (pd.valid && pd.m && !flag) {
                    pd = (pending){pd.a, b, false, true};
                } else {
                    if (pd.valid)
                        st = pre_step(c, k + 1, s + pd.a, pd.b - pd.a, first && pd.a == 0);
                    pd = (pending){a, b, flag, true};
                }
                break;
            }
            prev_flag = flag;
        }
    }
    if (!st && pd.valid) st = pre_step(c, k + 1, s + pd.a, pd.b - pd.a, first && pd.a == 0);
    return st;
}

/* HF Metaspace: every ' ' becomes the replacement, which is prepended as the scheme says unless
 * the piece starts with it; with split, pieces start at each replacement (MergedWithNext). */
static fr_status metaspace(enc_ctx *c, size_t k, const fr_tok_pre *p, const char *s, size_t n,
                           bool first) {
    const char *r = p->replacement;
    size_t rl = p->replacement_len;
    fr_tok_buf *b = &c->bufs[k];
    fr_tok_buf_clear(b);
    bool starts = s[0] == ' ' || (n >= rl && !memcmp(s, r, rl));
    bool prepend = p->prepend_scheme == FR_TOK_PREPEND_ALWAYS ||
                   (p->prepend_scheme == FR_TOK_PREPEND_FIRST && first);
    if (prepend && !starts && !fr_tok_buf_append(b, r, rl)) return nomem(c);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j] != ' ')
            j++;
        if (!fr_tok_buf_append(b, s + i, j - i) || (j < n && !fr_tok_buf_append(b, r, rl)))
            return nomem(c);
        i = j < n ? j + 1 : j;
    }
    if (!p->split) return pre_step(c, k + 1, b->data, b->len, first);
    const char *t = b->data;
    size_t m = b->len, start = 0;
    for (size_t i = 1; i + rl <= m; i++) { /* a replacement at 0 starts the first piece */
        if (memcmp(t + i, r, rl)) continue;
        fr_status st = pre_step(c, k + 1, t + start, i - start, first && start == 0);
        if (st) return st;
        start = i;
        i += rl - 1;
    }
    return pre_step(c, k + 1, t + start, m - start, first && start == 0);
}

static fr_status pre_step(enc_ctx *c, size_t k, const char *s, size_t n, bool first) {
    if (n == 0) return FR_OK; /* HF drops empty splits */
    fr_tokenizer *t = c->t;
    if (k == t->n_pre) return fr_tok_bpe_piece(t, &c->bpe, s, n, c->out, c->err);
    const fr_tok_pre *p = &t->pre[k];
    switch (p->kind) {
    case FR_TOK_PRE_BYTE_LEVEL:
        if (p->add_prefix_space && s[0] != ' ') {
            fr_tok_buf *b = &c->bufs[k];
            fr_tok_buf_clear(b);
            if (!fr_tok_buf_append(b, " ", 1) || !fr_tok_buf_append(b, s, n)) return nomem(c);
            s = b->data;
            n = b->len;
        }
        /* The byte-level character mapping itself is implicit: in byte mode BPE works on the
         * raw bytes. */
        if (p->use_regex) return split_regex(c, k, FR_TOK_SPLIT_ISOLATED, false, s, n, first);
        return pre_step(c, k + 1, s, n, first);
    case FR_TOK_PRE_SPLIT:
    case FR_TOK_PRE_DIGITS:
        return split_regex(c, k, p->behavior, p->invert, s, n, first);
    case FR_TOK_PRE_METASPACE:
        return metaspace(c, k, p, s, n, first);
    }
    return FR_OK;
}

/* Leftmost-longest search for an added token in s[from..n); returns false when none. */
static bool find_added(const fr_tok_trie *tr, const char *s, size_t n, size_t from, size_t *start,
                       size_t *len, int32_t *idx) {
    for (size_t i = from; i < n; i++) {
        if (tr->root[(uint8_t)s[i]] < 0) continue;
        size_t l = fr_tok_trie_longest(tr, s + i, n - i, idx);
        if (l) {
            *start = i;
            *len = l;
            return true;
        }
    }
    return false;
}

static fr_status segment_text(enc_ctx *c, const char *s, size_t n, bool normalized, bool first);

/* HF AddedVocabulary::find_matches + split_with_indices over one string. */
static fr_status split_added(enc_ctx *c, const fr_tok_trie *tr, const char *s, size_t n,
                             bool normalized, bool first) {
    const fr_tokenizer *t = c->t;
    size_t start_offset = 0, pos = 0;
    fr_status st = FR_OK;
    size_t mstart, mlen;
    int32_t idx;
    while (!st && pos < n && find_added(tr, s, n, pos, &mstart, &mlen, &idx)) {
        const fr_tok_added *a = &t->added[idx];
        size_t start = mstart, stop = mstart + mlen;
        pos = stop;
        if (a->single_word) {
            bool start_space = start == 0 || !fr_unicode_is_word(fr_utf8_last(s, start, NULL));
            bool stop_space = true;
            if (stop < n) {
                uint32_t cp = 0;
                fr_utf8_decode((const uint8_t *)s + stop, n - stop, &cp);
                stop_space = !fr_unicode_is_word(cp);
            }
            if (!start_space || !stop_space) continue;
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t l;
                uint32_t cp = fr_utf8_last(s, ns, &l);
                if (!fr_unicode_is_space(cp)) break;
                ns -= l;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            while (stop < n) {
                uint32_t cp;
                size_t l = fr_utf8_decode((const uint8_t *)s + stop, n - stop, &cp);
                if (!l || !fr_unicode_is_space(cp)) break;
                stop += l;
            }
        }
        if (start < start_offset) start = start_offset; /* overlap after an rstrip: clamp */
        if (stop <= start) continue;
        if (start_offset < start)
            st = segment_text(c, s + start_offset, start - start_offset, normalized,
                              first && start_offset == 0);
        if (!st && !fr_tok_ids_push(c->out, a->id)) st = nomem(c);
        start_offset = stop;
    }
    if (!st && start_offset < n)
        st = segment_text(c, s + start_offset, n - start_offset, normalized,
                          first && start_offset == 0);
    return st;
}

/* A stretch of text between added tokens. Raw stretches get normalized and searched for the
 * normalized added tokens; normalized stretches go to the pre-tokenizer. */
static fr_status segment_text(enc_ctx *c, const char *s, size_t n, bool normalized, bool first) {
    if (n == 0) return FR_OK;
    if (normalized) return pre_step(c, 0, s, n, first);
    fr_tokenizer *t = c->t;
    if (t->n_norm == 0) {
        if (t->trie_norm.any) return split_added(c, &t->trie_norm, s, n, true, first);
        return pre_step(c, 0, s, n, first);
    }
    fr_status st = fr_tok_normalize(t, s, n, &c->norm, c->err);
    if (st) return st;
    /* The normalized text lives in c->norm until this stretch is done; nothing below
     * normalizes again. */
    if (t->trie_norm.any)
        return split_added(c, &t->trie_norm, c->norm.data, c->norm.len, true, first);
    return pre_step(c, 0, c->norm.data, c->norm.len, first);
}

fr_status fr_tokenizer_encode(const fr_tokenizer *tok, const char *text, size_t len,
                              bool add_special, int32_t **ids, size_t *n_ids, fr_error *err) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!tok || !ids || !n_ids || (!text && len))
        return fr_error_set(err, FR_ERR_INVALID, "fr_tokenizer_encode: NULL argument");
    size_t bad;
    if (!fr_utf8_validate(text, len, &bad))
        return fr_error_set(err, FR_ERR_INVALID,
                            "fr_tokenizer_encode: text is not valid UTF-8 (byte offset %zu)", bad);
    fr_tokenizer *t = (fr_tokenizer *)tok; /* only the internally locked cache is written */
    fr_tok_ids out = {0};
    enc_ctx c = {.t = t, .out = &out, .err = err};
    fr_status st = FR_OK;
    size_t np = t->n_pre ? t->n_pre : 1;
    c.matchers = calloc(np, sizeof *c.matchers);
    c.bufs = calloc(np, sizeof *c.bufs);
    c.alts = calloc(np, sizeof *c.alts);
    if (!c.matchers || !c.bufs || !c.alts) st = nomem(&c);
    for (size_t k = 0; k < t->n_pre && !st; k++)
        if (t->pre[k].re.code) st = fr_tok_matcher_init(&c.matchers[k], &t->pre[k].re, err);
    /* Room for a typical 3-4 bytes per token up front, and never a NULL result. */
    if (!st && !fr_tok_ids_grow(&out, len / 3 + t->n_prefix + t->n_suffix + 16)) st = nomem(&c);
    if (!st && add_special && t->n_prefix && !fr_tok_ids_append(&out, t->prefix, t->n_prefix))
        st = nomem(&c);
    if (!st) {
        if (t->trie_raw.any)
            st = split_added(&c, &t->trie_raw, text, len, false, true);
        else
            st = segment_text(&c, text, len, false, true);
    }
    if (!st && add_special && t->n_suffix && !fr_tok_ids_append(&out, t->suffix, t->n_suffix))
        st = nomem(&c);
    for (size_t k = 0; k < t->n_pre; k++) {
        if (c.matchers) fr_tok_matcher_free(&c.matchers[k]);
        if (c.bufs) fr_tok_buf_free(&c.bufs[k]);
        if (c.alts) fr_tok_buf_free(&c.alts[k]);
    }
    free(c.matchers);
    free(c.bufs);
    free(c.alts);
    fr_tok_buf_free(&c.norm);
    fr_tok_bpe_scratch_free(&c.bpe);
    if (st) {
        fr_tok_ids_free(&out);
        return st;
    }
    *ids = out.data;
    *n_ids = out.len;
    return FR_OK;
}
