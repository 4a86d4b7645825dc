/* tokenizer.json -> fr_tokenizer_spec -> fr_tokenizer_build. Every field is checked; unknown
 * component types fail with FR_ERR_UNSUPPORTED naming the type and where it sits. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "tokenizer/tok_impl.h"

#define MAX_STEPS    64
#define MAX_TEMPLATE 64

typedef struct json_ctx {
    const char *path;
    fr_error *err;
    fr_tokenizer_spec spec;
    char const **vocab;
    const char **ma, **mb;
    char *merge_blob;
    fr_tok_added_spec *added;
    fr_tok_norm_spec norm[MAX_STEPS];
    fr_tok_pre_spec pre[MAX_STEPS];
    int32_t prefix[MAX_TEMPLATE], suffix[MAX_TEMPLATE];
    const cJSON *vocab_json;
} json_ctx;

static fr_status bad(json_ctx *c, fr_status code, const char *fmt, const char *a, const char *b) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    return fr_error_set(c->err, code, "%s: %s", c->path, msg);
}

static bool get_bool(const cJSON *o, const char *key, bool def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}

static const char *get_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool as_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d < (1 << 24)) || d != (double)(int32_t)d) return false;
    *id = (int32_t)d;
    return true;
}

/* "pattern": {"String": "..."} or {"Regex": "..."} */
static fr_status get_pattern(json_ctx *c, const cJSON *o, const char *where, const char **pat,
                             bool *is_regex) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const char *s;
    if ((s = get_str(p, "Regex"))) {
        *pat = s;
        *is_regex = true;
    } else if ((s = get_str(p, "String"))) {
        *pat = s;
        *is_regex = false;
    } else {
        return bad(c, FR_ERR_FORMAT,
                   "%s: \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}", where, NULL);
    }
    return FR_OK;
}

static fr_status parse_normalizer(json_ctx *c, const cJSON *o, const char *where) {
    if (!o || cJSON_IsNull(o)) return FR_OK;
    const char *type = get_str(o, "type");
    if (!cJSON_IsObject(o) || !type)
        return bad(c, FR_ERR_FORMAT, "%s: missing \"type\"", where, NULL);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "normalizers");
        if (!cJSON_IsArray(arr))
            return bad(c, FR_ERR_FORMAT, "%s: Sequence without a \"normalizers\" array", where,
                       NULL);
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            fr_status st = parse_normalizer(c, it, where);
            if (st) return st;
        }
        return FR_OK;
    }
    if (c->spec.n_norm == MAX_STEPS) return bad(c, FR_ERR_RANGE, "%s: too many steps", where, NULL);
    fr_tok_norm_spec *n = &c->norm[c->spec.n_norm];
    memset(n, 0, sizeof *n);
    if (!strcmp(type, "NFC"))
        n->kind = FR_TOK_NORM_NFC;
    else if (!strcmp(type, "NFD"))
        n->kind = FR_TOK_NORM_NFD;
    else if (!strcmp(type, "NFKC"))
        n->kind = FR_TOK_NORM_NFKC;
    else if (!strcmp(type, "NFKD"))
        n->kind = FR_TOK_NORM_NFKD;
    else if (!strcmp(type, "Strip")) {
        n->kind = FR_TOK_NORM_STRIP;
        n->strip_left = get_bool(o, "strip_left", true);
        n->strip_right = get_bool(o, "strip_right", true);
    } else if (!strcmp(type, "Prepend")) {
        n->kind = FR_TOK_NORM_PREPEND;
        if (!(n->text = get_str(o, "prepend")))
            return bad(c, FR_ERR_FORMAT, "%s: Prepend without \"prepend\"", where, NULL);
    } else if (!strcmp(type, "Replace")) {
        n->kind = FR_TOK_NORM_REPLACE;
        fr_status st = get_pattern(c, o, where, &n->text, &n->is_regex);
        if (st) return st;
        if (!(n->content = get_str(o, "content")))
            return bad(c, FR_ERR_FORMAT, "%s: Replace without \"content\"", where, NULL);
    } else {
        return bad(c, FR_ERR_UNSUPPORTED, "%s: normalizer type \"%s\" is not supported", where,
                   type);
    }
    c->spec.n_norm++;
    return FR_OK;
}

