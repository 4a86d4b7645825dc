/* A Hugging Face byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json + chat
 * template) -> the tokenizer.* metadata of a GGUF file, as llama.cpp's converter writes it:
 * tokens padded to the model's vocabulary with "[PADn]" (type UNUSED), added tokens CONTROL when
 * special else USER_DEFINED, merges as "a b" strings, and a tokenizer.ggml.pre name whose
 * pre-tokenizer (fr_tokenizer_gguf_pretok) is exactly the one tokenizer.json describes.
 * A SentencePiece-style BPE (byte_fallback: Llama 2, Mistral) becomes a "llama" tokenizer instead:
 * no merges but a score per token, derived from the merge ranks (a token's score is minus the
 * rank of the first merge that makes it), which merges exactly as the ranks do. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/log.h"
#include "tokenizer/template.h"
#include "tokenizer/tok_gguf.h"
#include "tokenizer/tok_map.h"
#include "tokenizer/tokenizer.h"

#define MAX_JSON_BYTES ((size_t)256 << 20)
#define MAX_STEPS      8

/* The GPT-2 regex a ByteLevel(use_regex = true) step applies (as in tok_gguf_pre.c). */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

typedef struct {
    const char *file;
    fr_error *err;
    const char *regex[MAX_STEPS]; /* Isolated splits in order, then a byte-level step */
    int n_regex;
} pre_ctx;

static fr_status pre_unsupported(pre_ctx *p, const char *what) {
    return fr_error_set(p->err, FR_ERR_UNSUPPORTED,
                        "%s: pre_tokenizer: %s cannot be expressed as a GGUF tokenizer.ggml.pre",
                        p->file, what);
}

static fr_status pre_step(pre_ctx *p, const cJSON *o, bool *byte_level) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (!cJSON_IsString(type)) return pre_unsupported(p, "a step without a type");
    const char *t = type->valuestring;
    if (*byte_level) return pre_unsupported(p, "a step after ByteLevel");
    if (p->n_regex >= MAX_STEPS) return pre_unsupported(p, "this many steps");
    if (!strcmp(t, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers");
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            fr_status st = pre_step(p, it, byte_level);
            if (st) return st;
        }
        return FR_OK;
    }
    if (!strcmp(t, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(o, "behavior");
        if (!cJSON_IsString(re) || !cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") ||
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "invert")))
            return pre_unsupported(p, "a Split that is not an Isolated regex");
        p->regex[p->n_regex++] = re->valuestring;
        return FR_OK;
    }
    if (!strcmp(t, "Digits")) {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "individual_digits")))
            return pre_unsupported(p, "Digits without individual_digits");
        p->regex[p->n_regex++] = "\\p{N}";
        return FR_OK;
    }
    if (!strcmp(t, "ByteLevel")) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "add_prefix_space")))
            return pre_unsupported(p, "ByteLevel with add_prefix_space");
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(o, "use_regex");
        if (!ur || cJSON_IsTrue(ur)) p->regex[p->n_regex++] = RE_GPT2;
        *byte_level = true;
        return FR_OK;
    }
    return pre_unsupported(p, t);
}

/* The tokenizer.ggml.pre name whose steps equal the ones tokenizer.json describes. */
static fr_status pre_name(pre_ctx *p, const cJSON *pre, bool ignore_merges, const char **name) {
    bool byte_level = false;
    fr_status st = pre ? pre_step(p, pre, &byte_level) : pre_unsupported(p, "no pre_tokenizer");
    if (st) return st;
    if (!byte_level) return pre_unsupported(p, "a pre_tokenizer without ByteLevel");
    static const char *const names[] = {"llama-bpe", "qwen2", "smollm", "gpt-2", "default"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        fr_tok_pre_spec steps[MAX_STEPS];
        size_t n = 0;
        bool im = false;
        if (fr_tokenizer_gguf_pretok(names[i], steps, MAX_STEPS, &n, &im, NULL)) continue;
        if (im != ignore_merges || (int)n != p->n_regex + 1) continue;
        bool same = steps[n - 1].kind == FR_TOK_PRE_BYTE_LEVEL;
        for (int k = 0; same && k < p->n_regex; k++)
            same = steps[k].kind == FR_TOK_PRE_SPLIT && !strcmp(steps[k].pattern, p->regex[k]);
        if (same) {
            *name = names[i];
            return FR_OK;
        }
    }
    return pre_unsupported(p, "this combination of regexes (not one of llama-bpe, qwen2, smollm, "
                              "gpt-2)");
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static cJSON *read_json(const char *path, fr_status *st, fr_error *err) {
    char *text = NULL;
    size_t len = 0;
    *st = fr_chat_read_file(path, MAX_JSON_BYTES, &text, &len, err);
    if (*st) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        *st = fr_error_set(err, FR_ERR_FORMAT, "%s: malformed JSON or not an object", path);
        return NULL;
    }
    return j;
}

