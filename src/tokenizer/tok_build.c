/* fr_tokenizer_build: checks a spec and turns it into the tokenizer object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tok_impl.h"
#include "tokenizer/tok_unicode_compat.h"

#define FR_TOK_MAX_IDS (1 << 24)

/* GPT-2's pre-tokenizer regex, used by ByteLevel(use_regex = true). */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

void fr_tokenizer_spec_init(fr_tokenizer_spec *spec) {
    memset(spec, 0, sizeof *spec);
    spec->unk_id = -1;
    spec->bos_id = -1;
    spec->eos_id = -1;
    spec->decoder = FR_TOK_DEC_BYTE_LEVEL;
}

void fr_tokenizer_free(fr_tokenizer *t) {
    if (!t) return;
    free(t->id_flags);
    free(t->tok_blob);
    free(t->tok_off);
    free(t->tok_len);
    free(t->dec_blob);
    free(t->dec_off);
    free(t->dec_len);
    fr_tok_strmap_free(&t->token_ids);
    fr_tok_strmap_free(&t->vocab);
    fr_tok_pairmap_free(&t->merges);
    free(t->added);
    free(t->added_blob);
    free(t->norm_blob);
    fr_tok_trie_free(&t->trie_raw);
    fr_tok_trie_free(&t->trie_norm);
    for (size_t i = 0; i < t->n_norm; i++) {
        free(t->norm[i].text);
        free(t->norm[i].content);
        free(t->norm[i].inert);
        fr_tok_regex_free(&t->norm[i].re);
    }
    free(t->norm);
    for (size_t i = 0; i < t->n_pre; i++)
        fr_tok_regex_free(&t->pre[i].re);
    free(t->pre);
    free(t->prefix);
    free(t->suffix);
    free(t->scores);
    fr_tok_cache_free(t);
    free(t);
}

static const char *src_name(const fr_tokenizer_spec *spec) {
    return spec->source ? spec->source : "tokenizer";
}

/* Byte-mode key of a token string: the bytes behind its byte-level characters. False when a
 * character is outside the byte-level alphabet (such a token can never come out of BPE). */
static bool unmap_bytelevel(const char *s, size_t n, fr_tok_buf *out) {
    fr_tok_buf_clear(out);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = fr_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (!l) return false;
        int b = fr_bytelevel_byte(cp);
        if (b < 0) return false;
        uint8_t c = (uint8_t)b;
        if (!fr_tok_buf_append(out, &c, 1)) return false;
        i += l;
    }
    return true;
}

static size_t slen(const char *s, const size_t *lens, size_t i) {
    return lens ? lens[i] : strlen(s);
}