static fr_status parse_pretok(json_ctx *c, const cJSON *o, const char *where) {
    if (!o || cJSON_IsNull(o)) return FR_OK;
    const char *type = get_str(o, "type");
    if (!cJSON_IsObject(o) || !type)
        return bad(c, FR_ERR_FORMAT, "%s: missing \"type\"", where, NULL);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers");
        if (!cJSON_IsArray(arr))
            return bad(c, FR_ERR_FORMAT, "%s: Sequence without a \"pretokenizers\" array", where,
                       NULL);
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            fr_status st = parse_pretok(c, it, where);
            if (st) return st;
        }
        return FR_OK;
    }
    if (c->spec.n_pretok == MAX_STEPS)
        return bad(c, FR_ERR_RANGE, "%s: too many steps", where, NULL);
    fr_tok_pre_spec *p = &c->pre[c->spec.n_pretok];
    memset(p, 0, sizeof *p);
    if (!strcmp(type, "Split")) {
        p->kind = FR_TOK_PRE_SPLIT;
        fr_status st = get_pattern(c, o, where, &p->pattern, &p->is_regex);
        if (st) return st;
        const char *b = get_str(o, "behavior");
        if (!b) return bad(c, FR_ERR_FORMAT, "%s: Split without \"behavior\"", where, NULL);
        if (!strcmp(b, "Removed"))
            p->behavior = FR_TOK_SPLIT_REMOVED;
        else if (!strcmp(b, "Isolated"))
            p->behavior = FR_TOK_SPLIT_ISOLATED;
        else if (!strcmp(b, "MergedWithPrevious"))
            p->behavior = FR_TOK_SPLIT_MERGED_WITH_PREVIOUS;
        else if (!strcmp(b, "MergedWithNext"))
            p->behavior = FR_TOK_SPLIT_MERGED_WITH_NEXT;
        else if (!strcmp(b, "Contiguous"))
            p->behavior = FR_TOK_SPLIT_CONTIGUOUS;
        else
            return bad(c, FR_ERR_FORMAT, "%s: unknown Split behavior \"%s\"", where, b);
        p->invert = get_bool(o, "invert", false);
    } else if (!strcmp(type, "ByteLevel")) {
        p->kind = FR_TOK_PRE_BYTE_LEVEL;
        p->add_prefix_space = get_bool(o, "add_prefix_space", true);
        p->use_regex = get_bool(o, "use_regex", true);
    } else if (!strcmp(type, "Digits")) {
        p->kind = FR_TOK_PRE_DIGITS;
        p->individual_digits = get_bool(o, "individual_digits", false);
    } else if (!strcmp(type, "Metaspace")) {
        p->kind = FR_TOK_PRE_METASPACE;
        p->replacement = get_str(o, "replacement");
        if (!p->replacement)
            return bad(c, FR_ERR_FORMAT, "%s: Metaspace without \"replacement\"", where, NULL);
        /* Files older than prepend_scheme say add_prefix_space (always / never) and split. */
        const char *scheme = get_str(o, "prepend_scheme");
        if (!scheme)
            p->prepend_scheme = get_bool(o, "add_prefix_space", true) ? FR_TOK_PREPEND_ALWAYS
                                                                      : FR_TOK_PREPEND_NEVER;
        else if (!strcmp(scheme, "always"))
            p->prepend_scheme = FR_TOK_PREPEND_ALWAYS;
        else if (!strcmp(scheme, "first"))
            p->prepend_scheme = FR_TOK_PREPEND_FIRST;
        else if (!strcmp(scheme, "never"))
            p->prepend_scheme = FR_TOK_PREPEND_NEVER;
        else
            return bad(c, FR_ERR_FORMAT, "%s: unknown Metaspace prepend_scheme \"%s\"", where,
                       scheme);
        p->split = get_bool(o, "split", true);
    } else {
        return bad(c, FR_ERR_UNSUPPORTED, "%s: pre-tokenizer type \"%s\" is not supported", where,
                   type);
    }
    c->spec.n_pretok++;
    return FR_OK;
}

/* Ids of the special token named `name` in a TemplateProcessing "special_tokens" map. */
static fr_status template_ids(json_ctx *c, const cJSON *specials, const char *name, int32_t *dst,
                              size_t *n, size_t cap) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(specials, name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids");
    if (!cJSON_IsArray(ids))
        return bad(c, FR_ERR_FORMAT, "post_processor: special token \"%s\" has no \"ids\"", name,
                   NULL);
    const cJSON *it;
    cJSON_ArrayForEach(it, ids) {
        int32_t id;
        if (!as_id(it, &id))
            return bad(c, FR_ERR_FORMAT, "post_processor: special token \"%s\": bad id", name,
                       NULL);
        if (*n == cap) return bad(c, FR_ERR_RANGE, "post_processor: template too long", NULL, NULL);
        dst[(*n)++] = id;
    }
    return FR_OK;
}

