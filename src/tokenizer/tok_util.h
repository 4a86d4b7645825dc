/* Small helpers shared by the tokenizer files: growable buffers, UTF-8, byte-level mapping,
 * the Unicode predicates that HF's tokenizers rely on. */
#ifndef FR_TOKENIZER_TOK_UTIL_H
#define FR_TOKENIZER_TOK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fr_tok_buf {
    char *data;
    size_t len, cap;
} fr_tok_buf;

/* Return false on allocation failure (the buffer is left as it was). */
bool fr_tok_buf_reserve(fr_tok_buf *b, size_t extra);
bool fr_tok_buf_append(fr_tok_buf *b, const void *p, size_t n);
static inline void fr_tok_buf_clear(fr_tok_buf *b) {
    b->len = 0;
}
void fr_tok_buf_free(fr_tok_buf *b);

typedef struct fr_tok_ids {
    int32_t *data;
    size_t len, cap;
} fr_tok_ids;

bool fr_tok_ids_grow(fr_tok_ids *v, size_t extra);
static inline bool fr_tok_ids_push(fr_tok_ids *v, int32_t id) {
    if (v->len == v->cap && !fr_tok_ids_grow(v, 1)) return false;
    v->data[v->len++] = id;
    return true;
}
bool fr_tok_ids_append(fr_tok_ids *v, const int32_t *ids, size_t n);
void fr_tok_ids_free(fr_tok_ids *v);

/* Length of the UTF-8 sequence starting at s[0] (1 for an invalid lead byte). */
static inline size_t fr_utf8_len(uint8_t c) {
    return c < 0x80 ? 1 : c < 0xE0 ? (c >= 0xC2 ? 2 : 1) : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 1;
}

/* Decodes one well-formed code point; returns its byte length or 0 if s[0..n) does not start with
 * a well-formed sequence (shortest form, no surrogates, <= U+10FFFF). */
size_t fr_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
/* Writes cp (<= U+10FFFF); returns the byte count (1..4). */
size_t fr_utf8_encode(uint32_t cp, char *out);
/* True when all of s is well-formed UTF-8; else *bad_off is the first bad byte. */
bool fr_utf8_validate(const char *s, size_t n, size_t *bad_off);

/* Lossy UTF-8 conversion with the "maximal subpart" rule (as Rust's String::from_utf8_lossy):
 * every maximal invalid subpart becomes U+FFFD. It works on a stream: bytes are fed in, complete
 * text comes out, and an incomplete trailing sequence is held until more bytes arrive or
 * fr_utf8_lossy_finish turns it into one U+FFFD. The result never depends on how the input was
 * cut into pieces. */
typedef struct fr_utf8_lossy {
    uint8_t pend[4];
    size_t npend;
} fr_utf8_lossy;

bool fr_utf8_lossy_feed(fr_utf8_lossy *st, const uint8_t *s, size_t n, fr_tok_buf *out);
bool fr_utf8_lossy_finish(fr_utf8_lossy *st, fr_tok_buf *out);

/* GPT-2 byte-level alphabet: each byte maps to one printable code point (all below U+0144). */
uint32_t fr_bytelevel_char(uint8_t b);
/* Inverse: the byte of a byte-level code point, or -1. */
int fr_bytelevel_byte(uint32_t cp);

/* Unicode White_Space (what Rust's char::is_whitespace and regex \s use). */
bool fr_unicode_is_space(uint32_t cp);
/* Rust regex \w: Alphabetic, M, Nd, Pc, Join_Control. */
bool fr_unicode_is_word(uint32_t cp);

/* Last code point that ends at s+n (n > 0, s valid UTF-8). */
uint32_t fr_utf8_last(const char *s, size_t n, size_t *len);

#endif
