/* The BPE model on one pre-tokenized piece: initial symbols (bytes in byte mode, characters
 * otherwise, with byte fallback / unk as HF does), then merges by a min-heap ordered by
 * (rank, position) — the order HF's Word::merge_all uses — and a cache of recent pieces. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tok_impl.h"

typedef struct bpe_sym {
    int32_t id;
    int32_t prev, next;
    uint32_t len; /* 0 = merged away */
} bpe_sym;

#define CACHE_MAX_ENTRIES (1u << 16)
#define CACHE_MAX_KEY     256

static bool heap_push(fr_tok_bpe_scratch *sc, size_t *n, uint64_t v) {
    if (*n == sc->cap_heap) {
        size_t ncap = sc->cap_heap ? sc->cap_heap * 2 : 64;
        uint64_t *h = realloc(sc->heap, ncap * sizeof *h);
        if (!h) return false;
        sc->heap = h;
        sc->cap_heap = ncap;
    }
    uint64_t *h = sc->heap;
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
    return true;
}

static uint64_t heap_pop(fr_tok_bpe_scratch *sc, size_t *n) {
    uint64_t *h = sc->heap;
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = v;
    return top;
}

static bool syms_reserve(fr_tok_bpe_scratch *sc, size_t n) {
    if (n <= sc->cap_syms) return true;
    size_t ncap = sc->cap_syms ? sc->cap_syms : 64;
    while (ncap < n)
        ncap *= 2;
    bpe_sym *s = realloc(sc->syms, ncap * sizeof *s);
    if (!s) return false;
    sc->syms = s;
    sc->cap_syms = ncap;
    return true;
}

static bool sym_add(fr_tok_bpe_scratch *sc, size_t *n, int32_t id, uint32_t len) {
    if (!syms_reserve(sc, *n + 1)) return false;
    bpe_sym *s = sc->syms;
    s[*n] = (bpe_sym){id, (int32_t)*n - 1, -1, len};
    if (*n) s[*n - 1].next = (int32_t)*n;
    (*n)++;
    return true;
}

/* Adds one initial unit (a byte in byte mode, a character otherwise) that is not in the
 * vocabulary: byte fallback, then unk (fused or not), else dropped — HF's merge_word. `unit` is
 * the unit's text as HF sees it. */
static bool unit_unknown(const fr_tokenizer *t, fr_tok_bpe_scratch *sc, size_t *n, const char *unit,
                         size_t ulen, uint32_t byte_len, int32_t *unk_len) {
    if (t->byte_fallback) {
        bool all = true;
        for (size_t i = 0; i < ulen; i++)
            if (t->fallback[(uint8_t)unit[i]] < 0) all = false;
        if (all) {
            for (size_t i = 0; i < ulen; i++)
                if (!sym_add(sc, n, t->fallback[(uint8_t)unit[i]], 1)) return false;
            return true;
        }
    }
    if (t->unk_id >= 0) {
        if (*unk_len >= 0 && t->fuse_unk) {
            *unk_len += (int32_t)byte_len;
        } else {
            if (*unk_len >= 0 && !sym_add(sc, n, t->unk_id, (uint32_t)*unk_len)) return false;
            *unk_len = (int32_t)byte_len;
        }
    }
    return true;
}

static bool flush_unk(const fr_tokenizer *t, fr_tok_bpe_scratch *sc, size_t *n, int32_t *unk_len) {
    if (*unk_len < 0) return true;
    bool ok = sym_add(sc, n, t->unk_id, (uint32_t)*unk_len);
    *unk_len = -1;
    return ok;
}

/* The merge of two adjacent symbols: 1 with its rank and result, 0 when they do not merge, -1
 * out of memory. By score (SentencePiece): the joined text must be a mergeable token, and so must
 * both sides (byte fallback and unk symbols never merge). */