/* "<s>" or {"content": "<s>"} */
static const char *special_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

static int32_t find_token(const char *const *tokens, int n, const char *s) {
    if (!s) return -1;
    for (int i = 0; i < n; i++)
        if (tokens[i] && !strcmp(tokens[i], s)) return i;
    return -1;
}

/* add_bos / add_eos from a TemplateProcessing post-processor (possibly inside a Sequence). */
static void template_specials(const cJSON *post, bool *bos, bool *eos) {
    if (!post) return;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(post, "type");
    if (!cJSON_IsString(type)) return;
    if (!strcmp(type->valuestring, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(post, "processors"))
            template_specials(it, bos, eos);
        return;
    }
    if (strcmp(type->valuestring, "TemplateProcessing")) return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(post, "single");
    int n = cJSON_GetArraySize(single);
    if (n < 1) return;
    *bos = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, 0), "SpecialToken") != NULL;
    *eos = n > 1 &&
           cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, n - 1), "SpecialToken");
}

/* The chat template text as transformers finds it: chat_template.jinja, chat_template.json,
 * tokenizer_config.json's chat_template (a string, or the "default" of a named list). */
static char *chat_template_text(const char *dir, const cJSON *cfg, fr_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    char *text = NULL;
    if (file_exists(path) && !fr_chat_read_file(path, MAX_JSON_BYTES, &text, NULL, err))
        return text;
    const cJSON *field = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    cJSON *ct = NULL;
    snprintf(path, sizeof path, "%s/chat_template.json", dir);
    if (file_exists(path)) {
        fr_status st;
        ct = read_json(path, &st, err);
        if (ct) field = cJSON_GetObjectItemCaseSensitive(ct, "chat_template");
    }
    const char *s = NULL;
    if (cJSON_IsString(field)) {
        s = field->valuestring;
    } else if (cJSON_IsArray(field)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, field) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
            const cJSON *tp = cJSON_GetObjectItemCaseSensitive(it, "template");
            if (cJSON_IsString(nm) && cJSON_IsString(tp) && !strcmp(nm->valuestring, "default"))
                s = tp->valuestring;
        }
    }
    text = s ? strdup(s) : NULL;
    cJSON_Delete(ct);
    return text;
}

typedef struct {
    const char **tokens;
    int32_t *types;
    char **owned; /* "[PADn]" strings and joined merges */
    size_t n_owned;
    const char **merges;
    size_t n_merges;
} tok_tables;

static void tables_free(tok_tables *t, int vocab) {
    (void)vocab;
    for (size_t i = 0; i < t->n_owned; i++)
        free(t->owned[i]);
    free(t->owned);
    free(t->tokens);
    free(t->types);
    free(t->merges);
}

static char *own(tok_tables *t, char *s) {
    if (s) t->owned[t->n_owned++] = s;
    return s;
}

static fr_status fill_vocab(const char *file, const cJSON *model, const cJSON *added, int vocab,
                            tok_tables *t, fr_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(v))
        return fr_error_set(err, FR_ERR_FORMAT, "%s: model.vocab missing or not an object", file);
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!(d >= 0 && d < vocab) || d != (double)(int)d)
            return fr_error_set(err, FR_ERR_FORMAT,
                                "%s: model.vocab entry \"%.64s\" has id %g, not below the model's "
                                "vocab_size %d",
                                file, it->string, d, vocab);
        const int id = (int)d;
        if (t->tokens[id])
            return fr_error_set(err, FR_ERR_FORMAT, "%s: token id %d appears twice", file, id);
        t->tokens[id] = it->string;
        t->types[id] = FR_TOK_TYPE_NORMAL;
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        double d = cJSON_IsNumber(id) ? id->valuedouble : -1;
        if (!cJSON_IsString(content) || !(d >= 0 && d < vocab) || d != (double)(int)d)
            return fr_error_set(err, FR_ERR_FORMAT,
                                "%s: added token \"%.64s\" has no content or an id outside the "
                                "model's vocab_size %d",
                                file, cJSON_IsString(content) ? content->valuestring : "?", vocab);
        t->tokens[(int)d] = content->valuestring;
        t->types[(int)d] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special"))
                               ? FR_TOK_TYPE_CONTROL
                               : FR_TOK_TYPE_USER_DEFINED;
    }
    for (int i = 0; i < vocab; i++) {
        if (t->tokens[i]) continue;
        char buf[32];
        snprintf(buf, sizeof buf, "[PAD%d]", i);
        t->tokens[i] = own(t, strdup(buf));
        t->types[i] = FR_TOK_TYPE_UNUSED;
        if (!t->tokens[i]) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", file);
    }
    return FR_OK;
}