static fr_status build_ids(fr_tokenizer *t, const fr_tokenizer_spec *spec, fr_error *err) {
    const char *src = src_name(spec);
    int32_t n = t->n_ids;
    t->id_flags = calloc((size_t)n, 1);
    t->tok_off = calloc((size_t)n, sizeof *t->tok_off);
    t->tok_len = calloc((size_t)n, sizeof *t->tok_len);
    if (!t->id_flags || !t->tok_off || !t->tok_len) goto nomem;
    fr_tok_buf blob = {0};
    /* Model tokens first, then added tokens overriding (HF looks ids up in the added vocabulary
     * first). */
    for (size_t i = 0; i < spec->n_vocab; i++) {
        if (!spec->vocab[i]) continue;
        size_t l = slen(spec->vocab[i], spec->vocab_lens, i);
        if (blob.len + l >= UINT32_MAX) goto toolarge_blob;
        t->tok_off[i] = (uint32_t)blob.len;
        t->tok_len[i] = (uint32_t)l;
        if (!fr_tok_buf_append(&blob, spec->vocab[i], l)) goto nomem_blob;
        t->id_flags[i] |= FR_TOK_ID_PRESENT;
    }
    for (size_t i = 0; i < t->n_added; i++) {
        const fr_tok_added *a = &t->added[i];
        if (blob.len + a->len >= UINT32_MAX) goto toolarge_blob;
        t->tok_off[a->id] = (uint32_t)blob.len;
        t->tok_len[a->id] = a->len;
        if (!fr_tok_buf_append(&blob, t->added_blob + a->off, a->len)) goto nomem_blob;
        t->id_flags[a->id] |= FR_TOK_ID_PRESENT | FR_TOK_ID_ADDED;
        if (a->special) t->id_flags[a->id] |= FR_TOK_ID_SPECIAL;
    }
    t->tok_blob = blob.data;
    if (!fr_tok_strmap_init(&t->token_ids, (size_t)n)) goto nomem;
    for (int32_t id = 0; id < n; id++) {
        if (!(t->id_flags[id] & FR_TOK_ID_PRESENT)) continue;
        int32_t prev;
        if (!fr_tok_strmap_put(&t->token_ids, t->tok_blob + t->tok_off[id], t->tok_len[id], id,
                               &prev))
            goto nomem;
        /* Keep the added token when a model token has the same text. */
        if (prev >= 0 && (t->id_flags[prev] & FR_TOK_ID_ADDED) &&
            !(t->id_flags[id] & FR_TOK_ID_ADDED))
            fr_tok_strmap_put(&t->token_ids, t->tok_blob + t->tok_off[id], t->tok_len[id], prev,
                              NULL);
    }

    /* Decoded bytes of every id. */
    fr_tok_buf dec = {0}, tmp = {0};
    t->dec_off = calloc((size_t)n, sizeof *t->dec_off);
    t->dec_len = calloc((size_t)n, sizeof *t->dec_len);
    if (!t->dec_off || !t->dec_len) goto nomem;
    for (int32_t id = 0; id < n; id++) {
        if (!(t->id_flags[id] & FR_TOK_ID_PRESENT)) continue;
        const char *s = t->tok_blob + t->tok_off[id];
        size_t l = t->tok_len[id];
        /* ByteLevel decoder: a token made only of byte-level characters becomes those bytes;
         * any other token passes through as its UTF-8 text. */
        if (t->decoder == FR_TOK_DEC_BYTE_LEVEL && unmap_bytelevel(s, l, &tmp)) {
            s = tmp.data;
            l = tmp.len;
        } else if (t->decoder == FR_TOK_DEC_SPM) {
            bool byte;
            if (!fr_tok_spm_token_bytes(spec, s, l, &tmp, &byte)) {
                fr_tok_buf_free(&dec);
                fr_tok_buf_free(&tmp);
                goto nomem;
            }
            s = tmp.data ? tmp.data : "";
            l = tmp.len;
            if (byte) t->id_flags[id] |= FR_TOK_ID_BYTE;
        }
        if (dec.len + l >= UINT32_MAX) {
            fr_tok_buf_free(&dec);
            fr_tok_buf_free(&tmp);
            goto toolarge;
        }
        t->dec_off[id] = (uint32_t)dec.len;
        t->dec_len[id] = (uint32_t)l;
        if (!fr_tok_buf_append(&dec, s, l)) {
            fr_tok_buf_free(&dec);
            fr_tok_buf_free(&tmp);
            goto nomem;
        }
    }
    fr_tok_buf_free(&tmp);
    t->dec_blob = dec.data ? dec.data : calloc(1, 1);
    if (!t->dec_blob) goto nomem;
    return FR_OK;
nomem_blob:
    t->tok_blob = blob.data; /* freed with the tokenizer */
nomem:
    return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory building the vocabulary", src);
toolarge_blob:
    t->tok_blob = blob.data;
toolarge:
    return fr_error_set(err, FR_ERR_RANGE, "%s: vocabulary strings exceed 4 GiB", src);
}

