/* Buffers, UTF-8 and the Unicode predicates used by the tokenizer. */
#include "tokenizer/tok_util.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

bool fr_tok_buf_reserve(fr_tok_buf *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->len) return false;
    size_t need = b->len + extra;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return false;
    b->data = p;
    b->cap = cap;
    return true;
}

bool fr_tok_buf_append(fr_tok_buf *b, const void *p, size_t n) {
    if (!fr_tok_buf_reserve(b, n)) return false;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

void fr_tok_buf_free(fr_tok_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static bool ids_reserve(fr_tok_ids *v, size_t extra) {
    if (extra > (SIZE_MAX / sizeof(int32_t)) / 2 - v->len) return false;
    size_t need = v->len + extra;
    if (need <= v->cap) return true;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < need)
        cap *= 2;
    int32_t *p = realloc(v->data, cap * sizeof(int32_t));
    if (!p) return false;
    v->data = p;
    v->cap = cap;
    return true;
}

bool fr_tok_ids_grow(fr_tok_ids *v, size_t extra) {
    return ids_reserve(v, extra);
}

bool fr_tok_ids_append(fr_tok_ids *v, const int32_t *ids, size_t n) {
    if (!ids_reserve(v, n)) return false;
    if (n) memcpy(v->data + v->len, ids, n * sizeof(int32_t));
    v->len += n;
    return true;
}

void fr_tok_ids_free(fr_tok_ids *v) {
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

size_t fr_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2 || c > 0xF4) return 0;
    if (c < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && s[1] > 0x9F) return 0; /* surrogate */
        *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
    if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && s[1] > 0x8F) return 0; /* > U+10FFFF */
    *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
          ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}

size_t fr_utf8_encode(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

bool fr_utf8_validate(const char *s, size_t n, size_t *bad_off) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII runs dominate real text: skip them 8 bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = fr_utf8_decode(u + i, n - i, &cp);
        if (!l) {
            if (bad_off) *bad_off = i;
            return false;
        }
        i += l;
    }
    return true;
}

/* Length of the longest prefix of s[0..n) that could still start a well-formed sequence
 * (the "maximal subpart" when it is incomplete), and whether it is complete. */
static size_t lossy_prefix(const uint8_t *s, size_t n, bool *complete) {
    uint8_t c = s[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    *complete = false;
    if (c < 0x80) {
        *complete = true;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 1; /* invalid lead: a subpart of length 1 */
    size_t k = 1;
    while (k < need && k < n) {
        uint8_t b = s[k];
        if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) break;
        k++;
    }
    if (k == need) *complete = true;
    return k;
}

bool fr_utf8_lossy_feed(fr_utf8_lossy *st, const uint8_t *s, size_t n, fr_tok_buf *out) {
    static const char repl[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    /* Finish a held-back sequence first, one byte at a time (at most 3 of them). */
    while (st->npend && n) {
        st->pend[st->npend++] = *s++;
        n--;
        bool complete;
        size_t k = lossy_prefix(st->pend, st->npend, &complete);
        if (complete) {
            if (!fr_tok_buf_append(out, st->pend, k)) return false;
            st->npend = 0;
        } else if (k < st->npend) {
            /* The held bytes were a maximal invalid subpart: replace them, then re-feed what
             * follows (it may start a new sequence). */
            uint8_t rest[4];
            size_t nrest = st->npend - k;
            memcpy(rest, st->pend + k, nrest);
            st->npend = 0;
            if (!fr_tok_buf_append(out, repl, 3)) return false;
            if (!fr_utf8_lossy_feed(st, rest, nrest, out)) return false;
        }
    }
    if (!fr_tok_buf_reserve(out, n + n / 2 + 8)) return false;
    size_t i = 0, run = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        bool complete;
        size_t k = lossy_prefix(s + i, n - i, &complete);
        if (complete) {
            i += k;
            continue;
        }
        if (!fr_tok_buf_append(out, s + run, i - run)) return false;
        bool valid_lead = s[i] >= 0xC2 && s[i] <= 0xF4;
        if (valid_lead && i + k == n) {
            /* Incomplete at the end of the input: hold it, more may come. */
            memcpy(st->pend, s + i, k);
            st->npend = k;
            return true;
        }
        if (!fr_tok_buf_append(out, repl, 3)) return false;
        i += k;
        run = i;
    }
    return fr_tok_buf_append(out, s + run, n - run);
}

bool fr_utf8_lossy_finish(fr_utf8_lossy *st, fr_tok_buf *out) {
    static const char repl[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    if (!st->npend) return true;
    st->npend = 0;
    return fr_tok_buf_append(out, repl, 3);
}

/* GPT-2's table: printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in
 * byte order. */
static bool bytelevel_is_direct(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The 68 bytes outside bytelevel_is_direct, in order, map to U+0100..U+0143. */
static const uint8_t indirect_bytes[68] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D,
    0x0E, 0x0F, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B,
    0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xAD};

uint32_t fr_bytelevel_char(uint8_t b) {
    if (bytelevel_is_direct(b)) return b;
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x100 + 33 + (b - 0x7F);
    return 0x143; /* 0xAD */
}

int fr_bytelevel_byte(uint32_t cp) {
    if (cp < 0x100) return bytelevel_is_direct(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    return indirect_bytes[cp - 0x100];
}

bool fr_unicode_is_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    switch (cp) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

bool fr_unicode_is_word(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
               cp == '_';
    if (cp == 0x200C || cp == 0x200D) return true; /* Join_Control */
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
        return true;
    default:
        /* Other_Alphabetic symbols: circled and squared Latin letters. */
        return (cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) ||
               (cp >= 0x1F150 && cp <= 0x1F169) || (cp >= 0x1F170 && cp <= 0x1F189);
    }
}

uint32_t fr_utf8_last(const char *s, size_t n, size_t *len) {
    size_t i = n - 1;
    while (i > 0 && n - i < 4 && ((uint8_t)s[i] & 0xC0) == 0x80)
        i--;
    uint32_t cp = 0xFFFD;
    size_t l = fr_utf8_decode((const uint8_t *)s + i, n - i, &cp);
    if (!l) {
        l = 1;
        cp = 0xFFFD;
    }
    if (len) *len = n - i;
    return cp;
}