static fr_status fill_merges(const char *file, const cJSON *model, tok_tables *t, fr_error *err) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(model, "merges");
    int n = cJSON_GetArraySize(m);
    t->merges = malloc(sizeof *t->merges * (size_t)(n > 0 ? n : 1));
    if (!t->merges) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", file);
    const cJSON *it;
    cJSON_ArrayForEach(it, m) {
        if (cJSON_IsString(it)) {
            t->merges[t->n_merges++] = it->valuestring;
            continue;
        }
        const cJSON *a = cJSON_GetArrayItem(it, 0), *b = cJSON_GetArrayItem(it, 1);
        if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 2 || !cJSON_IsString(a) ||
            !cJSON_IsString(b))
            return fr_error_set(err, FR_ERR_FORMAT,
                                "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", file,
                                t->n_merges);
        size_t la = strlen(a->valuestring), lb = strlen(b->valuestring);
        char *s = own(t, malloc(la + lb + 2));
        if (!s) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", file);
        memcpy(s, a->valuestring, la);
        s[la] = ' ';
        memcpy(s + la + 1, b->valuestring, lb + 1);
        t->merges[t->n_merges++] = s;
    }
    return FR_OK;
}

/* ---- SentencePiece BPE ---- */

#define METASPACE "\xe2\x96\x81" /* U+2581 */

static bool type_is(const cJSON *o, const char *type) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(t) && !strcmp(t->valuestring, type);
}

static bool str_is(const cJSON *o, const char *key, const char *want) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && !strcmp(v->valuestring, want);
}

/* The two layouts SentencePiece conversions have: normalizer [Prepend("▁")] + Replace(" ", "▁")
 * and no pre-tokenizer (transformers' legacy form), or no normalizer and Metaspace("▁", no
 * split). Either is tokenizer.ggml.add_space_prefix. */
static fr_status spm_layout(const char *file, const cJSON *tj, bool *space_prefix, fr_error *err) {
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(tj, "normalizer");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(tj, "pre_tokenizer");
    const bool has_norm = norm && !cJSON_IsNull(norm), has_pre = pre && !cJSON_IsNull(pre);
    if (has_norm && !has_pre) {
        const cJSON *list = type_is(norm, "Sequence")
                                ? cJSON_GetObjectItemCaseSensitive(norm, "normalizers")
                                : NULL;
        int n = list ? cJSON_GetArraySize(list) : 1;
        const cJSON *last = list ? cJSON_GetArrayItem(list, n - 1) : norm;
        const cJSON *first = list ? cJSON_GetArrayItem(list, 0) : norm;
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(last, "pattern");
        bool replace = type_is(last, "Replace") && str_is(pat, "String", " ") &&
                       str_is(last, "content", METASPACE);
        bool prepend = n == 2 && type_is(first, "Prepend") && str_is(first, "prepend", METASPACE);
        if (replace && (n == 1 || prepend)) {
            *space_prefix = prepend;
            return FR_OK;
        }
    } else if (!has_norm && has_pre && type_is(pre, "Metaspace") &&
               str_is(pre, "replacement", METASPACE) &&
               !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pre, "split"))) {
        const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(pre, "prepend_scheme");
        if (cJSON_IsString(scheme)) {
            *space_prefix = strcmp(scheme->valuestring, "never") != 0;
            if (!strcmp(scheme->valuestring, "first"))
                FR_LOG_W("%s: Metaspace prepend_scheme \"first\" has no GGUF equivalent: the GGUF "
                         "tokenizer also puts a \"\xe2\x96\x81\" after each special token, as "
                         "llama.cpp does",
                         file);
        } else {
            *space_prefix =
                !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(pre, "add_prefix_space"));
        }
        return FR_OK;
    }
    return fr_error_set(err, FR_ERR_UNSUPPORTED,
                        "%s: a byte_fallback BPE tokenizer can be written to GGUF only with "
                        "SentencePiece's normalizer (Prepend + Replace of \" \") or a Metaspace "
                        "pre-tokenizer without split",
                        file);
}