static fr_status build_model(fr_tokenizer *t, const fr_tokenizer_spec *spec, fr_error *err) {
    const char *src = src_name(spec);
    fr_tok_buf key = {0}, ka = {0}, kb = {0};
    fr_status st = FR_OK;
    if (!fr_tok_strmap_init(&t->vocab, spec->n_vocab)) goto nomem;
    for (size_t i = 0; i < spec->n_vocab; i++) {
        if (!spec->vocab[i]) continue;
        const char *s = spec->vocab[i];
        size_t l = slen(s, spec->vocab_lens, i);
        if (t->byte_mode) {
            if (!unmap_bytelevel(s, l, &key)) continue; /* unreachable by BPE */
            s = key.data;
            l = key.len;
        }
        if (!fr_tok_strmap_put(&t->vocab, s, l, (int32_t)i, NULL)) goto nomem;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->fallback[b] = t->byte_fallback ? fr_tok_strmap_get(&t->vocab, name, 6) : -1;
        uint8_t c = (uint8_t)b;
        t->byte_sym[b] = t->byte_mode ? fr_tok_strmap_get(&t->vocab, &c, 1) : -1;
    }
    if (spec->scores) {
        st = fr_tok_spm_scores(t, spec, err);
        goto out;
    }
    if (spec->n_merges > INT32_MAX)
        return fr_error_set(err, FR_ERR_RANGE, "%s: too many merges (%zu)", src, spec->n_merges);
    if (spec->n_merges && !spec->merge_a)
        return fr_error_set(err, FR_ERR_INVALID, "%s: merges missing", src);
    if (!fr_tok_pairmap_init(&t->merges, spec->n_merges)) goto nomem;
    for (size_t i = 0; i < spec->n_merges; i++) {
        const char *a = spec->merge_a[i], *b = spec->merge_b ? spec->merge_b[i] : NULL;
        size_t la, lb;
        if (!a || (spec->merge_b && !b)) {
            st = fr_error_set(err, FR_ERR_FORMAT, "%s: merge %zu is missing", src, i);
            goto out;
        }
        if (!spec->merge_b) {
            /* "a b": exactly one space, as HF requires. */
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                st = fr_error_set(
                    err, FR_ERR_FORMAT,
                    "%s: merge %zu \"%.64s\" is not two tokens separated by one space", src, i, a);
                goto out;
            }
            la = (size_t)(sp - a);
            b = sp + 1;
            lb = strlen(b);
        } else {
            la = strlen(a);
            lb = strlen(b);
        }
        bool ok_a = true, ok_b = true;
        if (t->byte_mode) {
            ok_a = unmap_bytelevel(a, la, &ka);
            ok_b = unmap_bytelevel(b, lb, &kb);
        } else {
            fr_tok_buf_clear(&ka);
            fr_tok_buf_clear(&kb);
            ok_a = fr_tok_buf_append(&ka, a, la);
            ok_b = fr_tok_buf_append(&kb, b, lb);
        }
        int32_t ia = ok_a ? fr_tok_strmap_get(&t->vocab, ka.data, ka.len) : -1;
        int32_t ib = ok_b ? fr_tok_strmap_get(&t->vocab, kb.data, kb.len) : -1;
        int32_t im = -1;
        if (ia >= 0 && ib >= 0) {
            fr_tok_buf_clear(&key);
            if (!fr_tok_buf_append(&key, ka.data, ka.len) ||
                !fr_tok_buf_append(&key, kb.data, kb.len))
                goto nomem;
            im = fr_tok_strmap_get(&t->vocab, key.data, key.len);
        }
        if (ia < 0 || ib < 0 || im < 0) {
            const char *which = ia < 0 ? "left token" : ib < 0 ? "right token" : "merged token";
            st = fr_error_set(err, FR_ERR_FORMAT,
                              "%s: merge %zu (\"%.*s\" + \"%.*s\"): %s is not in the vocabulary",
                              src, i, (int)(la > 64 ? 64 : la), a, (int)(lb > 64 ? 64 : lb), b,
                              which);
            goto out;
        }
        if (!fr_tok_pairmap_put(&t->merges, ia, ib, (uint32_t)i, im)) goto nomem;
    }
out:
    fr_tok_buf_free(&key);
    fr_tok_buf_free(&ka);
    fr_tok_buf_free(&kb);
    return st;
nomem:
    fr_tok_buf_free(&key);
    fr_tok_buf_free(&ka);
    fr_tok_buf_free(&kb);
    return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory building the BPE model", src);
}