static int pair_merge(const fr_tokenizer *t, fr_tok_bpe_scratch *sc, int32_t a, int32_t b,
                      uint32_t *rank, int32_t *merged) {
    if (!t->scores) return fr_tok_pairmap_get(&t->merges, a, b, rank, merged);
    if (!(t->id_flags[a] & FR_TOK_ID_MERGEABLE) || !(t->id_flags[b] & FR_TOK_ID_MERGEABLE))
        return 0;
    fr_tok_buf_clear(&sc->cat);
    if (!fr_tok_buf_append(&sc->cat, t->tok_blob + t->tok_off[a], t->tok_len[a]) ||
        !fr_tok_buf_append(&sc->cat, t->tok_blob + t->tok_off[b], t->tok_len[b]))
        return -1;
    int32_t id = fr_tok_strmap_get(&t->vocab, sc->cat.data, sc->cat.len);
    if (id < 0 || !(t->id_flags[id] & FR_TOK_ID_MERGEABLE)) return 0;
    *rank = fr_tok_spm_rank(t->scores[id]);
    *merged = id;
    return 1;
}

static fr_status bpe_merge(const fr_tokenizer *t, fr_tok_bpe_scratch *sc, const char *s, size_t len,
                           fr_tok_ids *out) {
    size_t n = 0;
    int32_t unk_len = -1;
    if (!syms_reserve(sc, len + 1)) return FR_ERR_NOMEM;
    if (t->byte_mode) {
        for (size_t i = 0; i < len; i++) {
            uint8_t b = (uint8_t)s[i];
            int32_t id = t->byte_sym[b];
            if (id >= 0) {
                if (!flush_unk(t, sc, &n, &unk_len) || !sym_add(sc, &n, id, 1)) return FR_ERR_NOMEM;
            } else {
                char unit[4];
                size_t ul = fr_utf8_encode(fr_bytelevel_char(b), unit);
                if (!unit_unknown(t, sc, &n, unit, ul, 1, &unk_len)) return FR_ERR_NOMEM;
            }
        }
    } else {
        for (size_t i = 0; i < len;) {
            size_t l = fr_utf8_len((uint8_t)s[i]);
            if (l > len - i) l = len - i;
            int32_t id = fr_tok_strmap_get(&t->vocab, s + i, l);
            if (id >= 0) {
                if (!flush_unk(t, sc, &n, &unk_len) || !sym_add(sc, &n, id, (uint32_t)l))
                    return FR_ERR_NOMEM;
            } else if (!unit_unknown(t, sc, &n, s + i, l, (uint32_t)l, &unk_len)) {
                return FR_ERR_NOMEM;
            }
            i += l;
        }
    }
    if (!flush_unk(t, sc, &n, &unk_len)) return FR_ERR_NOMEM;

    bpe_sym *sym = sc->syms;
    size_t nh = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t rank;
        int32_t merged;
        int r = pair_merge(t, sc, sym[i].id, sym[i + 1].id, &rank, &merged);
        if (r < 0 || (r && !heap_push(sc, &nh, ((uint64_t)rank << 32) | i))) return FR_ERR_NOMEM;
    }
    while (nh) {
        uint64_t top = heap_pop(sc, &nh);
        uint32_t rank = (uint32_t)(top >> 32);
        size_t pos = (uint32_t)top;
        bpe_sym *a = &sym[pos];
        if (a->len == 0 || a->next < 0) continue;
        bpe_sym *b = &sym[a->next];
        uint32_t r2;
        int32_t merged;
        /* Stale entry: the pair at `pos` changed since it was queued. (A changed pair of the same
         * rank is due now anyway: its own entry has the same key.) */
        int r = pair_merge(t, sc, a->id, b->id, &r2, &merged);
        if (r < 0) return FR_ERR_NOMEM;
        if (!r || r2 != rank) continue;
        a->id = merged;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (a->next >= 0) sym[a->next].prev = (int32_t)pos;
        if (a->prev >= 0) {
            bpe_sym *p = &sym[a->prev];
            r = pair_merge(t, sc, p->id, a->id, &r2, &merged);
            if (r < 0 || (r && !heap_push(sc, &nh, ((uint64_t)r2 << 32) | (uint32_t)a->prev)))
                return FR_ERR_NOMEM;
        }
        if (a->next >= 0) {
            r = pair_merge(t, sc, a->id, sym[a->next].id, &r2, &merged);
            if (r < 0 || (r && !heap_push(sc, &nh, ((uint64_t)r2 << 32) | pos)))
                return FR_ERR_NOMEM;
        }
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = sym[i].next)
        if (!fr_tok_ids_push(out, sym[i].id)) return FR_ERR_NOMEM;
    return FR_OK;
}

