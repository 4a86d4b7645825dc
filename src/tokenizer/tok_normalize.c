/* Normalizers: Unicode forms (utf8proc), Strip, Prepend, Replace — applied in sequence. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"
#include "tokenizer/tok_impl.h"

static int form_options(fr_tok_norm_kind kind) {
    switch (kind) {
    case FR_TOK_NORM_NFC:
        return UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    case FR_TOK_NORM_NFD:
        return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    case FR_TOK_NORM_NFKC:
        return UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    default:
        return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    }
}

/* A code point is inert for a form when the form leaves it unchanged, it has combining class 0
 * and it never ends a decomposition (so it never composes with what precedes it); a decomposable
 * one must also decompose to a starter that never ends a decomposition. Normalization never moves
 * anything across an inert character nor changes it, so the text can be cut before each one and
 * only the pieces holding other characters need utf8proc. */
static int decompose_opts(fr_tok_norm_kind kind) {
    return UTF8PROC_DECOMPOSE |
           ((kind == FR_TOK_NORM_NFKC || kind == FR_TOK_NORM_NFKD) ? UTF8PROC_COMPAT : 0);
}

static utf8proc_ssize_t decompose(utf8proc_int32_t c, int opts, utf8proc_int32_t d[32]) {
    int last = 0;
    return utf8proc_decompose_char(c, d, 32, (utf8proc_option_t)opts, &last);
}

static bool form_keeps(const fr_tok_norm *nm, utf8proc_int32_t c) {
    utf8proc_uint8_t in[4], *res = NULL;
    utf8proc_ssize_t l = utf8proc_encode_char(c, in);
    utf8proc_ssize_t r = utf8proc_map(in, l, &res, (utf8proc_option_t)form_options(nm->kind));
    bool same = r == l && !memcmp(res, in, (size_t)l);
    free(res);
    return same;
}

static bool compute_inert(const fr_tok_norm *nm, const uint8_t *second, utf8proc_int32_t c) {
    if (utf8proc_get_property(c)->combining_class != 0) return false;
    if (second && c < FR_TOK_INERT_LIMIT && (second[c >> 3] >> (c & 7)) & 1) return false;
    utf8proc_int32_t d[32];
    utf8proc_ssize_t n = decompose(c, decompose_opts(nm->kind), d);
    if (n == 1 && d[0] == c) return true;
    if (n < 1 || n > 32 || utf8proc_get_property(d[0])->combining_class != 0) return false;
    if (second && d[0] < FR_TOK_INERT_LIMIT && (second[d[0] >> 3] >> (d[0] & 7)) & 1) return false;
    return form_keeps(nm, c);
}

bool fr_tok_norm_prepare(fr_tok_norm *nm) {
    int opts = decompose_opts(nm->kind);
    uint8_t *second = calloc(FR_TOK_INERT_LIMIT / 8, 1);
    nm->inert = calloc(FR_TOK_INERT_LIMIT / 8, 1);
    if (!second || !nm->inert) {
        free(second);
        return false;
    }
    for (utf8proc_int32_t c = 0; c < FR_TOK_INERT_LIMIT; c++) {
        if (c >= 0xD800 && c < 0xE000) continue;
        utf8proc_int32_t d[32];
        utf8proc_ssize_t n = decompose(c, opts, d);
        for (utf8proc_ssize_t k = 1; k < n && k < 32; k++)
            if (d[k] >= 0 && d[k] < FR_TOK_INERT_LIMIT)
                second[d[k] >> 3] |= (uint8_t)(1u << (d[k] & 7));
    }
    for (utf8proc_int32_t c = 0; c < FR_TOK_INERT_LIMIT; c++) {
        if (c >= 0xD800 && c < 0xE000) continue;
        if (compute_inert(nm, second, c)) nm->inert[c >> 3] |= (uint8_t)(1u << (c & 7));
    }
    free(second);
    return true;
}

static bool is_inert(const fr_tok_norm *nm, uint32_t c) {
    if (c < FR_TOK_INERT_LIMIT) return (nm->inert[c >> 3] >> (c & 7)) & 1;
    /* Planes 3 and up hold no decomposition targets, so nothing there ends one. */
    return compute_inert(nm, NULL, (utf8proc_int32_t)c);
}

static fr_status map_piece(const fr_tok_norm *nm, const char *s, size_t n, fr_tok_buf *out,
                           fr_error *err) {
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &res,
                                      (utf8proc_option_t)form_options(nm->kind));
    if (r < 0) {
        free(res);
        return fr_error_set(err, FR_ERR_INVALID, "tokenizer: normalization failed: %s",
                            utf8proc_errmsg(r));
    }
    bool ok = fr_tok_buf_append(out, res, (size_t)r);
    free(res);
    return ok ? FR_OK : fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory");
}