static fr_status build_added(fr_tokenizer *t, const fr_tokenizer_spec *spec, fr_error *err) {
    const char *src = src_name(spec);
    size_t n_types = 0;
    if (spec->token_types)
        for (size_t i = 0; i < spec->n_vocab; i++)
            if (spec->vocab[i] && (spec->token_types[i] == FR_TOK_TYPE_CONTROL ||
                                   spec->token_types[i] == FR_TOK_TYPE_USER_DEFINED))
                n_types++;
    size_t cap = spec->n_added + n_types;
    t->added = calloc(cap ? cap : 1, sizeof *t->added);
    if (!t->added) goto nomem;
    fr_tok_buf blob = {0};
    for (size_t i = 0; i < cap; i++) {
        fr_tok_added a = {0};
        const char *s;
        size_t l;
        if (i < spec->n_added) {
            const fr_tok_added_spec *as = &spec->added[i];
            s = as->content;
            if (!s) {
                fr_tok_buf_free(&blob);
                return fr_error_set(err, FR_ERR_FORMAT, "%s: added token %zu has no content", src,
                                    i);
            }
            l = as->len ? as->len : strlen(s);
            a = (fr_tok_added){
                as->id, 0, 0, as->special, as->lstrip, as->rstrip, as->single_word, as->normalized};
        } else {
            /* GGUF: control and user-defined tokens are matched in the raw text. */
            size_t k = i - spec->n_added, id = 0;
            for (; id < spec->n_vocab; id++) {
                if (!spec->vocab[id] || (spec->token_types[id] != FR_TOK_TYPE_CONTROL &&
                                         spec->token_types[id] != FR_TOK_TYPE_USER_DEFINED))
                    continue;
                if (k-- == 0) break;
            }
            s = spec->vocab[id];
            l = slen(s, spec->vocab_lens, id);
            a.id = (int32_t)id;
            a.special = spec->token_types[id] == FR_TOK_TYPE_CONTROL;
        }
        if (a.id < 0 || a.id >= t->n_ids) {
            fr_tok_buf_free(&blob);
            return fr_error_set(err, FR_ERR_FORMAT,
                                "%s: added token \"%.64s\" has id %d outside "
                                "[0, %d)",
                                src, s, a.id, t->n_ids);
        }
        size_t bad;
        if (!fr_utf8_validate(s, l, &bad)) {
            fr_tok_buf_free(&blob);
            return fr_error_set(err, FR_ERR_FORMAT, "%s: added token %d is not valid UTF-8", src,
                                a.id);
        }
        if (l == 0 || blob.len + l >= UINT32_MAX) continue; /* HF ignores empty added tokens */
        a.off = (uint32_t)blob.len;
        a.len = (uint32_t)l;
        if (!fr_tok_buf_append(&blob, s, l)) {
            fr_tok_buf_free(&blob);
            goto nomem;
        }
        t->added[t->n_added++] = a;
    }
    t->added_blob = blob.data;
    return FR_OK;
nomem:
    return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory for added tokens", src);
}

/* Tries after the normalizers exist: normalized tokens are searched by their normalized text. */
static fr_status build_tries(fr_tokenizer *t, const fr_tokenizer_spec *spec, fr_error *err) {
    fr_tok_buf nb = {0}, one = {0};
    fr_status st = FR_OK;
    for (size_t i = 0; i < t->n_added && !st; i++) {
        const fr_tok_added *a = &t->added[i];
        const char *s = t->added_blob + a->off;
        if (!a->normalized) {
            if (!fr_tok_trie_add(&t->trie_raw, s, a->len, (int32_t)i)) st = FR_ERR_NOMEM;
            continue;
        }
        st = fr_tok_normalize(t, s, a->len, &one, err);
        if (st) break;
        if (one.len && !fr_tok_trie_add(&t->trie_norm, one.data, one.len, (int32_t)i))
            st = FR_ERR_NOMEM;
    }
    fr_tok_buf_free(&nb);
    fr_tok_buf_free(&one);
    if (st == FR_ERR_NOMEM)
        return fr_error_set(err, st, "%s: out of memory for added tokens", src_name(spec));
    return st;
}