/* Wraps the current prefix/suffix with one more processor's tokens (a Sequence applies its
 * processors in order, each seeing the previous result as its single sequence). */
static fr_status wrap(json_ctx *c, const int32_t *pre, size_t npre, const int32_t *suf,
                      size_t nsuf) {
    if (c->spec.n_prefix + npre > MAX_TEMPLATE || c->spec.n_suffix + nsuf > MAX_TEMPLATE)
        return bad(c, FR_ERR_RANGE, "post_processor: template too long", NULL, NULL);
    memmove(c->prefix + npre, c->prefix, c->spec.n_prefix * sizeof(int32_t));
    memcpy(c->prefix, pre, npre * sizeof(int32_t));
    c->spec.n_prefix += npre;
    memcpy(c->suffix + c->spec.n_suffix, suf, nsuf * sizeof(int32_t));
    c->spec.n_suffix += nsuf;
    return FR_OK;
}

static fr_status cls_sep(json_ctx *c, const cJSON *o, const char *key, int32_t *id) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !as_id(cJSON_GetArrayItem(v, 1), id))
        return bad(c, FR_ERR_FORMAT, "post_processor: \"%s\" must be [token, id]", key, NULL);
    return FR_OK;
}

static fr_status parse_post(json_ctx *c, const cJSON *o) {
    if (!o || cJSON_IsNull(o)) return FR_OK;
    const char *type = get_str(o, "type");
    if (!cJSON_IsObject(o) || !type)
        return bad(c, FR_ERR_FORMAT, "post_processor: missing \"type\"", NULL, NULL);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "processors");
        if (!cJSON_IsArray(arr))
            return bad(c, FR_ERR_FORMAT, "post_processor: Sequence without \"processors\"", NULL,
                       NULL);
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            fr_status st = parse_post(c, it);
            if (st) return st;
        }
        return FR_OK;
    }
    if (!strcmp(type, "ByteLevel")) return FR_OK; /* only trims offsets; ids unchanged */
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        int32_t cls, sep;
        fr_status st = cls_sep(c, o, "cls", &cls);
        if (!st) st = cls_sep(c, o, "sep", &sep);
        if (!st) st = wrap(c, &cls, 1, &sep, 1);
        return st;
    }
    if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single");
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
        if (!cJSON_IsArray(single))
            return bad(c, FR_ERR_FORMAT, "post_processor: TemplateProcessing without \"single\"",
                       NULL, NULL);
        int32_t pre[MAX_TEMPLATE], suf[MAX_TEMPLATE];
        size_t npre = 0, nsuf = 0;
        bool seen_a = false;
        const cJSON *it;
        cJSON_ArrayForEach(it, single) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
            const cJSON *sq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
            if (sp) {
                const char *name = get_str(sp, "id");
                if (!name)
                    return bad(c, FR_ERR_FORMAT, "post_processor: SpecialToken without \"id\"",
                               NULL, NULL);
                fr_status st = seen_a ? template_ids(c, specials, name, suf, &nsuf, MAX_TEMPLATE)
                                      : template_ids(c, specials, name, pre, &npre, MAX_TEMPLATE);
                if (st) return st;
            } else if (sq) {
                const char *id = get_str(sq, "id");
                if (!id || strcmp(id, "A") || seen_a)
                    return bad(c, FR_ERR_UNSUPPORTED,
                               "post_processor: single template must use "
                               "sequence \"A\" once",
                               NULL, NULL);
                seen_a = true;
            } else {
                return bad(c, FR_ERR_FORMAT, "post_processor: unknown template item", NULL, NULL);
            }
        }
        if (!seen_a)
            return bad(c, FR_ERR_FORMAT, "post_processor: single template lacks \"A\"", NULL, NULL);
        return wrap(c, pre, npre, suf, nsuf);
    }
    return bad(c, FR_ERR_UNSUPPORTED, "post_processor type \"%s\" is not supported", type, NULL);
}

/* SentencePiece decoders, HF Sequence[Replace, ByteFallback, Fuse, Strip] and its subsets in
 * that order: Replace and ByteFallback act on each token, Strip (start only) on the fused text. */
