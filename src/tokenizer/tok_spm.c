/* SentencePiece-style parts of the tokenizer (Llama 2, Mistral): the Metaspace pre-tokenizer's
 * settings, the per-token text of the SPM decoder, and merging by score for GGUF "llama" models,
 * whose files carry piece scores instead of a merge list. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tok_impl.h"

fr_status fr_tok_spm_metaspace(fr_tok_pre *p, const fr_tok_pre_spec *ps, const char *src, size_t i,
                               fr_error *err) {
    const char *r = ps->replacement ? ps->replacement : "\xe2\x96\x81"; /* U+2581 */
    size_t n = strlen(r);
    uint32_t cp;
    /* HF stores the replacement as one char; anything else cannot be what the file means. */
    if (n == 0 || n >= sizeof p->replacement || fr_utf8_decode((const uint8_t *)r, n, &cp) != n)
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: pre-tokenizer %zu (Metaspace): replacement must be one character",
                            src, i);
    if ((unsigned)ps->prepend_scheme > FR_TOK_PREPEND_NEVER)
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: pre-tokenizer %zu (Metaspace): bad prepend_scheme", src, i);
    memcpy(p->replacement, r, n + 1);
    p->replacement_len = n;
    p->prepend_scheme = ps->prepend_scheme;
    p->split = ps->split;
    return FR_OK;
}

/* HF ByteFallback's test: exactly "<0x" + two hex digits + ">" (Rust's from_str_radix, which
 * also takes a leading '+': "<0x+F>" is byte 15). */
static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0 && !(k == 3 && c == '+')) return -1;
        v = d < 0 ? v : v * 16 + d;
    }
    return v;
}

bool fr_tok_spm_token_bytes(const fr_tokenizer_spec *spec, const char *s, size_t n, fr_tok_buf *out,
                            bool *is_byte) {
    fr_tok_buf_clear(out);
    *is_byte = false;
    int b = spec->dec_byte_fallback ? byte_token(s, n) : -1;
    if (b >= 0) {
        uint8_t c = (uint8_t)b;
        *is_byte = true;
        return fr_tok_buf_append(out, &c, 1);
    }
    const char *from = spec->dec_replace,
               *to = spec->dec_replace_with ? spec->dec_replace_with : "";
    size_t lf = from ? strlen(from) : 0, lt = strlen(to);
    if (!fr_tok_buf_reserve(out, n + 1)) return false;
    for (size_t i = 0; i < n;) {
        if (lf && n - i >= lf && !memcmp(s + i, from, lf)) {
            if (!fr_tok_buf_append(out, to, lt)) return false;
            i += lf;
        } else {
            if (!fr_tok_buf_append(out, s + i, 1)) return false;
            i++;
        }
    }
    return true;
}

fr_status fr_tok_spm_scores(fr_tokenizer *t, const fr_tokenizer_spec *spec, fr_error *err) {
    const char *src = spec->source ? spec->source : "tokenizer";
    if (spec->n_merges)
        return fr_error_set(err, FR_ERR_FORMAT, "%s: both merges and scores given", src);
    if (t->byte_mode)
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "%s: merging by score with a ByteLevel pre-tokenizer", src);
    t->scores = calloc(spec->n_vocab ? spec->n_vocab : 1, sizeof *t->scores);
    if (!t->scores) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory for scores", src);
    for (size_t i = 0; i < spec->n_vocab; i++) {
        float v = spec->scores[i];
        if (v != v)
            return fr_error_set(err, FR_ERR_FORMAT, "%s: score of token %zu is NaN", src, i);
        t->scores[i] = v;
        /* SentencePiece merges into normal and user-defined pieces only: never into control,
         * unknown, byte or unused ones. */
        int32_t type = spec->token_types ? spec->token_types[i] : FR_TOK_TYPE_NORMAL;
        if (spec->vocab[i] && (type == FR_TOK_TYPE_NORMAL || type == FR_TOK_TYPE_USER_DEFINED ||
                               type == FR_TOK_TYPE_UNDEFINED))
            t->id_flags[i] |= FR_TOK_ID_MERGEABLE;
    }
    return FR_OK;
}

uint32_t fr_tok_spm_rank(float score) {
    /* Order-preserving map of floats to unsigned ints, reversed so that the highest score has
     * the lowest rank (the BPE heap pops the lowest). */
    uint32_t u;
    memcpy(&u, &score, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~u;
}