static void cache_reset(fr_tokenizer *t) {
    fr_tok_strmap_clear(&t->cache);
    fr_tok_ids_free(&t->cache_ids);
    t->cache_nspans = 0;
}

static void cache_store(fr_tokenizer *t, const char *s, size_t n, const int32_t *ids, size_t nids) {
    if (t->cache.n >= CACHE_MAX_ENTRIES || t->cache_ids.len > (1u << 22)) cache_reset(t);
    if (t->cache_nspans == t->cache_capspans) {
        size_t ncap = t->cache_capspans ? t->cache_capspans * 2 : 1024;
        uint64_t *p = realloc(t->cache_spans, ncap * sizeof *p);
        if (!p) return;
        t->cache_spans = p;
        t->cache_capspans = ncap;
    }
    size_t off = t->cache_ids.len;
    if (!fr_tok_ids_append(&t->cache_ids, ids, nids)) return;
    int32_t idx = (int32_t)t->cache_nspans;
    if (!fr_tok_strmap_put(&t->cache, s, n, idx, NULL)) {
        t->cache_ids.len = off;
        return;
    }
    t->cache_spans[t->cache_nspans++] = ((uint64_t)off << 32) | nids;
}

fr_status fr_tok_bpe_piece(fr_tokenizer *t, fr_tok_bpe_scratch *sc, const char *s, size_t n,
                           fr_tok_ids *out, fr_error *err) {
    if (n == 0) return FR_OK;
    if (t->ignore_merges) {
        int32_t id = fr_tok_strmap_get(&t->vocab, s, n);
        if (id >= 0) {
            if (!fr_tok_ids_push(out, id)) goto nomem;
            return FR_OK;
        }
    }
    bool cacheable = n <= CACHE_MAX_KEY;
    if (cacheable && !atomic_flag_test_and_set_explicit(&t->cache_busy, memory_order_acquire)) {
        int32_t idx = t->cache.cap ? fr_tok_strmap_get(&t->cache, s, n) : -1;
        if (idx >= 0) {
            uint64_t sp = t->cache_spans[idx];
            const int32_t *cached = t->cache_ids.data + (sp >> 32);
            bool ok = (uint32_t)sp == 1 ? fr_tok_ids_push(out, cached[0])
                                        : fr_tok_ids_append(out, cached, (uint32_t)sp);
            atomic_flag_clear_explicit(&t->cache_busy, memory_order_release);
            if (!ok) goto nomem;
            return FR_OK;
        }
        atomic_flag_clear_explicit(&t->cache_busy, memory_order_release);
    }
    size_t before = out->len;
    if (bpe_merge(t, sc, s, n, out)) goto nomem;
    if (cacheable && !atomic_flag_test_and_set_explicit(&t->cache_busy, memory_order_acquire)) {
        cache_store(t, s, n, out->data + before, out->len - before);
        atomic_flag_clear_explicit(&t->cache_busy, memory_order_release);
    }
    return FR_OK;
nomem:
    return fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory in BPE");
}

void fr_tok_bpe_scratch_free(fr_tok_bpe_scratch *sc) {
    free(sc->syms);
    free(sc->heap);
    fr_tok_ids_free(&sc->word);
    fr_tok_buf_free(&sc->cat);
    memset(sc, 0, sizeof *sc);
}

void fr_tok_cache_free(fr_tokenizer *t) {
    fr_tok_strmap_free(&t->cache);
    fr_tok_ids_free(&t->cache_ids);
    free(t->cache_spans);
    t->cache_spans = NULL;
    t->cache_nspans = t->cache_capspans = 0;
}