/* Scores from merge ranks, BYTE type for <0xXX> tokens, UNKNOWN for the unk token. */
static fr_status spm_scores(const char *file, const cJSON *model, int vocab, tok_tables *t,
                            float *scores, fr_error *err) {
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const int n = cJSON_GetArraySize(merges);
    if (n >= (1 << 24))
        return fr_error_set(err, FR_ERR_RANGE, "%s: %d merges are too many for float scores", file,
                            n);
    fr_tok_strmap map = {0};
    fr_tok_buf key = {0};
    fr_status st = FR_OK;
    if (!fr_tok_strmap_init(&map, (size_t)vocab)) goto nomem;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    for (int i = 0; i < vocab; i++) {
        const char *s = t->tokens[i];
        unsigned b;
        char tail;
        scores[i] = -(float)n - 1; /* made by no merge */
        if (t->types[i] == FR_TOK_TYPE_NORMAL && strlen(s) == 6 &&
            sscanf(s, "<0x%2X%c", &b, &tail) == 2 && tail == '>')
            t->types[i] = FR_TOK_TYPE_BYTE;
        if (cJSON_IsString(unk) && !strcmp(s, unk->valuestring)) t->types[i] = FR_TOK_TYPE_UNKNOWN;
        if (t->types[i] == FR_TOK_TYPE_NORMAL && !fr_tok_strmap_put(&map, s, strlen(s), i, NULL))
            goto nomem;
    }
    int r = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, merges) {
        const cJSON *a = cJSON_GetArrayItem(it, 0), *b = cJSON_GetArrayItem(it, 1);
        fr_tok_buf_clear(&key);
        bool ok;
        if (cJSON_IsString(it)) {
            const char *sp = strchr(it->valuestring, ' ');
            ok = sp && fr_tok_buf_append(&key, it->valuestring, (size_t)(sp - it->valuestring)) &&
                 fr_tok_buf_append(&key, sp + 1, strlen(sp + 1));
        } else {
            ok = cJSON_IsString(a) && cJSON_IsString(b) &&
                 fr_tok_buf_append(&key, a->valuestring, strlen(a->valuestring)) &&
                 fr_tok_buf_append(&key, b->valuestring, strlen(b->valuestring));
        }
        int32_t id = ok ? fr_tok_strmap_get(&map, key.data, key.len) : -1;
        if (id < 0) {
            st =
                fr_error_set(err, FR_ERR_FORMAT,
                             "%s: model.merges[%d] is malformed or makes no normal token", file, r);
            goto done;
        }
        if (scores[id] < -(float)r) scores[id] = -(float)r;
        r++;
    }
    goto done;
nomem:
    st = fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", file);
done:
    fr_tok_strmap_free(&map);
    fr_tok_buf_free(&key);
    return st;
}