static char *dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static fr_status build_components(fr_tokenizer *t, const fr_tokenizer_spec *spec, fr_error *err) {
    const char *src = src_name(spec);
    char what[256];
    fr_status st;
    t->norm = calloc(spec->n_norm ? spec->n_norm : 1, sizeof *t->norm);
    t->pre = calloc(spec->n_pretok ? spec->n_pretok : 1, sizeof *t->pre);
    if (!t->norm || !t->pre) goto nomem;
    for (size_t i = 0; i < spec->n_norm; i++) {
        const fr_tok_norm_spec *ns = &spec->norm[i];
        fr_tok_norm *nm = &t->norm[t->n_norm++];
        nm->kind = ns->kind;
        nm->strip_left = ns->strip_left;
        nm->strip_right = ns->strip_right;
        if (ns->kind <= FR_TOK_NORM_NFKD && !fr_tok_norm_prepare(nm)) goto nomem;
        if (ns->kind == FR_TOK_NORM_PREPEND || ns->kind == FR_TOK_NORM_REPLACE) {
            if (!ns->text)
                return fr_error_set(err, FR_ERR_FORMAT, "%s: normalizer %zu lacks its text", src,
                                    i);
        }
        if (ns->kind == FR_TOK_NORM_PREPEND) {
            nm->text_len = strlen(ns->text);
            if (!(nm->text = dupn(ns->text, nm->text_len))) goto nomem;
        }
        if (ns->kind == FR_TOK_NORM_REPLACE) {
            const char *c = ns->content ? ns->content : "";
            nm->content_len = strlen(c);
            if (!(nm->content = dupn(c, nm->content_len))) goto nomem;
            snprintf(what, sizeof what, "%s: normalizer %zu (Replace)", src, i);
            st =
                fr_tok_regex_compile(&nm->re, ns->text, strlen(ns->text), !ns->is_regex, what, err);
            if (st) return st;
        }
    }
    for (size_t i = 0; i < spec->n_pretok; i++) {
        const fr_tok_pre_spec *ps = &spec->pretok[i];
        fr_tok_pre *p = &t->pre[t->n_pre++];
        p->kind = ps->kind;
        p->behavior = ps->behavior;
        p->invert = ps->invert;
        p->add_prefix_space = ps->add_prefix_space;
        p->use_regex = ps->use_regex;
        switch (ps->kind) {
        case FR_TOK_PRE_SPLIT:
            if (!ps->pattern)
                return fr_error_set(err, FR_ERR_FORMAT,
                                    "%s: pre-tokenizer %zu (Split) lacks a "
                                    "pattern",
                                    src, i);
            if ((unsigned)ps->behavior > FR_TOK_SPLIT_CONTIGUOUS)
                return fr_error_set(err, FR_ERR_FORMAT, "%s: pre-tokenizer %zu: bad behavior", src,
                                    i);
            snprintf(what, sizeof what, "%s: pre-tokenizer %zu (Split)", src, i);
            st = fr_tok_regex_compile(&p->re, ps->pattern, strlen(ps->pattern), !ps->is_regex, what,
                                      err);
            if (st) return st;
            break;
        case FR_TOK_PRE_DIGITS:
            p->behavior = ps->individual_digits ? FR_TOK_SPLIT_ISOLATED : FR_TOK_SPLIT_CONTIGUOUS;
            p->invert = false;
            snprintf(what, sizeof what, "%s: pre-tokenizer %zu (Digits)", src, i);
            st = fr_tok_regex_compile(&p->re, "\\p{N}", 5, false, what, err);
            if (st) return st;
            break;
        case FR_TOK_PRE_METASPACE:
            st = fr_tok_spm_metaspace(p, ps, src, i, err);
            if (st) return st;
            break;
        case FR_TOK_PRE_BYTE_LEVEL:
            if (i + 1 != spec->n_pretok)
                return fr_error_set(err, FR_ERR_UNSUPPORTED,
                                    "%s: pre-tokenizer %zu: steps after "
                                    "ByteLevel are not supported",
                                    src, i);
            t->byte_mode = true;
            if (ps->use_regex) {
                snprintf(what, sizeof what, "%s: pre-tokenizer %zu (ByteLevel)", src, i);
                st = fr_tok_regex_compile(&p->re, gpt2_regex, strlen(gpt2_regex), false, what, err);
                if (st) return st;
            }
            break;
        default:
            return fr_error_set(err, FR_ERR_FORMAT, "%s: pre-tokenizer %zu: unknown kind", src, i);
        }
    }
    return FR_OK;
nomem:
    return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", src);
}

static fr_status check_ids(const fr_tokenizer *t, const char *src, const char *what,
                           const int32_t *ids, size_t n, fr_error *err) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_ids || !(t->id_flags[ids[i]] & FR_TOK_ID_PRESENT))
            return fr_error_set(err, FR_ERR_FORMAT, "%s: %s id %d is not in the vocabulary", src,
                                what, ids[i]);
    return FR_OK;
}

