/* Decoding: per-id bytes (the decoder applied to each token at build time) concatenated and
 * turned into text with lossy UTF-8, in one go or incrementally. Both paths run the same
 * streaming converter, so the concatenated increments equal the full decode byte for byte.
 * The SentencePiece decoder (FR_TOK_DEC_SPM) instead converts each run of byte-fallback tokens
 * as HF ByteFallback does (valid UTF-8 as is, else one U+FFFD per byte), so a run is held until
 * a non-byte token or the end, and strips the text's leading spaces as HF Strip does. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tok_impl.h"

/* Conversion state between ids. */
typedef struct dec_state {
    size_t emitted; /* tokens that produced output (for the no-decoder space join) */
    fr_utf8_lossy lossy;
    fr_tok_buf run; /* SPM: bytes of the byte tokens not converted yet */
    size_t strip;   /* SPM: leading strip characters still to remove; 0 once text started */
} dec_state;

static void state_reset(const fr_tokenizer *t, dec_state *s) {
    s->emitted = 0;
    s->lossy.npend = 0;
    fr_tok_buf_clear(&s->run);
    s->strip = t->decoder == FR_TOK_DEC_SPM ? t->dec_strip : 0;
}

static bool spm_emit(const fr_tokenizer *t, dec_state *s, const char *p, size_t n,
                     fr_tok_buf *out) {
    while (s->strip && n) {
        uint32_t cp;
        size_t l = fr_utf8_decode((const uint8_t *)p, n, &cp);
        if (!l || cp != t->dec_strip_char) break;
        p += l;
        n -= l;
        s->strip--;
    }
    if (n) s->strip = 0;
    return fr_tok_buf_append(out, p, n);
}

static bool spm_flush(const fr_tokenizer *t, dec_state *s, fr_tok_buf *out) {
    if (!s->run.len) return true;
    size_t bad, n = s->run.len;
    bool ok = true;
    if (fr_utf8_validate(s->run.data, n, &bad))
        ok = spm_emit(t, s, s->run.data, n, out);
    else
        for (size_t i = 0; i < n && ok; i++)
            ok = spm_emit(t, s, "\xef\xbf\xbd", 3, out); /* U+FFFD */
    fr_tok_buf_clear(&s->run);
    return ok;
}

static bool state_finish(const fr_tokenizer *t, dec_state *s, fr_tok_buf *out) {
    if (t->decoder == FR_TOK_DEC_SPM) return spm_flush(t, s, out);
    return fr_utf8_lossy_finish(&s->lossy, out);
}

struct fr_detokenizer {
    const fr_tokenizer *tok;
    bool skip_special;
    size_t pushed; /* ids pushed since the last finish (for messages) */
    dec_state st;
    fr_tok_buf out;
};

/* Feeds one id; skipped ids feed nothing. */
static fr_status feed_id(const fr_tokenizer *t, bool skip_special, dec_state *ds, int32_t id,
                         size_t index, fr_tok_buf *out, fr_error *err) {
    if (id < 0 || id >= t->n_ids || !(t->id_flags[id] & FR_TOK_ID_PRESENT))
        return fr_error_set(err, FR_ERR_INVALID,
                            "tokenizer: id %d (position %zu) is not in the "
                            "vocabulary (size %d)",
                            id, index, t->n_ids);
    if (skip_special && (t->id_flags[id] & FR_TOK_ID_SPECIAL)) return FR_OK;
    bool ok = true;
    const char *p = t->dec_blob + t->dec_off[id];
    if (t->decoder == FR_TOK_DEC_SPM) {
        if (t->id_flags[id] & FR_TOK_ID_BYTE)
            ok = fr_tok_buf_append(&ds->run, p, 1);
        else
            ok = spm_flush(t, ds, out) && spm_emit(t, ds, p, t->dec_len[id], out);
    } else {
        if (t->decoder == FR_TOK_DEC_NONE && ds->emitted)
            ok = fr_utf8_lossy_feed(&ds->lossy, (const uint8_t *)" ", 1, out);
        ok = ok && fr_utf8_lossy_feed(&ds->lossy, (const uint8_t *)p, t->dec_len[id], out);
    }
    ds->emitted++;
    return ok ? FR_OK : fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory while decoding");
}

fr_status fr_tokenizer_decode(const fr_tokenizer *tok, const int32_t *ids, size_t n_ids,
                              bool skip_special, char **text, size_t *len, fr_error *err) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!tok || !text || (!ids && n_ids))
        return fr_error_set(err, FR_ERR_INVALID, "fr_tokenizer_decode: NULL argument");
    fr_tok_buf out = {0};
    dec_state ds = {0};
    state_reset(tok, &ds);
    fr_status st = FR_OK;
    for (size_t i = 0; i < n_ids && !st; i++)
        st = feed_id(tok, skip_special, &ds, ids[i], i, &out, err);
    if (!st && (!state_finish(tok, &ds, &out) || !fr_tok_buf_reserve(&out, 1)))
        st = fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory while decoding");
    fr_tok_buf_free(&ds.run);
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
    state_reset(tok, &d->st);
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
    fr_status st = feed_id(d->tok, d->skip_special, &d->st, id, d->pushed++, &d->out, err);
    if (st) return st;
    return detok_result(d, text, len, err);
}

fr_status fr_detokenizer_finish(fr_detokenizer *d, const char **text, size_t *len, fr_error *err) {
    if (text) *text = "";
    if (len) *len = 0;
    if (!d) return fr_error_set(err, FR_ERR_INVALID, "fr_detokenizer_finish: NULL argument");
    fr_tok_buf_clear(&d->out);
    if (!state_finish(d->tok, &d->st, &d->out))
        return fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory while decoding");
    state_reset(d->tok, &d->st);
    d->pushed = 0;
    return detok_result(d, text, len, err);
}

void fr_detokenizer_reset(fr_detokenizer *d) {
    if (!d) return;
    state_reset(d->tok, &d->st);
    d->pushed = 0;
    fr_tok_buf_clear(&d->out);
}

void fr_detokenizer_free(fr_detokenizer *d) {
    if (!d) return;
    fr_tok_buf_free(&d->out);
    fr_tok_buf_free(&d->st.run);
    free(d);
}