fr_status fr_tokenizer_json_to_gguf(const char *dir, int vocab, int32_t bos, const int32_t *eos,
                                    int n_eos, fr_gguf_writer *w, fr_error *err) {
    char file[4200], cfg_file[4200];
    snprintf(file, sizeof file, "%s/tokenizer.json", dir);
    snprintf(cfg_file, sizeof cfg_file, "%s/tokenizer_config.json", dir);
    if (!file_exists(file))
        return fr_error_set(err, FR_ERR_NOT_FOUND, "%s: no tokenizer.json", dir);
    fr_status st;
    cJSON *tj = read_json(file, &st, err), *cfg = NULL;
    if (!tj) return st;
    if (file_exists(cfg_file) && !(cfg = read_json(cfg_file, &st, err))) {
        cJSON_Delete(tj);
        return st;
    }
    tok_tables t = {0};
    char *tmpl = NULL;
    float *scores = NULL;
    bool space_prefix = true;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(tj, "added_tokens");
    if (!cJSON_IsString(mtype) || strcmp(mtype->valuestring, "BPE")) {
        st = fr_error_set(err, FR_ERR_UNSUPPORTED,
                          "%s: only BPE tokenizers (byte-level, or SentencePiece-style with "
                          "byte_fallback) can be written to GGUF",
                          file);
        goto done;
    }
    const bool spm = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
    const char *pre = "default";
    if (spm) {
        if ((st = spm_layout(file, tj, &space_prefix, err))) goto done;
    } else {
        const cJSON *norm = cJSON_GetObjectItemCaseSensitive(tj, "normalizer");
        if (norm && !cJSON_IsNull(norm))
            FR_LOG_W("%s: the normalizer has no GGUF equivalent and is left out (llama.cpp does "
                     "the same)",
                     file);
        pre_ctx pc = {file, err, {0}, 0};
        const bool ignore_merges =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
        if ((st = pre_name(&pc, cJSON_GetObjectItemCaseSensitive(tj, "pre_tokenizer"),
                           ignore_merges, &pre)))
            goto done;
    }
    t.tokens = calloc((size_t)vocab, sizeof *t.tokens);
    t.types = calloc((size_t)vocab, sizeof *t.types);
    const int n_merges_max = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(model, "merges"));
    t.owned = calloc((size_t)vocab + (size_t)n_merges_max + 1, sizeof *t.owned);
    scores = spm ? malloc((size_t)vocab * sizeof *scores) : NULL;
    if (!t.tokens || !t.types || !t.owned || (spm && !scores)) {
        st = fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", file);
        goto done;
    }
    if ((st = fill_vocab(file, model, added, vocab, &t, err)) ||
        (st = spm ? spm_scores(file, model, vocab, &t, scores, err)
                  : fill_merges(file, model, &t, err)))
        goto done;

    /* special tokens: tokenizer_config.json's names, else the model config's ids */
    int32_t bos_id = bos, eos_id = n_eos > 0 ? eos[0] : -1, unk_id = -1, pad_id = -1;
    bool add_bos = false, add_eos = false;
    template_specials(cJSON_GetObjectItemCaseSensitive(tj, "post_processor"), &add_bos, &add_eos);
    if (cfg) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(cfg, "bos_token");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(cfg, "eos_token");
        int32_t id;
        if ((id = find_token(t.tokens, vocab, special_text(b))) >= 0) bos_id = id;
        if ((id = find_token(t.tokens, vocab, special_text(e))) >= 0) eos_id = id;
        unk_id = find_token(t.tokens, vocab,
                            special_text(cJSON_GetObjectItemCaseSensitive(cfg, "unk_token")));
        pad_id = find_token(t.tokens, vocab,
                            special_text(cJSON_GetObjectItemCaseSensitive(cfg, "pad_token")));
        const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
        const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
        if (cJSON_IsBool(ab)) add_bos = cJSON_IsTrue(ab);
        if (cJSON_IsBool(ae)) add_eos = cJSON_IsTrue(ae);
    }
    /* another end id of generation_config.json, as llama.cpp's end-of-turn token */
    int32_t eot_id = -1;
    for (int i = 0; i < n_eos && eot_id < 0; i++)
        if (eos[i] != eos_id) eot_id = eos[i];

    if ((st = fr_gguf_writer_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2", err)) ||
        (st = fr_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, err)) ||
        (st = fr_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", t.tokens, (uint64_t)vocab,
                                         err)) ||
        (st = fr_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", FR_GGUF_I32, t.types,
                                     (uint64_t)vocab, err)))
        goto done;
    if (spm)
        st = fr_gguf_writer_set_arr(w, "tokenizer.ggml.scores", FR_GGUF_F32, scores,
                                    (uint64_t)vocab, err);
    if (!st && spm)
        st = fr_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", space_prefix, err);
    if (!st && !spm)
        st = fr_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", t.merges, t.n_merges, err);
    if (st) goto done;
    const struct {
        const char *key;
        int32_t id;
    } ids[] = {{"tokenizer.ggml.bos_token_id", bos_id},
               {"tokenizer.ggml.eos_token_id", eos_id},
               {"tokenizer.ggml.eot_token_id", eot_id},
               {"tokenizer.ggml.unknown_token_id", unk_id},
               {"tokenizer.ggml.padding_token_id", pad_id}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0] && !st; i++)
        if (ids[i].id >= 0 && ids[i].id < vocab)
            st = fr_gguf_writer_set_u32(w, ids[i].key, (uint32_t)ids[i].id, err);
    if (!st) st = fr_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos, err);
    if (!st) st = fr_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", add_eos, err);
    if (st) goto done;
    tmpl = chat_template_text(dir, cfg, err);
    if (tmpl) st = fr_gguf_writer_set_str(w, "tokenizer.chat_template", tmpl, err);
done:
    free(tmpl);
    free(scores);
    tables_free(&t, vocab);
    cJSON_Delete(cfg);
    cJSON_Delete(tj);
    return st;
}
