/* GGUF tokenizer metadata -> fr_tokenizer_spec -> fr_tokenizer; GGUF chat template. */
#include "tokenizer/tok_gguf.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/template.h"
#include "tokenizer/tokenizer.h"

#define MAX_PRE_STEPS 8

/* Optional token id key: -1 when absent; out-of-range ids are an error naming the key. */
static fr_status token_id(const fr_gguf *g, const char *key, size_t n_vocab, int32_t *out,
                          fr_error *err) {
    int64_t v;
    *out = -1;
    fr_status st = fr_gguf_get_i64(g, key, &v, err);
    if (st == FR_ERR_NOT_FOUND) return FR_OK;
    if (st) return st;
    if (v < 0 || (uint64_t)v >= n_vocab)
        return fr_error_set(err, FR_ERR_FORMAT, "%s: key '%s' = %lld is not a token id below %zu",
                            fr_gguf_path(g), key, (long long)v, n_vocab);
    *out = (int32_t)v;
    return FR_OK;
}

static fr_status opt_bool(const fr_gguf *g, const char *key, bool def, bool *out, fr_error *err) {
    fr_status st = fr_gguf_get_bool(g, key, out, err);
    if (st == FR_ERR_NOT_FOUND) {
        *out = def;
        return FR_OK;
    }
    return st;
}

/* The token list as a string array (shared by the tokenizer and the template). */
static fr_status get_tokens(const fr_gguf *g, const fr_gguf_array **toks, fr_error *err) {
    fr_status st = fr_gguf_get_arr(g, "tokenizer.ggml.tokens", FR_GGUF_STRING, toks, err);
    if (st) return st;
    if ((*toks)->n == 0 || (*toks)->n > ((uint64_t)1 << 30))
        return fr_error_set(err, FR_ERR_FORMAT, "%s: key 'tokenizer.ggml.tokens' has %llu entries",
                            fr_gguf_path(g), (unsigned long long)(*toks)->n);
    return FR_OK;
}