static fr_status parse_spm_decoder(json_ctx *c, const cJSON *arr) {
    int stage = 0; /* 1 Replace seen, 2 ByteFallback, 3 Fuse, 4 Strip */
    const cJSON *it;
    c->spec.decoder = FR_TOK_DEC_SPM;
    cJSON_ArrayForEach(it, arr) {
        const char *type = get_str(it, "type");
        if (!type)
            return bad(c, FR_ERR_FORMAT, "decoder: Sequence item without \"type\"", NULL, NULL);
        int at = !strcmp(type, "Replace")        ? 1
                 : !strcmp(type, "ByteFallback") ? 2
                 : !strcmp(type, "Fuse")         ? 3
                 : !strcmp(type, "Strip")        ? 4
                                                 : 0;
        if (!at || at <= stage || (at == 4 && stage != 3))
            return bad(c, FR_ERR_UNSUPPORTED,
                       "decoder: Sequence item \"%s\" is not supported there (supported: "
                       "Replace, ByteFallback, Fuse, Strip after Fuse, in that order)",
                       type, NULL);
        stage = at;
        if (at == 1) {
            bool is_regex = false;
            fr_status st = get_pattern(c, it, "decoder Replace", &c->spec.dec_replace, &is_regex);
            if (st) return st;
            c->spec.dec_replace_with = get_str(it, "content");
            if (is_regex || !*c->spec.dec_replace || !c->spec.dec_replace_with)
                return bad(c, FR_ERR_UNSUPPORTED,
                           "decoder Replace: only a non-empty String pattern with a \"content\" "
                           "is supported",
                           NULL, NULL);
        } else if (at == 2) {
            c->spec.dec_byte_fallback = true;
        } else if (at == 4) {
            const char *content = get_str(it, "content");
            const cJSON *start = cJSON_GetObjectItemCaseSensitive(it, "start");
            const cJSON *stop = cJSON_GetObjectItemCaseSensitive(it, "stop");
            uint32_t cp = 0;
            if (!content || !*content ||
                fr_utf8_decode((const uint8_t *)content, strlen(content), &cp) != strlen(content) ||
                !cJSON_IsNumber(start) || start->valuedouble < 0 || start->valuedouble > 1e6)
                return bad(c, FR_ERR_FORMAT,
                           "decoder Strip: needs a one-character \"content\" and a \"start\"", NULL,
                           NULL);
            if (cJSON_IsNumber(stop) && stop->valuedouble != 0)
                return bad(c, FR_ERR_UNSUPPORTED, "decoder Strip: \"stop\" > 0 is not supported",
                           NULL, NULL);
            c->spec.dec_strip_char = cp;
            c->spec.dec_strip = (size_t)start->valuedouble;
        }
    }
    return FR_OK;
}

static fr_status parse_decoder(json_ctx *c, const cJSON *o) {
    if (!o || cJSON_IsNull(o)) {
        c->spec.decoder = FR_TOK_DEC_NONE;
        return FR_OK;
    }
    const char *type = get_str(o, "type");
    if (!cJSON_IsObject(o) || !type)
        return bad(c, FR_ERR_FORMAT, "decoder: missing \"type\"", NULL, NULL);
    if (!strcmp(type, "ByteLevel")) {
        c->spec.decoder = FR_TOK_DEC_BYTE_LEVEL;
        return FR_OK;
    }
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "decoders");
        const char *only =
            cJSON_GetArraySize(arr) == 1 ? get_str(cJSON_GetArrayItem(arr, 0), "type") : NULL;
        if (only && !strcmp(only, "ByteLevel")) return parse_decoder(c, cJSON_GetArrayItem(arr, 0));
        if (cJSON_IsArray(arr)) return parse_spm_decoder(c, arr);
        return bad(c, FR_ERR_FORMAT, "decoder: Sequence without a \"decoders\" array", NULL, NULL);
    }
    return bad(c, FR_ERR_UNSUPPORTED, "decoder type \"%s\" is not supported", type, NULL);
}

