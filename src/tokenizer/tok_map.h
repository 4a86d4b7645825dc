/* Open-addressing hash maps for the tokenizer: byte string -> int32 (vocabulary, added tokens,
 * word cache) and id pair -> merge (rank, new id). */
#ifndef FR_TOKENIZER_TOK_MAP_H
#define FR_TOKENIZER_TOK_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tokenizer/tok_util.h"

static inline uint64_t fr_tok_hash(const void *p, size_t n) {
    const uint8_t *s = (const uint8_t *)p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n) memcpy(&w, s, n); /* an empty key may come with a NULL pointer */
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

typedef struct fr_tok_strmap_slot {
    uint32_t off; /* into keys; UINT32_MAX = empty */
    uint32_t len;
    uint32_t hash;
    int32_t val;
} fr_tok_strmap_slot;

typedef struct fr_tok_strmap {
    fr_tok_strmap_slot *slots;
    size_t cap; /* power of two */
    size_t n;
    fr_tok_buf keys;
} fr_tok_strmap;

bool fr_tok_strmap_init(fr_tok_strmap *m, size_t expected);
void fr_tok_strmap_free(fr_tok_strmap *m);
void fr_tok_strmap_clear(fr_tok_strmap *m);
/* Inserts or overwrites. *prev (optional) gets the old value or -1. False on allocation failure
 * or when a key exceeds 4 GiB of total key bytes. */
bool fr_tok_strmap_put(fr_tok_strmap *m, const void *key, size_t len, int32_t val, int32_t *prev);

static inline int32_t fr_tok_strmap_get_h(const fr_tok_strmap *m, const void *key, size_t len,
                                          uint64_t h64) {
    uint32_t h = (uint32_t)h64;
    size_t mask = m->cap - 1, i = (size_t)(h64 >> 7) & mask;
    for (;;) {
        const fr_tok_strmap_slot *s = &m->slots[i];
        if (s->off == UINT32_MAX) return -1;
        if (s->hash == h && s->len == len && (!len || !memcmp(m->keys.data + s->off, key, len)))
            return s->val;
        i = (i + 1) & mask;
    }
}

static inline int32_t fr_tok_strmap_get(const fr_tok_strmap *m, const void *key, size_t len) {
    if (!m->cap) return -1;
    return fr_tok_strmap_get_h(m, key, len, fr_tok_hash(key, len));
}

/* (left id, right id) -> (rank, merged id). Key and value share a slot: one cache miss per
 * lookup in the multi-megabyte merge table. Pairs of ids below 256 (the byte tokens of GPT-2
 * style vocabularies) also sit in a direct table. */
typedef struct fr_tok_pair_slot {
    uint64_t key; /* UINT64_MAX = empty */
    uint64_t val; /* rank << 32 | merged id */
} fr_tok_pair_slot;

typedef struct fr_tok_pairmap {
    fr_tok_pair_slot *slots;
    size_t cap, n;
    uint64_t *small; /* 256 x 256, UINT64_MAX = no merge */
} fr_tok_pairmap;

bool fr_tok_pairmap_init(fr_tok_pairmap *m, size_t expected);
void fr_tok_pairmap_free(fr_tok_pairmap *m);
bool fr_tok_pairmap_put(fr_tok_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t merged);

static inline uint64_t fr_tok_pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

/* True when found; *rank and *merged receive the merge. */
static inline bool fr_tok_pairmap_get(const fr_tok_pairmap *m, int32_t a, int32_t b, uint32_t *rank,
                                      int32_t *merged) {
    uint64_t v;
    if (((uint32_t)a | (uint32_t)b) < 256 && m->small) {
        v = m->small[((uint32_t)a << 8) | (uint32_t)b];
        if (v == UINT64_MAX) return false;
    } else {
        if (!m->cap) return false;
        uint64_t k = fr_tok_pair_key(a, b);
        uint64_t h = k * 0x9E3779B97F4A7C15ull;
        size_t mask = m->cap - 1, i = (size_t)(h >> 32) & mask;
        for (;;) {
            const fr_tok_pair_slot *s = &m->slots[i];
            if (s->key == k) {
                v = s->val;
                break;
            }
            if (s->key == UINT64_MAX) return false;
            i = (i + 1) & mask;
        }
    }
    *rank = (uint32_t)(v >> 32);
    *merged = (int32_t)(uint32_t)v;
    return true;
}

#endif