static fr_status norm_unicode(const fr_tok_norm *nm, const char *s, size_t n, fr_tok_buf *out,
                              fr_error *err) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, pend = 0, seg = 0;
    bool dirty = false;
    if (!fr_tok_buf_reserve(out, n))
        return fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory");
    while (i < n) {
        uint32_t c;
        size_t l;
        if (u[i] < 0x80) {
            c = u[i];
            l = 1;
        } else {
            l = fr_utf8_decode(u + i, n - i, &c);
            if (!l)
                return fr_error_set(err, FR_ERR_INVALID, "tokenizer: invalid UTF-8 to normalize");
        }
        if (c < 0x80 || is_inert(nm, c)) {
            if (dirty) {
                /* [pend, seg) is untouched; [seg, i) = an inert char + characters that need
                 * normalizing together with it. */
                fr_status st;
                if (!fr_tok_buf_append(out, s + pend, seg - pend)) goto nomem;
                if ((st = map_piece(nm, s + seg, i - seg, out, err))) return st;
                pend = i;
                dirty = false;
            }
            seg = i;
            if (c < 0x80) { /* ASCII runs: all inert */
                size_t j = i + 1;
                while (j < n && u[j] < 0x80)
                    j++;
                seg = j - 1;
                i = j;
                continue;
            }
        } else {
            dirty = true;
        }
        i += l;
    }
    if (dirty) {
        if (!fr_tok_buf_append(out, s + pend, seg - pend)) goto nomem;
        return map_piece(nm, s + seg, n - seg, out, err);
    }
    if (!fr_tok_buf_append(out, s + pend, n - pend)) goto nomem;
    return FR_OK;
nomem:
    return fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory");
}

static void strip_bounds(const char *s, size_t n, bool left, bool right, size_t *a, size_t *b) {
    size_t i = 0, j = n;
    while (left && i < j) {
        uint32_t cp;
        size_t l = fr_utf8_decode((const uint8_t *)s + i, j - i, &cp);
        if (!l || !fr_unicode_is_space(cp)) break;
        i += l;
    }
    while (right && j > i) {
        size_t l;
        uint32_t cp = fr_utf8_last(s + i, j - i, &l);
        if (!fr_unicode_is_space(cp)) break;
        j -= l;
    }
    *a = i;
    *b = j;
}

static fr_status norm_replace(const fr_tok_norm *nm, const char *s, size_t n, fr_tok_buf *out,
                              fr_error *err) {
    fr_tok_matcher m;
    fr_status st = fr_tok_matcher_init(&m, &nm->re, err);
    if (st) return st;
    size_t pos = 0, last_end = SIZE_MAX, done = 0;
    for (;;) {
        size_t a, b;
        bool found;
        st = fr_tok_matcher_next(&m, s, n, &pos, &last_end, &a, &b, &found, err);
        if (st || !found) break;
        if (!fr_tok_buf_append(out, s + done, a - done) ||
            !fr_tok_buf_append(out, nm->content, nm->content_len)) {
            st = fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory");
            break;
        }
        done = b;
    }
    if (!st && !fr_tok_buf_append(out, s + done, n - done))
        st = fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory");
    fr_tok_matcher_free(&m);
    return st;
}

fr_status fr_tok_normalize(const fr_tokenizer *t, const char *s, size_t n, fr_tok_buf *out,
                           fr_error *err) {
    fr_tok_buf_clear(out);
    if (t->n_norm == 0) return fr_tok_buf_append(out, s, n) ? FR_OK : FR_ERR_NOMEM;
    fr_tok_buf tmp = {0};
    fr_status st = FR_OK;
    const char *cur = s;
    size_t cur_n = n;
    for (size_t k = 0; k < t->n_norm && !st; k++) {
        const fr_tok_norm *nm = &t->norm[k];
        /* Each step reads `cur` and writes `out`; `cur` may itself be `out`, so go through tmp. */
        fr_tok_buf_clear(&tmp);
        switch (nm->kind) {
        case FR_TOK_NORM_NFC:
        case FR_TOK_NORM_NFD:
        case FR_TOK_NORM_NFKC:
        case FR_TOK_NORM_NFKD:
            st = norm_unicode(nm, cur, cur_n, &tmp, err);
            break;
        case FR_TOK_NORM_STRIP: {
            size_t a, b;
            strip_bounds(cur, cur_n, nm->strip_left, nm->strip_right, &a, &b);
            if (!fr_tok_buf_append(&tmp, cur + a, b - a)) st = FR_ERR_NOMEM;
            break;
        }
        case FR_TOK_NORM_PREPEND:
            if (cur_n && !fr_tok_buf_append(&tmp, nm->text, nm->text_len)) st = FR_ERR_NOMEM;
            if (!st && !fr_tok_buf_append(&tmp, cur, cur_n)) st = FR_ERR_NOMEM;
            break;
        case FR_TOK_NORM_REPLACE:
            st = norm_replace(nm, cur, cur_n, &tmp, err);
            break;
        }
        if (st == FR_ERR_NOMEM) fr_error_set(err, st, "tokenizer: out of memory");
        if (st) break;
        fr_tok_buf_clear(out);
        if (!fr_tok_buf_append(out, tmp.data, tmp.len)) {
            st = fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory");
            break;
        }
        cur = out->data;
        cur_n = out->len;
    }
    fr_tok_buf_free(&tmp);
    return st;
}
