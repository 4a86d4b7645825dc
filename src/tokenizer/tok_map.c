/* Hash map storage; lookups are inline in tok_map.h. */
#include "tokenizer/tok_map.h"

#include <stdlib.h>

static size_t pow2_for(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 2)
        cap *= 2;
    return cap;
}

bool fr_tok_strmap_init(fr_tok_strmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    m->cap = pow2_for(expected);
    m->slots = malloc(m->cap * sizeof *m->slots);
    if (!m->slots) {
        m->cap = 0;
        return false;
    }
    for (size_t i = 0; i < m->cap; i++)
        m->slots[i].off = UINT32_MAX;
    return true;
}

void fr_tok_strmap_free(fr_tok_strmap *m) {
    free(m->slots);
    fr_tok_buf_free(&m->keys);
    memset(m, 0, sizeof *m);
}

void fr_tok_strmap_clear(fr_tok_strmap *m) {
    for (size_t i = 0; i < m->cap; i++)
        m->slots[i].off = UINT32_MAX;
    m->n = 0;
    fr_tok_buf_clear(&m->keys);
}

static bool strmap_grow(fr_tok_strmap *m) {
    size_t ncap = m->cap * 2;
    fr_tok_strmap_slot *ns = malloc(ncap * sizeof *ns);
    if (!ns) return false;
    for (size_t i = 0; i < ncap; i++)
        ns[i].off = UINT32_MAX;
    for (size_t i = 0; i < m->cap; i++) {
        fr_tok_strmap_slot s = m->slots[i];
        if (s.off == UINT32_MAX) continue;
        uint64_t h64 = fr_tok_hash(m->keys.data + s.off, s.len);
        size_t j = (size_t)(h64 >> 7) & (ncap - 1);
        while (ns[j].off != UINT32_MAX)
            j = (j + 1) & (ncap - 1);
        ns[j] = s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return true;
}

bool fr_tok_strmap_put(fr_tok_strmap *m, const void *key, size_t len, int32_t val, int32_t *prev) {
    if (prev) *prev = -1;
    if (!m->cap && !fr_tok_strmap_init(m, 8)) return false;
    if ((m->n + 1) * 2 > m->cap && !strmap_grow(m)) return false;
    uint64_t h64 = fr_tok_hash(key, len);
    uint32_t h = (uint32_t)h64;
    size_t mask = m->cap - 1, i = (size_t)(h64 >> 7) & mask;
    for (;;) {
        fr_tok_strmap_slot *s = &m->slots[i];
        if (s->off == UINT32_MAX) break;
        if (s->hash == h && s->len == len && (!len || !memcmp(m->keys.data + s->off, key, len))) {
            if (prev) *prev = s->val;
            s->val = val;
            return true;
        }
        i = (i + 1) & mask;
    }
    if (m->keys.len + len >= UINT32_MAX) return false;
    uint32_t off = (uint32_t)m->keys.len;
    if (!fr_tok_buf_append(&m->keys, key, len)) return false;
    m->slots[i] = (fr_tok_strmap_slot){off, (uint32_t)len, h, val};
    m->n++;
    return true;
}

bool fr_tok_pairmap_init(fr_tok_pairmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    m->cap = pow2_for(expected);
    m->slots = malloc(m->cap * sizeof *m->slots);
    m->small = malloc(256 * 256 * sizeof *m->small);
    if (!m->slots || !m->small) {
        fr_tok_pairmap_free(m);
        return false;
    }
    memset(m->slots, 0xFF, m->cap * sizeof *m->slots);
    memset(m->small, 0xFF, 256 * 256 * sizeof *m->small);
    return true;
}

void fr_tok_pairmap_free(fr_tok_pairmap *m) {
    free(m->slots);
    free(m->small);
    memset(m, 0, sizeof *m);
}

static bool pairmap_insert(fr_tok_pair_slot *slots, size_t cap, uint64_t k, uint64_t v) {
    uint64_t h = k * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 32) & (cap - 1);
    while (slots[i].key != UINT64_MAX && slots[i].key != k)
        i = (i + 1) & (cap - 1);
    bool added = slots[i].key == UINT64_MAX;
    slots[i].key = k;
    slots[i].val = v;
    return added;
}

bool fr_tok_pairmap_put(fr_tok_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t merged) {
    if (!m->cap && !fr_tok_pairmap_init(m, 8)) return false;
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap * 2;
        fr_tok_pair_slot *ns = malloc(ncap * sizeof *ns);
        if (!ns) return false;
        memset(ns, 0xFF, ncap * sizeof *ns);
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key != UINT64_MAX)
                pairmap_insert(ns, ncap, m->slots[i].key, m->slots[i].val);
        free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    uint64_t v = ((uint64_t)rank << 32) | (uint32_t)merged;
    if (pairmap_insert(m->slots, m->cap, fr_tok_pair_key(a, b), v)) m->n++;
    if (((uint32_t)a | (uint32_t)b) < 256) m->small[((uint32_t)a << 8) | (uint32_t)b] = v;
    return true;
}
