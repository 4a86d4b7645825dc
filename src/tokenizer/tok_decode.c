/* Decoding: per-id bytes (the decoder applied to each token at build time) concatenated and
 * turned into text with lossy UTF-8, in one go or incrementally. Both paths run the same
 * streaming converter, so the concatenated increments equal the full decode byte for byte. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tok_impl.h"

struct fr_detokenizer {
    const fr_tokenizer *tok;
    bool skip_special;
    size_t emitted; /* tokens that produced output (for the no-decoder space join) */
    size_t pushed;  /* ids pushed since the last finish (for messages) */
    fr_utf8_lossy lossy;
    fr_tok_buf out;
};

/* Feeds one id; skipped ids feed nothing. */
static fr_status feed_id(const fr_tokenizer *t, bool skip_special, size_t *emitted,
                         fr_utf8_lossy *lossy, int32_t id, size_t index, fr_tok_buf *out,
                         fr_error *err) {
    if (id < 0 || id >= t->n_ids || !(t->id_flags[id] & FR_TOK_ID_PRESENT))
        return fr_error_set(err, FR_ERR_INVALID,
                            "tokenizer: id %d (position %zu) is not in the "
                            "vocabulary (size %d)",
                            id, index, t->n_ids);
    if (skip_special && (t->id_flags[id] & FR_TOK_ID_SPECIAL)) return FR_OK;
    bool ok = true;
    if (t->decoder == FR_TOK_DEC_NONE && *emitted)
        ok = fr_utf8_lossy_feed(lossy, (const uint8_t *)" ", 1, out);
    ok = ok && fr_utf8_lossy_feed(lossy, (const uint8_t *)t->dec_blob + t->dec_off[id],
                                  t->dec_len[id], out);
    (*emitted)++;
    return ok ? FR_OK : fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory while decoding");
}

fr_status fr_tokenizer_decode(const fr_tokenizer *tok, const int32_t *ids, size_t n_ids,
                              bool skip_special, char **text, size_t *len, fr_error *err) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!tok || !text || (!ids && n_ids))
        return fr_error_set(err, FR_ERR_INVALID, "fr_tokenizer_decode: NULL argument");
    fr_tok_buf out = {0};
    fr_utf8_lossy lossy = {0};
    size_t emitted = 0;
    fr_status st = FR_OK;
    for (size_t i = 0; i < n_ids && !st; i++)
        st = feed_id(tok, skip_special, &emitted, &lossy, ids[i], i, &out, err);
    if (!st && (!fr_utf8_lossy_finish(&lossy, &out) || !fr_tok_buf_reserve(&out, 1)))
        st = fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory while decoding");
    if (st) {
        fr_tok_buf_free(&out);
        return st;
    }
    out.data[out.len] = '\0';
    *text = out.data;
    if (len) *len = out.len;
    return FR_OK;
}

fr_status fr_detokenizer_new(const fr_tokenizer *tok, bool skip_special, fr_detokenizer **out,
                             fr_error *err) {
    if (!tok || !out) return fr_error_set(err, FR_ERR_INVALID, "fr_detokenizer_new: NULL argument");
    fr_detokenizer *d = calloc(1, sizeof *d);
    if (!d) return fr_error_set(err, FR_ERR_NOMEM, "fr_detokenizer_new: out of memory");
    d->tok = tok;
    d->skip_special = skip_special;
    *out = d;
    return FR_OK;
}

static fr_status detok_result(fr_detokenizer *d, const char **text, size_t *len, fr_error *err) {
    if (!fr_tok_buf_reserve(&d->out, 1))
        return fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory while decoding");
    d->out.data[d->out.len] = '\0';
    if (text) *text = d->out.data;
    if (len) *len = d->out.len;
    return FR_OK;
}

fr_status fr_detokenizer_push(fr_detokenizer *d, int32_t id, const char **text, size_t *len,
                              fr_error *err) {
    if (text) *text = "";
    if (len) *len = 0;
    if (!d) return fr_error_set(err, FR_ERR_INVALID, "fr_detokenizer_push: NULL argument");
    fr_tok_buf_clear(&d->out);
    fr_status st =
        feed_id(d->tok, d->skip_special, &d->emitted, &d->lossy, id, d->pushed++, &d->out, err);
    if (st) return st;
    return detok_result(d, text, len, err);
}

fr_status fr_detokenizer_finish(fr_detokenizer *d, const char **text, size_t *len, fr_error *err) {
    if (text) *text = "";
    if (len) *len = 0;
    if (!d) return fr_error_set(err, FR_ERR_INVALID, "fr_detokenizer_finish: NULL argument");
    fr_tok_buf_clear(&d->out);
    if (!fr_utf8_lossy_finish(&d->lossy, &d->out))
        return fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory while decoding");
    d->emitted = 0;
    d->pushed = 0;
    return detok_result(d, text, len, err);
}

void fr_detokenizer_reset(fr_detokenizer *d) {
    if (!d) return;
    d->lossy.npend = 0;
    d->emitted = 0;
    d->pushed = 0;
    fr_tok_buf_clear(&d->out);
}

void fr_detokenizer_free(fr_detokenizer *d) {
    if (!d) return;
    fr_tok_buf_free(&d->out);
    free(d);
}