fr_status fr_tokenizer_from_gguf(const fr_gguf *g, fr_tokenizer **out, fr_error *err) {
    *out = NULL;
    const char *file = fr_gguf_path(g);
    fr_gguf_str model;
    fr_status st = fr_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (st) return st;
    /* "llama": SentencePiece BPE (Llama 2, Mistral), merged by score. */
    const bool spm = !strcmp(model.s, "llama");
    if (strcmp(model.s, "gpt2") && !spm)
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "%s: key 'tokenizer.ggml.model' = '%.32s': only \"gpt2\" (byte-level "
                            "BPE) and \"llama\" (SentencePiece BPE) tokenizers are supported",
                            file, model.s);
    const fr_gguf_array *toks, *merges = NULL, *types = NULL, *scores = NULL;
    if ((st = get_tokens(g, &toks, err))) return st;
    const size_t n = (size_t)toks->n;
    if (spm) {
        st = fr_gguf_get_arr(g, "tokenizer.ggml.scores", FR_GGUF_TYPE_COUNT, &scores, err);
        if (st) return st;
        if (scores->n != n)
            return fr_error_set(err, FR_ERR_FORMAT,
                                "%s: key 'tokenizer.ggml.scores' has %llu entries for %zu tokens",
                                file, (unsigned long long)scores->n, n);
    } else {
        st = fr_gguf_get_arr(g, "tokenizer.ggml.merges", FR_GGUF_STRING, &merges, err);
        if (st == FR_ERR_NOT_FOUND) {
            merges = NULL;
            st = FR_OK;
        }
        if (st) return st;
    }
    st = fr_gguf_get_arr(g, "tokenizer.ggml.token_type", FR_GGUF_TYPE_COUNT, &types, err);
    if (st == FR_ERR_NOT_FOUND) {
        types = NULL;
        st = FR_OK;
    }
    if (st) return st;
    if (types && types->n != n)
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: key 'tokenizer.ggml.token_type' has %llu entries for %zu tokens",
                            file, (unsigned long long)types->n, n);
    fr_gguf_str pre = {"default", 7};
    st = fr_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err);
    if (st && st != FR_ERR_NOT_FOUND) return st;

    fr_tokenizer_spec spec;
    fr_tokenizer_spec_init(&spec);
    fr_tok_pre_spec steps[MAX_PRE_STEPS];
    fr_tok_norm_spec norm[2];
    fr_tok_added_spec unk_added;
    bool ignore_merges = false, space_prefix = true;
    if (!spm) {
        st = fr_tokenizer_gguf_pretok(pre.s, steps, MAX_PRE_STEPS, &spec.n_pretok, &ignore_merges,
                                      err);
        if (st) return fr_error_prefix(err, st, "%s", file);
        spec.pretok = steps;
        spec.ignore_merges = ignore_merges;
    } else {
        if ((st = opt_bool(g, "tokenizer.ggml.add_space_prefix", true, &space_prefix, err)))
            return st;
        /* As llama.cpp: spaces become ▁, and a ▁ goes in front of the text and of the text after
         * each special token (HF's legacy Prepend per stretch between added tokens). */
        memset(norm, 0, sizeof norm);
        norm[0] = (fr_tok_norm_spec){.kind = FR_TOK_NORM_PREPEND, .text = "\xe2\x96\x81"};
        norm[1] =
            (fr_tok_norm_spec){.kind = FR_TOK_NORM_REPLACE, .text = " ", .content = "\xe2\x96\x81"};
        spec.norm = space_prefix ? norm : norm + 1;
        spec.n_norm = space_prefix ? 2 : 1;
        spec.byte_fallback = true;
        spec.decoder = FR_TOK_DEC_SPM;
        spec.dec_replace = "\xe2\x96\x81";
        spec.dec_replace_with = " ";
        spec.dec_byte_fallback = true;
        spec.dec_strip_char = ' ';
        spec.dec_strip = space_prefix ? 1 : 0;
    }

    const size_t n_merges = merges ? (size_t)merges->n : 0;
    const char **vocab = malloc(n * sizeof *vocab);
    size_t *lens = malloc(n * sizeof *lens);
    int32_t *tt = types ? malloc(n * sizeof *tt) : NULL;
    float *sc = scores ? malloc(n * sizeof *sc) : NULL;
    const char **ma = malloc((n_merges ? n_merges : 1) * sizeof *ma);
    if (!vocab || !lens || !ma || (types && !tt) || (scores && !sc)) {
        st = fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory for the tokenizer", file);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        vocab[i] = toks->strs[i].s;
        lens[i] = (size_t)toks->strs[i].len;
    }
    for (size_t i = 0; i < n_merges; i++)
        ma[i] = merges->strs[i].s;
    if (tt && (st = fr_gguf_arr_to_i32(types, tt, "tokenizer.ggml.token_type", err))) {
        fr_error_prefix(err, st, "%s", file);
        goto done;
    }
    if (sc && (st = fr_gguf_arr_to_f32(scores, sc, "tokenizer.ggml.scores", err))) {
        fr_error_prefix(err, st, "%s", file);
        goto done;
    }
    spec.scores = sc;
    spec.n_vocab = n;
    spec.vocab = vocab;
    spec.vocab_lens = lens;
    spec.token_types = tt;
    spec.n_merges = n_merges;
    spec.merge_a = ma;
    spec.merge_b = NULL;
    if (!spm) spec.decoder = FR_TOK_DEC_BYTE_LEVEL;
    spec.source = file;
    bool add_bos, add_eos;
    if ((st = token_id(g, "tokenizer.ggml.bos_token_id", n, &spec.bos_id, err)) ||
        (st = token_id(g, "tokenizer.ggml.eos_token_id", n, &spec.eos_id, err)) ||
        (st = token_id(g, "tokenizer.ggml.unknown_token_id", n, &spec.unk_id, err)) ||
        /* llama.cpp's defaults: a SentencePiece model adds BOS unless the file says not to */
        (st = opt_bool(g, "tokenizer.ggml.add_bos_token", spm, &add_bos, err)) ||
        (st = opt_bool(g, "tokenizer.ggml.add_eos_token", false, &add_eos, err)))
        goto done;
    /* llama.cpp matches the unknown token in text as it does control tokens (HF: a special
     * added token). */
    if (spm && spec.unk_id >= 0 && (!tt || tt[spec.unk_id] == FR_TOK_TYPE_UNKNOWN)) {
        unk_added = (fr_tok_added_spec){.id = spec.unk_id,
                                        .content = vocab[spec.unk_id],
                                        .len = lens[spec.unk_id],
                                        .special = true};
        spec.added = &unk_added;
        spec.n_added = lens[spec.unk_id] ? 1 : 0;
    }
    if (add_bos && spec.bos_id < 0) {
        st = fr_error_set(err, FR_ERR_FORMAT,
                          "%s: key 'tokenizer.ggml.add_bos_token' is true but there is no "
                          "tokenizer.ggml.bos_token_id",
                          file);
        goto done;
    }
    if (add_eos && spec.eos_id < 0) {
        st = fr_error_set(err, FR_ERR_FORMAT,
                          "%s: key 'tokenizer.ggml.add_eos_token' is true but there is no "
                          "tokenizer.ggml.eos_token_id",
                          file);
        goto done;
    }
    if (add_bos) {
        spec.prefix_ids = &spec.bos_id;
        spec.n_prefix = 1;
    }
    if (add_eos) {
        spec.suffix_ids = &spec.eos_id;
        spec.n_suffix = 1;
    }
    st = fr_tokenizer_build(&spec, out, err);