fr_status fr_tokenizer_build(const fr_tokenizer_spec *spec, fr_tokenizer **out, fr_error *err) {
    if (!spec || !out)
        return fr_error_set(err, FR_ERR_INVALID, "fr_tokenizer_build: NULL argument");
    *out = NULL;
    const char *src = src_name(spec);
    if (spec->n_vocab && !spec->vocab)
        return fr_error_set(err, FR_ERR_INVALID, "%s: vocabulary missing", src);
    if (spec->n_vocab > FR_TOK_MAX_IDS)
        return fr_error_set(err, FR_ERR_RANGE, "%s: vocabulary of %zu tokens exceeds %d", src,
                            spec->n_vocab, FR_TOK_MAX_IDS);
    if ((spec->n_added && !spec->added) || (spec->n_norm && !spec->norm) ||
        (spec->n_pretok && !spec->pretok) || (spec->n_prefix && !spec->prefix_ids) ||
        (spec->n_suffix && !spec->suffix_ids))
        return fr_error_set(err, FR_ERR_INVALID, "%s: spec array missing", src);
    if (spec->decoder != FR_TOK_DEC_NONE && spec->decoder != FR_TOK_DEC_BYTE_LEVEL &&
        spec->decoder != FR_TOK_DEC_SPM)
        return fr_error_set(err, FR_ERR_INVALID, "%s: unknown decoder kind", src);
    size_t n_ids = spec->n_vocab;
    for (size_t i = 0; i < spec->n_added; i++) {
        int32_t id = spec->added[i].id;
        if (id < 0 || id >= FR_TOK_MAX_IDS)
            return fr_error_set(err, FR_ERR_FORMAT, "%s: added token %zu has id %d outside [0, %d)",
                                src, i, id, FR_TOK_MAX_IDS);
        if ((size_t)id + 1 > n_ids) n_ids = (size_t)id + 1;
    }
    for (size_t i = 0; i < spec->n_vocab; i++) {
        size_t bad;
        if (spec->vocab[i] &&
            !fr_utf8_validate(spec->vocab[i], slen(spec->vocab[i], spec->vocab_lens, i), &bad))
            return fr_error_set(err, FR_ERR_FORMAT, "%s: token %zu is not valid UTF-8", src, i);
    }

    fr_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", src);
    atomic_flag_clear(&t->cache_busy);
    for (size_t i = 0; i < fr_tok_ucompat_count; i++) {
        char lo[4], hi[4];
        fr_utf8_encode(fr_tok_ucompat_table[i].lo, lo);
        fr_utf8_encode(fr_tok_ucompat_table[i].hi, hi);
        for (unsigned b = (uint8_t)lo[0]; b <= (uint8_t)hi[0]; b++)
            t->ucompat_lead[b] = 1;
    }
    t->n_ids = (int32_t)n_ids;
    t->ignore_merges = spec->ignore_merges;
    t->byte_fallback = spec->byte_fallback;
    t->fuse_unk = spec->fuse_unk;
    t->unk_id = spec->unk_id;
    t->decoder = spec->decoder;
    t->dec_strip_char = spec->dec_strip_char;
    t->dec_strip = spec->dec_strip;
    t->bos = spec->bos_id;
    t->eos = spec->eos_id;
    fr_status st = build_components(t, spec, err);
    if (!st) st = build_added(t, spec, err);
    if (!st) st = build_ids(t, spec, err);
    if (!st) st = build_model(t, spec, err);
    if (!st) st = build_tries(t, spec, err);
    if (!st && t->unk_id >= 0) st = check_ids(t, src, "unk", &t->unk_id, 1, err);
    if (!st && t->bos >= 0) st = check_ids(t, src, "bos", &t->bos, 1, err);
    if (!st && t->eos >= 0) st = check_ids(t, src, "eos", &t->eos, 1, err);
    if (!st) st = check_ids(t, src, "post-processor", spec->prefix_ids, spec->n_prefix, err);
    if (!st) st = check_ids(t, src, "post-processor", spec->suffix_ids, spec->n_suffix, err);
    if (!st) {
        t->prefix = malloc((spec->n_prefix + 1) * sizeof(int32_t));
        t->suffix = malloc((spec->n_suffix + 1) * sizeof(int32_t));
        if (!t->prefix || !t->suffix)
            st = fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", src);
    }
    if (st) {
        fr_tokenizer_free(t);
        return st;
    }
    if (spec->n_prefix) memcpy(t->prefix, spec->prefix_ids, spec->n_prefix * sizeof(int32_t));
    if (spec->n_suffix) memcpy(t->suffix, spec->suffix_ids, spec->n_suffix * sizeof(int32_t));
    t->n_prefix = spec->n_prefix;
    t->n_suffix = spec->n_suffix;
    *out = t;
    return FR_OK;
}