static fr_status parse_model(json_ctx *c, const cJSON *m) {
    if (!cJSON_IsObject(m)) return bad(c, FR_ERR_FORMAT, "\"model\" is missing", NULL, NULL);
    const char *type = get_str(m, "type");
    if (type && strcmp(type, "BPE"))
        return bad(c, FR_ERR_UNSUPPORTED, "model type \"%s\" is not supported (only BPE)", type,
                   NULL);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (!cJSON_IsObject(vocab)) return bad(c, FR_ERR_FORMAT, "model.vocab is missing", NULL, NULL);
    if (!cJSON_IsArray(merges)) return bad(c, FR_ERR_FORMAT, "model.merges is missing", NULL, NULL);
    const char *p1 = get_str(m, "continuing_subword_prefix"),
               *p2 = get_str(m, "end_of_word_suffix");
    if ((p1 && *p1) || (p2 && *p2))
        return bad(c, FR_ERR_UNSUPPORTED,
                   "model: continuing_subword_prefix / end_of_word_suffix "
                   "are not supported",
                   NULL, NULL);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble != 0)
        FR_LOG_W("%s: BPE dropout ignored (encoding is deterministic)", c->path);

    /* vocab: token -> id, stored by id */
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        int32_t id;
        if (!as_id(it, &id))
            return bad(c, FR_ERR_FORMAT,
                       "model.vocab[\"%.64s\"]: id must be an integer in "
                       "[0, 2^24)",
                       it->string, NULL);
        if ((size_t)id + 1 > n) n = (size_t)id + 1;
    }
    c->vocab = calloc(n ? n : 1, sizeof *c->vocab);
    if (!c->vocab) return fr_error_set(c->err, FR_ERR_NOMEM, "%s: out of memory", c->path);
    cJSON_ArrayForEach(it, vocab) {
        int32_t id = 0;
        as_id(it, &id);
        if (c->vocab[id]) {
            char num[16];
            snprintf(num, sizeof num, "%d", id);
            return bad(c, FR_ERR_FORMAT, "model.vocab: id %s is used twice (\"%.64s\")", num,
                       it->string);
        }
        c->vocab[id] = it->string;
    }
    c->spec.vocab = c->vocab;
    c->spec.n_vocab = n;
    c->vocab_json = vocab;

    /* merges: "a b" strings or ["a", "b"] pairs, in priority order */
    size_t nm = (size_t)cJSON_GetArraySize(merges), blob = 0, i = 0;
    cJSON_ArrayForEach(it, merges) if (cJSON_IsString(it)) blob += strlen(it->valuestring) + 1;
    c->ma = calloc(nm ? nm : 1, sizeof *c->ma);
    c->mb = calloc(nm ? nm : 1, sizeof *c->mb);
    c->merge_blob = malloc(blob ? blob : 1);
    if (!c->ma || !c->mb || !c->merge_blob)
        return fr_error_set(c->err, FR_ERR_NOMEM, "%s: out of memory", c->path);
    char *w = c->merge_blob;
    cJSON_ArrayForEach(it, merges) {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", i);
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return bad(c, FR_ERR_FORMAT,
                           "model.merges[%s]: \"%.64s\" is not two tokens "
                           "separated by one space",
                           idx, s);
            size_t l = strlen(s);
            memcpy(w, s, l + 1);
            w[sp - s] = '\0';
            c->ma[i] = w;
            c->mb[i] = w + (sp - s) + 1;
            w += l + 1;
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            c->ma[i] = cJSON_GetArrayItem(it, 0)->valuestring;
            c->mb[i] = cJSON_GetArrayItem(it, 1)->valuestring;
        } else {
            return bad(c, FR_ERR_FORMAT, "model.merges[%s]: expected \"a b\" or [\"a\", \"b\"]",
                       idx, NULL);
        }
        i++;
    }
    c->spec.n_merges = nm;
    c->spec.merge_a = c->ma;
    c->spec.merge_b = c->mb;

    c->spec.ignore_merges = get_bool(m, "ignore_merges", false);
    c->spec.byte_fallback = get_bool(m, "byte_fallback", false);
    c->spec.fuse_unk = get_bool(m, "fuse_unk", false);
    const char *unk = get_str(m, "unk_token");
    if (unk) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(vocab, unk);
        if (!as_id(u, &c->spec.unk_id))
            return bad(c, FR_ERR_FORMAT, "model.unk_token \"%.64s\" is not in the vocabulary", unk,
                       NULL);
    }
    return FR_OK;
}

static fr_status parse_added(json_ctx *c, const cJSON *arr) {
    if (!arr || cJSON_IsNull(arr)) return FR_OK;
    if (!cJSON_IsArray(arr))
        return bad(c, FR_ERR_FORMAT, "\"added_tokens\" is not an array", NULL, NULL);
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    c->added = calloc(n ? n : 1, sizeof *c->added);
    if (!c->added) return fr_error_set(c->err, FR_ERR_NOMEM, "%s: out of memory", c->path);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", i);
        fr_tok_added_spec *a = &c->added[i];
        const char *content = get_str(it, "content");
        if (!content || !as_id(cJSON_GetObjectItemCaseSensitive(it, "id"), &a->id))
            return bad(c, FR_ERR_FORMAT, "added_tokens[%s]: needs \"id\" and \"content\"", idx,
                       NULL);
        a->content = content;
        a->single_word = get_bool(it, "single_word", false);
        a->lstrip = get_bool(it, "lstrip", false);
        a->rstrip = get_bool(it, "rstrip", false);
        a->normalized = get_bool(it, "normalized", true);
        a->special = get_bool(it, "special", false);
        i++;
    }
    c->spec.added = c->added;
    c->spec.n_added = n;
    return FR_OK;
}