done:
    free(vocab);
    free(lens);
    free(tt);
    free(sc);
    free(ma);
    return st;
}

fr_status fr_tokenizer_load_gguf(const char *path, fr_tokenizer **out, fr_error *err) {
    fr_gguf *g;
    fr_status st = fr_gguf_open(path, &g, err);
    if (st) return st;
    st = fr_tokenizer_from_gguf(g, out, err);
    fr_gguf_close(g);
    return st;
}

/* A copy of token `id`'s text (NULL when id < 0). */
static fr_status token_text(const fr_gguf *g, const fr_gguf_array *toks, const char *key,
                            char **out, fr_error *err) {
    int32_t id;
    *out = NULL;
    fr_status st = token_id(g, key, (size_t)toks->n, &id, err);
    if (st || id < 0) return st;
    *out = strdup(toks->strs[id].s);
    if (!*out) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", fr_gguf_path(g));
    return FR_OK;
}

fr_status fr_chat_template_from_gguf(const fr_gguf *g, fr_chat_template **out, fr_error *err) {
    *out = NULL;
    const char *file = fr_gguf_path(g);
    fr_gguf_str src;
    fr_status st = fr_gguf_get_str(g, "tokenizer.chat_template", &src, err);
    if (st == FR_ERR_NOT_FOUND)
        return fr_error_set(err, FR_ERR_NOT_FOUND, "%s: the model has no chat template", file);
    if (st) return st;
    const fr_gguf_array *toks = NULL;
    char *bos = NULL, *eos = NULL, *unk = NULL, *pad = NULL;
    if (fr_gguf_find(g, "tokenizer.ggml.tokens")) {
        if ((st = get_tokens(g, &toks, err)) ||
            (st = token_text(g, toks, "tokenizer.ggml.bos_token_id", &bos, err)) ||
            (st = token_text(g, toks, "tokenizer.ggml.eos_token_id", &eos, err)) ||
            (st = token_text(g, toks, "tokenizer.ggml.unknown_token_id", &unk, err)) ||
            (st = token_text(g, toks, "tokenizer.ggml.padding_token_id", &pad, err)))
            goto done;
    }
    st = fr_chat_template_from_source(src.s, (size_t)src.len, bos, eos, out, err);
    if (st) {
        fr_error_prefix(err, st, "%s: tokenizer.chat_template", file);
        goto done;
    }
    if ((unk && (st = fr_chat_template_set_token(*out, "unk_token", unk, err))) ||
        (pad && (st = fr_chat_template_set_token(*out, "pad_token", pad, err)))) {
        fr_chat_template_free(*out);
        *out = NULL;
    }
done:
    free(bos);
    free(eos);
    free(unk);
    free(pad);
    return st;
}

fr_status fr_chat_template_load_gguf(const char *path, fr_chat_template **out, fr_error *err) {
    fr_gguf *g;
    fr_status st = fr_gguf_open(path, &g, err);
    if (st) return st;
    st = fr_chat_template_from_gguf(g, out, err);
    fr_gguf_close(g);
    return st;
}