static void *read_all(const char *path, size_t *len, fr_error *err, fr_status *st) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        *st = fr_error_set(err, FR_ERR_IO, "%s: cannot open", path);
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap > ((size_t)1 << 31)) {
                *st = fr_error_set(err, FR_ERR_RANGE, "%s: larger than 2 GiB", path);
                goto fail;
            }
            cap = cap ? cap * 2 : (1 << 20);
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                *st = fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
                goto fail;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) {
        *st = fr_error_set(err, FR_ERR_IO, "%s: read error", path);
        goto fail;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    fclose(f);
    free(buf);
    return NULL;
}

static cJSON *parse_file(const char *path, fr_error *err, fr_status *st) {
    size_t len;
    char *buf = read_all(path, &len, err, st);
    if (!buf) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, false);
    if (!root) {
        size_t off = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : len;
        *st = fr_error_set(err, FR_ERR_FORMAT, "%s: invalid JSON near byte %zu", path, off);
    }
    free(buf);
    return root;
}

/* bos_token / eos_token in tokenizer_config.json: a string or {"content": ...}. */
static int32_t config_token(const cJSON *cfg, const char *key, const fr_tokenizer *t) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : get_str(v, "content");
    if (!s) return -1;
    return fr_tokenizer_find(t, s, strlen(s));
}

fr_status fr_tokenizer_load_json(const char *path, const char *config_path, fr_tokenizer **out,
                                 fr_error *err) {
    if (!path || !out)
        return fr_error_set(err, FR_ERR_INVALID, "fr_tokenizer_load_json: NULL argument");
    *out = NULL;
    fr_status st = FR_OK;
    cJSON *root = parse_file(path, err, &st);
    if (!root) return st;
    json_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        cJSON_Delete(root);
        return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
    }
    c->path = path;
    c->err = err;
    fr_tokenizer_spec_init(&c->spec);
    c->spec.source = path;
    c->spec.norm = c->norm;
    c->spec.pretok = c->pre;
    c->spec.prefix_ids = c->prefix;
    c->spec.suffix_ids = c->suffix;
    if (!cJSON_IsObject(root))
        st = bad(c, FR_ERR_FORMAT, "top level is not a JSON object", NULL, NULL);
    if (!st) st = parse_model(c, cJSON_GetObjectItemCaseSensitive(root, "model"));
    if (!st) st = parse_added(c, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"));
    if (!st)
        st =
            parse_normalizer(c, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer");
    if (!st)
        st = parse_pretok(c, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"),
                          "pre_tokenizer");
    if (!st) st = parse_post(c, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    if (!st) st = parse_decoder(c, cJSON_GetObjectItemCaseSensitive(root, "decoder"));
    fr_tokenizer *t = NULL;
    if (!st) st = fr_tokenizer_build(&c->spec, &t, err);
    if (!st) {
        /* bos/eos: tokenizer_config.json when present, else the post-processor's template. */
        cJSON *cfg = NULL;
        fr_status cst = FR_OK;
        if (config_path) {
            FILE *f = fopen(config_path, "rb");
            if (f) {
                fclose(f);
                fr_error cerr;
                cfg = parse_file(config_path, &cerr, &cst);
                if (!cfg) FR_LOG_W("%s (ignored)", cerr.msg);
            }
        }
        if (cfg) {
            t->bos = config_token(cfg, "bos_token", t);
            t->eos = config_token(cfg, "eos_token", t);
            cJSON_Delete(cfg);
        } else {
            if (t->n_prefix) t->bos = t->prefix[0];
            if (t->n_suffix) t->eos = t->suffix[t->n_suffix - 1];
        }
    }
    free(c->vocab);
    free(c->ma);
    free(c->mb);
    free(c->merge_blob);
    free(c->added);
    free(c);
    cJSON_Delete(root);
    if (st) return st;
    *out = t;
    return FR_OK;
}
