/* Tokenizer against Hugging Face: the real Qwen3 and Llama 3 tokenizer.json files and the
 * fixtures made with HF tokenizers (ids without and with special tokens, decoded text), the
 * streaming decoder, the GGUF-style builder, and malformed tokenizer.json files. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "common/testutil.h"
#include "ferrum.h"
#include "model/gguf.h"
#include "tokenizer/tok_gguf.h"
#include "tokenizer/tokenizer.h"

/* ---------------------------------------------------------------- helpers */

static bool valid_utf8(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t l =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (l <= 0) return false;
        i += (size_t)l;
    }
    return true;
}

static bool ids_equal(const int32_t *a, size_t na, const cJSON *arr) {
    if (!cJSON_IsArray(arr) || (size_t)cJSON_GetArraySize(arr) != na) return false;
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) if (!cJSON_IsNumber(it) || it->valueint != a[i++]) return false;
    return true;
}

static int32_t *json_ids(const cJSON *arr, size_t *n) {
    *n = (size_t)cJSON_GetArraySize(arr);
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) ids[i++] = it->valueint;
    return ids;
}

/* Streams ids through a detokenizer; returns the concatenation (malloc'd) and checks that every
 * piece is complete UTF-8. */
static char *stream_decode(const fr_tokenizer *tok, const int32_t *ids, size_t n, bool skip,
                           size_t *len, bool *pieces_valid) {
    fr_error err = {0};
    fr_detokenizer *d = NULL;
    *pieces_valid = true;
    if (fr_detokenizer_new(tok, skip, &d, &err)) return NULL;
    size_t cap = 64, used = 0;
    char *out = malloc(cap);
    for (size_t i = 0; i <= n; i++) {
        const char *piece;
        size_t pl;
        fr_status st = i < n ? fr_detokenizer_push(d, ids[i], &piece, &pl, &err)
                             : fr_detokenizer_finish(d, &piece, &pl, &err);
        if (st) {
            free(out);
            fr_detokenizer_free(d);
            return NULL;
        }
        if (!valid_utf8(piece, pl)) *pieces_valid = false;
        while (used + pl + 1 > cap)
            out = realloc(out, cap *= 2);
        memcpy(out + used, piece, pl);
        used += pl;
    }
    out[used] = '\0';
    *len = used;
    fr_detokenizer_free(d);
    return out;
}

static cJSON *load_json(const char *path) {
    size_t len;
    char *buf = fr_test_read_file(path, &len);
    if (!buf) return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    return j;
}

/* ---------------------------------------------------------------- fixtures */

typedef struct fixture_stats {
    int lines, ids_ok, special_ok, decode_ok, stream_ok;
} fixture_stats;

/* ids of special added tokens, from tokenizer.json itself */
static bool *special_set(const char *name, size_t vocab) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "%s/tokenizer.json", name);
    cJSON *j = load_json(fr_test_tokenizer_path(rel, path, sizeof path));
    bool *sp = calloc(vocab, 1);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "added_tokens")) {
        int id = cJSON_GetObjectItem(it, "id")->valueint;
        if (id >= 0 && (size_t)id < vocab && cJSON_IsTrue(cJSON_GetObjectItem(it, "special")))
            sp[id] = true;
    }
    cJSON_Delete(j);
    return sp;
}

static fixture_stats run_fixture(const fr_tokenizer *tok, const char *name, bool check_special,
                                 bool check_decode) {
    fixture_stats fs = {0};
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "fixtures/tokenizer/%s.jsonl", name);
    size_t len;
    char *buf = fr_test_read_file(fr_test_data_path(rel, path, sizeof path), &len);
    CHECK(buf != NULL, "cannot read %s", path);
    if (!buf) return fs;
    bool *special = check_decode ? special_set(name, fr_tokenizer_vocab_size(tok)) : NULL;
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (!*line) continue;
        cJSON *j = cJSON_Parse(line);
        CHECK(j != NULL, "%s line %d: bad JSON", name, fs.lines + 1);
        if (!j) continue;
        fs.lines++;
        const cJSON *jt = cJSON_GetObjectItem(j, "text");
        const char *text = jt->valuestring;
        fr_error err = {0};
        int32_t *ids = NULL;
        size_t n = 0;
        fr_status st = fr_tokenizer_encode(tok, text, strlen(text), false, &ids, &n, &err);
        bool ok = !st && ids_equal(ids, n, cJSON_GetObjectItem(j, "ids"));
        fs.ids_ok += ok;
        CHECK(ok, "%s line %d: ids differ for %.60s (%s)", name, fs.lines, text, err.msg);
        free(ids);
        if (check_special) {
            st = fr_tokenizer_encode(tok, text, strlen(text), true, &ids, &n, &err);
            ok = !st && ids_equal(ids, n, cJSON_GetObjectItem(j, "ids_with_special"));
            fs.special_ok += ok;
            CHECK(ok, "%s line %d: ids_with_special differ (%s)", name, fs.lines, err.msg);
            free(ids);
        }
        if (check_decode) {
            size_t nref;
            int32_t *ref = json_ids(cJSON_GetObjectItem(j, "ids"), &nref);
            char *dec = NULL;
            size_t dlen = 0;
            const char *want = cJSON_GetObjectItem(j, "decoded")->valuestring;
            st = fr_tokenizer_decode(tok, ref, nref, false, &dec, &dlen, &err);
            ok = !st && dlen == strlen(want) && !memcmp(dec, want, dlen);
            fs.decode_ok += ok;
            CHECK(ok, "%s line %d: decode differs (%s)", name, fs.lines, err.msg);
            bool pieces_valid;
            size_t slen;
            char *streamed = stream_decode(tok, ref, nref, false, &slen, &pieces_valid);
            ok = streamed && dec && slen == dlen && !memcmp(streamed, dec, dlen) && pieces_valid;
            fs.stream_ok += ok;
            CHECK(ok, "%s line %d: streaming decode differs or emitted partial UTF-8", name,
                  fs.lines);
            free(streamed);
            /* skip_special equals decoding the ids minus the special ones */
            int32_t *kept = malloc((nref + 1) * sizeof *kept);
            size_t nk = 0;
            for (size_t i = 0; i < nref; i++)
                if (!special[ref[i]]) kept[nk++] = ref[i];
            char *a = NULL, *b = NULL;
            size_t la = 0, lb = 0;
            CHECK(!fr_tokenizer_decode(tok, ref, nref, true, &a, &la, &err) &&
                      !fr_tokenizer_decode(tok, kept, nk, false, &b, &lb, &err) && la == lb &&
                      !memcmp(a, b, la),
                  "%s line %d: skip_special decode", name, fs.lines);
            free(a);
            free(b);
            free(kept);
            free(dec);
            free(ref);
        }
        cJSON_Delete(j);
    }
    free(special);
    free(buf);
    return fs;
}

static fr_tokenizer *load_named(const char *name) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "%s", name);
    fr_error err = {0};
    fr_tokenizer *tok = NULL;
    fr_status st = fr_tokenizer_load(fr_test_tokenizer_path(rel, path, sizeof path), &tok, &err);
    CHECK(st == FR_OK, "load %s: %s", name, err.msg);
    return st ? NULL : tok;
}

/* bos/eos strings as tokenizer_config.json names them (null -> no token) */
static void test_bos_eos(const fr_tokenizer *tok, const char *name) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "%s/tokenizer_config.json", name);
    cJSON *cfg = load_json(fr_test_tokenizer_path(rel, path, sizeof path));
    CHECK(cfg != NULL, "read %s", path);
    const char *keys[2] = {"bos_token", "eos_token"};
    int32_t got[2] = {fr_tokenizer_bos(tok), fr_tokenizer_eos(tok)};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItem(cfg, keys[k]);
        if (!cJSON_IsString(v)) {
            CHECK(got[k] == -1, "%s: %s should be absent, got %d", name, keys[k], got[k]);
            continue;
        }
        size_t len;
        const char *s = fr_tokenizer_token(tok, got[k], &len);
        CHECK(s && len == strlen(v->valuestring) && !memcmp(s, v->valuestring, len),
              "%s: %s is id %d", name, keys[k], got[k]);
        CHECK(fr_tokenizer_is_special(tok, got[k]), "%s: %s not special", name, keys[k]);
    }
    cJSON_Delete(cfg);
}

/* Random id sequences: streaming output is complete UTF-8 and concatenates to the full decode. */
static void test_stream_random(const fr_tokenizer *tok, const char *name) {
    fr_test_rng rng = {42};
    size_t vocab = fr_tokenizer_vocab_size(tok);
    int bad = 0;
    for (int round = 0; round < 200; round++) {
        int32_t ids[24];
        size_t n = 1 + fr_test_rng_u64(&rng) % 24;
        for (size_t i = 0; i < n; i++) {
            do
                ids[i] = (int32_t)(fr_test_rng_u64(&rng) % vocab);
            while (!fr_tokenizer_token(tok, ids[i], NULL));
        }
        bool skip = round & 1;
        char *full = NULL;
        size_t flen = 0, slen = 0;
        fr_error err = {0};
        bool pieces_valid;
        char *streamed = stream_decode(tok, ids, n, skip, &slen, &pieces_valid);
        if (fr_tokenizer_decode(tok, ids, n, skip, &full, &flen, &err) || !streamed ||
            slen != flen || memcmp(full, streamed, flen) || !pieces_valid ||
            !valid_utf8(full, flen))
            bad++;
        free(full);
        free(streamed);
    }
    CHECK(bad == 0, "%s: %d random streaming decodes differ", name, bad);
}

/* Lone bytes of a multi-byte character decode to U+FFFD, one per maximal invalid subpart. */
static void test_lossy(const fr_tokenizer *tok) {
    /* GPT-2 byte-level: 0xE4 and 0xBD are printable Latin-1, so their tokens are "ä" and "½". */
    int32_t e4 = fr_tokenizer_find(tok, "\xC3\xA4", 2), bd = fr_tokenizer_find(tok, "\xC2\xBD", 2);
    int32_t a = fr_tokenizer_find(tok, "a", 1);
    CHECK(e4 >= 0 && bd >= 0 && a >= 0, "byte tokens present");
    int32_t ids[] = {e4, bd, a, e4, e4};
    char *text = NULL;
    size_t len = 0;
    fr_error err = {0};
    CHECK(!fr_tokenizer_decode(tok, ids, 5, false, &text, &len, &err), "%s", err.msg);
    /* E4 BD is an incomplete 3-byte sequence (one U+FFFD), then 'a', then E4 (U+FFFD) and a final
     * incomplete E4 (U+FFFD). */
    const char want[] = "\xEF\xBF\xBD"
                        "a"
                        "\xEF\xBF\xBD\xEF\xBF\xBD";
    CHECK(text && len == sizeof want - 1 && !memcmp(text, want, len), "lossy decode");
    free(text);
}

static void test_errors_api(const fr_tokenizer *tok) {
    fr_error err = {0};
    int32_t *ids = NULL;
    size_t n;
    CHECK(fr_tokenizer_encode(tok, "ok \xFF bad", 8, false, &ids, &n, &err) == FR_ERR_INVALID &&
              strstr(err.msg, "offset 3"),
          "invalid UTF-8 rejected with its offset: %s", err.msg);
    int32_t bad_ids[] = {1, (int32_t)fr_tokenizer_vocab_size(tok) + 5};
    char *text = NULL;
    CHECK(fr_tokenizer_decode(tok, bad_ids, 2, false, &text, NULL, &err) == FR_ERR_INVALID,
          "unknown id rejected");
    CHECK(!fr_tokenizer_encode(tok, "", 0, false, &ids, &n, &err) && n == 0 && ids,
          "empty text encodes to nothing");
    free(ids);
}

/* Several threads encoding with one tokenizer (its word cache is shared) get the fixture ids. */
typedef struct thread_job {
    const fr_tokenizer *tok;
    char **texts;
    cJSON **want;
    int n, bad;
} thread_job;

static void *encode_all(void *arg) {
    thread_job *j = arg;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < j->n; i++) {
            int32_t *ids = NULL;
            size_t n = 0;
            fr_error err;
            if (fr_tokenizer_encode(j->tok, j->texts[i], strlen(j->texts[i]), false, &ids, &n,
                                    &err) ||
                !ids_equal(ids, n, j->want[i]))
                j->bad++;
            free(ids);
        }
    return NULL;
}

static void test_threads(const fr_tokenizer *tok, const char *name) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "fixtures/tokenizer/%s.jsonl", name);
    size_t len;
    char *buf = fr_test_read_file(fr_test_data_path(rel, path, sizeof path), &len);
    if (!buf) return;
    cJSON *lines[512];
    char *texts[512];
    cJSON *want[512];
    int n = 0;
    for (char *line = buf, *next; line && *line && n < 512; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (!(lines[n] = cJSON_Parse(line))) continue;
        texts[n] = cJSON_GetObjectItem(lines[n], "text")->valuestring;
        want[n] = cJSON_GetObjectItem(lines[n], "ids");
        n++;
    }
    thread_job jobs[4];
    pthread_t th[4];
    for (int k = 0; k < 4; k++) {
        jobs[k] = (thread_job){tok, texts, want, n, 0};
        pthread_create(&th[k], NULL, encode_all, &jobs[k]);
    }
    int bad = 0;
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        bad += jobs[k].bad;
    }
    CHECK(n > 0 && bad == 0, "%s: %d encodes differ with 4 threads", name, bad);
    for (int i = 0; i < n; i++)
        cJSON_Delete(lines[i]);
    free(buf);
}

/* ---------------------------------------------------------------- Llama 3 with a BOS template */

/* The official Llama 3 files put the BOS in a TemplateProcessing post-processor; this copy uses a
 * ByteLevel one. Swapping in the template must give [BOS] + ids for every fixture line. */
static void test_template(void) {
    char path[1024];
    cJSON *j = load_json(fr_test_tokenizer_path("llama3/tokenizer.json", path, sizeof path));
    CHECK(j != NULL, "read llama3 tokenizer.json");
    if (!j) return;
    cJSON *pp = cJSON_Parse(
        "{\"type\":\"TemplateProcessing\","
        "\"single\":[{\"SpecialToken\":{\"id\":\"<|begin_of_text|>\",\"type_id\":0}},"
        "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
        "\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
        "\"special_tokens\":{\"<|begin_of_text|>\":{\"id\":\"<|begin_of_text|>\",\"ids\":[128000],"
        "\"tokens\":[\"<|begin_of_text|>\"]}}}");
    cJSON *seq = cJSON_CreateObject();
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON *procs = cJSON_AddArrayToObject(seq, "processors");
    cJSON_AddItemToArray(procs, cJSON_DetachItemFromObject(j, "post_processor"));
    cJSON_AddItemToArray(procs, pp);
    cJSON_AddItemToObject(j, "post_processor", seq);
    char tmp[] = "/tmp/fr_tok_tmplXXXXXX";
    int fd = mkstemp(tmp);
    char *s = cJSON_PrintUnformatted(j);
    FILE *f = fdopen(fd, "wb");
    fwrite(s, 1, strlen(s), f);
    fclose(f);
    free(s);
    cJSON_Delete(j);
    fr_tokenizer *tok = NULL;
    fr_error err = {0};
    CHECK(!fr_tokenizer_load(tmp, &tok, &err), "load templated llama3: %s", err.msg);
    unlink(tmp);
    if (!tok) return;
    size_t len;
    char *buf = fr_test_read_file(
        fr_test_data_path("fixtures/tokenizer/llama3.jsonl", path, sizeof path), &len);
    int lines = 0, ok = 0;
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        cJSON *lj = cJSON_Parse(line);
        if (!lj) continue;
        lines++;
        const char *text = cJSON_GetObjectItem(lj, "text")->valuestring;
        size_t nref, n, n2;
        int32_t *ref = json_ids(cJSON_GetObjectItem(lj, "ids"), &nref);
        int32_t *ids = NULL, *plain = NULL;
        bool good = !fr_tokenizer_encode(tok, text, strlen(text), true, &ids, &n, &err) &&
                    !fr_tokenizer_encode(tok, text, strlen(text), false, &plain, &n2, &err) &&
                    n == nref + 1 && ids[0] == 128000 && !memcmp(ids + 1, ref, nref * 4) &&
                    n2 == nref && !memcmp(plain, ref, nref * 4);
        ok += good;
        free(ids);
        free(plain);
        free(ref);
        cJSON_Delete(lj);
    }
    CHECK(lines > 0 && ok == lines, "template: %d/%d lines give [BOS] + ids", ok, lines);
    fprintf(stderr, "llama3 + TemplateProcessing(BOS): %d/%d lines\n", ok, lines);
    CHECK(fr_tokenizer_bos(tok) == 128000, "bos from config");
    free(buf);
    fr_tokenizer_free(tok);
}

/* ---------------------------------------------------------------- GGUF-style build */

/* Builds the tokenizer the way the GGUF loader will (token list + types, "a b" merges, the
 * pre-tokenizer table) and compares with the fixtures. GGUF has no normalizer, so lines that NFC
 * changes (decoded != text) are left out for Qwen3. */
static void test_gguf_style(const char *name, const char *pre) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "%s/tokenizer.json", name);
    cJSON *j = load_json(fr_test_tokenizer_path(rel, path, sizeof path));
    CHECK(j != NULL, "read %s", path);
    if (!j) return;
    const cJSON *model = cJSON_GetObjectItem(j, "model"), *it;
    size_t n = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(model, "vocab")) if ((size_t)it->valueint >= n) n =
        (size_t)it->valueint + 1;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "added_tokens")) {
        int id = cJSON_GetObjectItem(it, "id")->valueint;
        if ((size_t)id >= n) n = (size_t)id + 1;
    }
    const char **tokens = calloc(n, sizeof *tokens);
    int32_t *types = calloc(n, sizeof *types);
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(model, "vocab")) {
        tokens[it->valueint] = it->string;
        types[it->valueint] = FR_TOK_TYPE_NORMAL;
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "added_tokens")) {
        int id = cJSON_GetObjectItem(it, "id")->valueint;
        tokens[id] = cJSON_GetObjectItem(it, "content")->valuestring;
        types[id] = cJSON_IsTrue(cJSON_GetObjectItem(it, "special")) ? FR_TOK_TYPE_CONTROL
                                                                     : FR_TOK_TYPE_USER_DEFINED;
    }
    const cJSON *merges = cJSON_GetObjectItem(model, "merges");
    size_t nm = (size_t)cJSON_GetArraySize(merges), i = 0;
    char **joined = calloc(nm, sizeof *joined);
    cJSON_ArrayForEach(it, merges) {
        if (cJSON_IsString(it)) {
            joined[i] = strdup(it->valuestring);
        } else {
            const char *a = cJSON_GetArrayItem(it, 0)->valuestring;
            const char *b = cJSON_GetArrayItem(it, 1)->valuestring;
            joined[i] = malloc(strlen(a) + strlen(b) + 2);
            sprintf(joined[i], "%s %s", a, b);
        }
        i++;
    }
    fr_tokenizer_spec spec;
    fr_tokenizer_spec_init(&spec);
    fr_tok_pre_spec steps[8];
    fr_error err = {0};
    CHECK(!fr_tokenizer_gguf_pretok(pre, steps, 8, &spec.n_pretok, &spec.ignore_merges, &err),
          "pre %s: %s", pre, err.msg);
    spec.pretok = steps;
    spec.n_vocab = n;
    spec.vocab = tokens;
    spec.token_types = types;
    spec.n_merges = nm;
    spec.merge_a = (const char *const *)joined;
    spec.source = "gguf-style";
    fr_tokenizer *tok = NULL;
    CHECK(!fr_tokenizer_build(&spec, &tok, &err), "build %s: %s", name, err.msg);
    if (tok) {
        snprintf(rel, sizeof rel, "fixtures/tokenizer/%s.jsonl", name);
        size_t len;
        char *buf = fr_test_read_file(fr_test_data_path(rel, path, sizeof path), &len);
        int lines = 0, ok = 0;
        for (char *line = buf, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next) *next++ = '\0';
            cJSON *lj = cJSON_Parse(line);
            if (!lj) continue;
            const char *text = cJSON_GetObjectItem(lj, "text")->valuestring;
            if (!strcmp(text, cJSON_GetObjectItem(lj, "decoded")->valuestring)) {
                lines++;
                int32_t *ids = NULL;
                size_t nids;
                ok += !fr_tokenizer_encode(tok, text, strlen(text), false, &ids, &nids, &err) &&
                      ids_equal(ids, nids, cJSON_GetObjectItem(lj, "ids"));
                free(ids);
            }
            cJSON_Delete(lj);
        }
        CHECK(lines > 150 && ok == lines, "gguf-style %s: %d/%d", name, ok, lines);
        fprintf(stderr, "%s built GGUF-style (pre \"%s\"): %d/%d lines\n", name, pre, ok, lines);
        free(buf);
        fr_tokenizer_free(tok);
    }
    for (i = 0; i < nm; i++)
        free(joined[i]);
    free(joined);
    free(tokens);
    free(types);
    cJSON_Delete(j);
    CHECK(fr_tokenizer_gguf_pretok("no-such-pre", steps, 8, &spec.n_pretok, NULL, &err) ==
              FR_ERR_UNSUPPORTED,
          "unknown pre name rejected");
}

/* ---------------------------------------------------------------- pipeline features */

static bool text_equal(const char *got, size_t len, const cJSON *want) {
    return got && cJSON_IsString(want) && strlen(want->valuestring) == len &&
           !memcmp(got, want->valuestring, len);
}

/* tests/data/tokenizer_features.json (made by HF tokenizers, see gen_tokenizer_features.py):
 * small tokenizers exercising added-token flags, Split behaviors, Digits, normalizers, byte
 * fallback, unk, ignore_merges and post-processors. */
static void test_features(void) {
    char path[1024];
    cJSON *all =
        load_json(fr_test_source_path("tests/data/tokenizer_features.json", path, sizeof path));
    CHECK(cJSON_IsArray(all), "read %s", path);
    const cJSON *entry;
    int total = 0, passed = 0;
    cJSON_ArrayForEach(entry, all) {
        const char *name = cJSON_GetObjectItem(entry, "name")->valuestring;
        char *json = cJSON_PrintUnformatted(cJSON_GetObjectItem(entry, "tokenizer"));
        char tmp[] = "/tmp/fr_tok_featXXXXXX";
        int fd = mkstemp(tmp);
        FILE *f = fdopen(fd, "wb");
        fwrite(json, 1, strlen(json), f);
        fclose(f);
        free(json);
        fr_tokenizer *tok = NULL;
        fr_error err = {0};
        fr_status st = fr_tokenizer_load(tmp, &tok, &err);
        unlink(tmp);
        CHECK(st == FR_OK, "%s: load: %s", name, err.msg);
        if (st) continue;
        const cJSON *c;
        int n_ok = 0, n = 0;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(entry, "cases")) {
            const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
            n++;
            int32_t *a = NULL, *b = NULL;
            size_t na = 0, nb = 0, la = 0, lb = 0, ls = 0;
            char *da = NULL, *db = NULL, *ds = NULL;
            bool pieces_valid = false;
            bool ok = !fr_tokenizer_encode(tok, text, strlen(text), false, &a, &na, &err) &&
                      ids_equal(a, na, cJSON_GetObjectItem(c, "ids")) &&
                      !fr_tokenizer_encode(tok, text, strlen(text), true, &b, &nb, &err) &&
                      ids_equal(b, nb, cJSON_GetObjectItem(c, "ids_with_special")) &&
                      !fr_tokenizer_decode(tok, a, na, false, &da, &la, &err) &&
                      text_equal(da, la, cJSON_GetObjectItem(c, "decoded")) &&
                      !fr_tokenizer_decode(tok, b, nb, true, &db, &lb, &err) &&
                      text_equal(db, lb, cJSON_GetObjectItem(c, "decoded_skip")) &&
                      (ds = stream_decode(tok, b, nb, true, &ls, &pieces_valid)) && ls == lb &&
                      !memcmp(ds, db, lb) && pieces_valid;
            CHECK(ok, "%s: \"%s\" differs from HF (%s)", name, text, err.msg);
            n_ok += ok;
            free(a);
            free(b);
            free(da);
            free(db);
            free(ds);
        }
        total += n;
        passed += n_ok;
        fr_tokenizer_free(tok);
    }
    CHECK(total > 500, "only %d feature cases", total);
    fprintf(stderr, "tokenizer_features.json: %d/%d cases (%d tokenizers)\n", passed, total,
            cJSON_GetArraySize(all));
    cJSON_Delete(all);
}

/* ---------------------------------------------------------------- malformed files */

static uint32_t gpt2_char(unsigned b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    unsigned k = 0;
    for (unsigned i = 0; i < b; i++)
        if (!((i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF)))
            k++;
    return 256 + k;
}

/* A small valid byte-level BPE tokenizer.json: 256 byte tokens + "ab", "abc". */
static cJSON *small_tokenizer(void) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(
        root, "added_tokens",
        cJSON_Parse("[{\"id\":259,\"content\":\"<eos>\",\"single_word\":false,\"lstrip\":false,"
                    "\"rstrip\":false,\"normalized\":false,\"special\":true}]"));
    cJSON_AddItemToObject(root, "normalizer", cJSON_Parse("{\"type\":\"NFC\"}"));
    cJSON_AddItemToObject(
        root, "pre_tokenizer",
        cJSON_Parse(
            "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
            "\"\\\\p{L}+|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":"
            "\"ByteLevel\","
            "\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]}"));
    cJSON_AddNullToObject(root, "post_processor");
    cJSON_AddItemToObject(root, "decoder", cJSON_Parse("{\"type\":\"ByteLevel\"}"));
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (unsigned b = 0; b < 256; b++) {
        char s[8];
        utf8proc_ssize_t l =
            utf8proc_encode_char((utf8proc_int32_t)gpt2_char(b), (utf8proc_uint8_t *)s);
        s[l] = '\0';
        cJSON_AddNumberToObject(vocab, s, b);
    }
    cJSON_AddNumberToObject(vocab, "ab", 256);
    cJSON_AddNumberToObject(vocab, "abc", 257);
    cJSON_AddNumberToObject(vocab, "bc", 258);
    cJSON_AddItemToObject(model, "merges", cJSON_Parse("[\"a b\", [\"ab\", \"c\"]]"));
    return root;
}

static fr_status load_text(const char *text, size_t len, fr_error *err, fr_tokenizer **out) {
    char tmp[] = "/tmp/fr_tok_badXXXXXX";
    int fd = mkstemp(tmp);
    FILE *f = fdopen(fd, "wb");
    fwrite(text, 1, len, f);
    fclose(f);
    fr_tokenizer *tok = NULL;
    fr_status st = fr_tokenizer_load(tmp, &tok, err);
    unlink(tmp);
    if (out)
        *out = tok;
    else
        fr_tokenizer_free(tok);
    return st;
}

/* Applies `edit` (a JSON fragment replacing `key` under `parent`) and expects `code` with a
 * message containing `needle`. */
static void expect_bad(const char *what, const char *parent, const char *key, const char *edit,
                       fr_status code, const char *needle) {
    cJSON *root = small_tokenizer();
    cJSON *obj = parent ? cJSON_GetObjectItem(root, parent) : root;
    if (edit)
        cJSON_ReplaceItemInObject(obj, key, cJSON_Parse(edit));
    else
        cJSON_DeleteItemFromObject(obj, key);
    char *s = cJSON_PrintUnformatted(root);
    fr_error err = {0};
    fr_status st = load_text(s, strlen(s), &err, NULL);
    CHECK(st == code && strstr(err.msg, needle), "%s: got %s \"%s\"", what, fr_status_name(st),
          err.msg);
    free(s);
    cJSON_Delete(root);
}

static void test_malformed(void) {
    cJSON *root = small_tokenizer();
    char *s = cJSON_PrintUnformatted(root);
    fr_error err = {0};
    fr_tokenizer *tok = NULL;
    CHECK(load_text(s, strlen(s), &err, &tok) == FR_OK, "small tokenizer: %s", err.msg);
    if (tok) {
        int32_t *ids = NULL;
        size_t n = 0;
        /* byte b has id b; merges a+b then ab+c; "bc" is in the vocabulary but has no merge */
        CHECK(!fr_tokenizer_encode(tok, "abc bc<eos>", 11, false, &ids, &n, &err) && n == 5 &&
                  ids[0] == 257 && ids[1] == ' ' && ids[2] == 'b' && ids[3] == 'c' && ids[4] == 259,
              "small tokenizer encodes: %s", err.msg);
        free(ids);
        fr_tokenizer_free(tok);
    }
    /* truncated JSON */
    fr_status st = load_text(s, strlen(s) / 2, &err, NULL);
    CHECK(st == FR_ERR_FORMAT && strstr(err.msg, "invalid JSON"), "truncated: %s", err.msg);
    st = load_text("", 0, &err, NULL);
    CHECK(st == FR_ERR_FORMAT, "empty file: %s", err.msg);
    st = load_text("[1,2]", 5, &err, NULL);
    CHECK(st == FR_ERR_FORMAT, "not an object: %s", err.msg);
    free(s);
    cJSON_Delete(root);

    expect_bad("missing model", NULL, "model", NULL, FR_ERR_FORMAT, "model");
    expect_bad("model type", NULL, "model", "{\"type\":\"Unigram\",\"vocab\":[]}",
               FR_ERR_UNSUPPORTED, "Unigram");
    expect_bad("missing vocab", "model", "vocab", NULL, FR_ERR_FORMAT, "vocab");
    expect_bad("negative id", "model", "vocab", "{\"a\":-1}", FR_ERR_FORMAT, "vocab");
    expect_bad("missing merges", "model", "merges", NULL, FR_ERR_FORMAT, "merges");
    expect_bad("merge unknown", "model", "merges", "[\"a b\", \"x yz\"]", FR_ERR_FORMAT, "merge 1");
    expect_bad("merge no space", "model", "merges", "[\"ab\"]", FR_ERR_FORMAT, "merges[0]");
    expect_bad("merge not string", "model", "merges", "[3]", FR_ERR_FORMAT, "merges[0]");
    expect_bad("merge result unknown", "model", "merges", "[[\"b\", \"a\"]]", FR_ERR_FORMAT,
               "merged token");
    expect_bad("normalizer type", NULL, "normalizer", "{\"type\":\"Frobnicate\"}",
               FR_ERR_UNSUPPORTED, "Frobnicate");
    expect_bad("normalizer no type", NULL, "normalizer", "{\"x\":1}", FR_ERR_FORMAT, "type");
    expect_bad("pre-tokenizer type", NULL, "pre_tokenizer", "{\"type\":\"Whatever\"}",
               FR_ERR_UNSUPPORTED, "Whatever");
    expect_bad(
        "bad regex", NULL, "pre_tokenizer",
        "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\\\\p{L}\"},\"behavior\":\"Isolated\"}",
        FR_ERR_FORMAT, "regex");
    expect_bad("bad behavior", NULL, "pre_tokenizer",
               "{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":\"Sideways\"}",
               FR_ERR_FORMAT, "Sideways");
    expect_bad("decoder type", NULL, "decoder", "{\"type\":\"WordPiece\"}", FR_ERR_UNSUPPORTED,
               "WordPiece");
    expect_bad("post type", NULL, "post_processor", "{\"type\":\"Mystery\"}", FR_ERR_UNSUPPORTED,
               "Mystery");
    expect_bad("template id", NULL, "post_processor",
               "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},"
               "{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<s>\":{\"ids\":[99999]}}}",
               FR_ERR_FORMAT, "99999");
    expect_bad("added id", NULL, "added_tokens", "[{\"id\":-4,\"content\":\"x\"}]", FR_ERR_FORMAT,
               "added_tokens[0]");
    expect_bad("added content", NULL, "added_tokens", "[{\"id\":4}]", FR_ERR_FORMAT,
               "added_tokens[0]");

    CHECK(fr_tokenizer_load("/nonexistent/tokenizer.json", &tok, &err) == FR_ERR_NOT_FOUND,
          "missing file");
    /* A GGUF file goes to the GGUF loader: a truncated one is a clear error. */
    st = load_text("GGUF\x03\0\0\0", 8, &err, NULL);
    CHECK(st != FR_OK && strstr(err.msg, "GGUF"), "gguf: %s", err.msg);
}

/* ---------------------------------------------------------------- SentencePiece BPE (Mistral) */

/* decode(ids, skip) and the streamed decode both equal `want`. */
static bool decodes_to(const fr_tokenizer *tok, const cJSON *ids_json, bool skip,
                       const cJSON *want) {
    size_t n, dl = 0, sl = 0;
    int32_t *ids = json_ids(ids_json, &n);
    char *dec = NULL;
    fr_error err = {0};
    bool ok = !fr_tokenizer_decode(tok, ids, n, skip, &dec, &dl, &err) && text_equal(dec, dl, want);
    bool pieces_valid;
    char *streamed = stream_decode(tok, ids, n, skip, &sl, &pieces_valid);
    ok = ok && streamed && pieces_valid && text_equal(streamed, sl, want);
    free(streamed);
    free(dec);
    free(ids);
    return ok;
}

static bool encodes_to(const fr_tokenizer *tok, const char *text, bool special, const cJSON *want) {
    int32_t *ids = NULL;
    size_t n = 0;
    fr_error err = {0};
    bool ok = !fr_tokenizer_encode(tok, text, strlen(text), special, &ids, &n, &err) &&
              ids_equal(ids, n, want);
    free(ids);
    return ok;
}

/* Random ids, mostly byte-fallback tokens with specials and "\xe2\x96\x81" among them: streamed
 * pieces are complete UTF-8 and concatenate to the full decode, skipping specials or not. */
static void test_stream_bytes(const fr_tokenizer *tok, const char *name) {
    fr_test_rng rng = {7};
    const int32_t b0 = fr_tokenizer_find(tok, "<0x00>", 6);
    const int32_t others[] = {0,
                              1,
                              2,
                              fr_tokenizer_find(tok, "\xe2\x96\x81", 3),
                              fr_tokenizer_find(tok, "\xe2\x96\x81\xe2\x96\x81", 6),
                              fr_tokenizer_find(tok, "\xe2\x96\x81Hello", 8)};
    CHECK(b0 > 0 && others[3] > 0 && others[4] > 0 && others[5] > 0, "%s: byte/space tokens", name);
    int bad = 0;
    for (int round = 0; round < 400; round++) {
        int32_t ids[16];
        size_t n = fr_test_rng_u64(&rng) % 16;
        for (size_t i = 0; i < n; i++)
            ids[i] = fr_test_rng_u64(&rng) % 4 ? b0 + (int32_t)(fr_test_rng_u64(&rng) % 256)
                                               : others[fr_test_rng_u64(&rng) % 6];
        bool skip = round & 1, pieces_valid;
        char *full = NULL;
        size_t flen = 0, slen = 0;
        fr_error err = {0};
        char *streamed = stream_decode(tok, ids, n, skip, &slen, &pieces_valid);
        if (fr_tokenizer_decode(tok, ids, n, skip, &full, &flen, &err) || !streamed ||
            slen != flen || memcmp(full, streamed, flen) || !pieces_valid ||
            !valid_utf8(full, flen))
            bad++;
        free(full);
        free(streamed);
    }
    CHECK(bad == 0, "%s: %d byte-heavy streaming decodes differ", name, bad);
}

/* The newer form of the same tokenizer.json: no normalizer, a Metaspace pre-tokenizer. */
static fr_tokenizer *mistral_metaspace(const char *name, const char *scheme, bool split) {
    char path[1024], rel[256];
    snprintf(rel, sizeof rel, "%s/tokenizer.json", name);
    cJSON *j = load_json(fr_test_tokenizer_path(rel, path, sizeof path));
    CHECK(j != NULL, "read %s", path);
    if (!j) return NULL;
    cJSON_ReplaceItemInObject(j, "normalizer", cJSON_CreateNull());
    char pre[256];
    snprintf(pre, sizeof pre,
             "{\"type\": \"Metaspace\", \"replacement\": \"\xe2\x96\x81\", "
             "\"prepend_scheme\": \"%s\", \"split\": %s}",
             scheme, split ? "true" : "false");
    cJSON_ReplaceItemInObject(j, "pre_tokenizer", cJSON_Parse(pre));
    char *text = cJSON_PrintUnformatted(j);
    fr_error err = {0};
    fr_tokenizer *tok = NULL;
    CHECK(load_text(text, strlen(text), &err, &tok) == FR_OK, "metaspace form: %s", err.msg);
    free(text);
    cJSON_Delete(j);
    return tok;
}

/* The tokenizer.* metadata ferrum's quantize writes for the tokenizer folder, loaded back. */
static fr_tokenizer *mistral_written(const char *name, int vocab) {
    char dir[1024], tmp[] = "/tmp/fr_tok_spmXXXXXX";
    fr_error err = {0};
    fr_gguf_writer *w = NULL;
    fr_tokenizer *tok = NULL;
    int32_t eos = 2;
    int fd = mkstemp(tmp);
    close(fd);
    fr_status st = fr_gguf_writer_create(&w, &err);
    if (!st)
        st = fr_tokenizer_json_to_gguf(fr_test_tokenizer_path(name, dir, sizeof dir), vocab, 1,
                                       &eos, 1, w, &err);
    if (!st) st = fr_gguf_writer_write(w, tmp, &err);
    if (!st) st = fr_tokenizer_load(tmp, &tok, &err);
    CHECK(st == FR_OK, "%s written as GGUF: %s", name, err.msg);
    fr_gguf_writer_free(w);
    unlink(tmp);
    return tok;
}

/* The GGUF at `path` without the keys whose absence means a default (add_bos_token: true and
 * add_space_prefix: true for a "llama" tokenizer, as llama.cpp reads them), loaded. */
static fr_tokenizer *gguf_defaults(const char *path) {
    char tmp[] = "/tmp/fr_tok_defXXXXXX";
    int fd = mkstemp(tmp);
    close(fd);
    fr_error err = {0};
    fr_gguf *g = NULL;
    fr_gguf_writer *w = NULL;
    fr_tokenizer *tok = NULL;
    fr_status st = fr_gguf_open(path, &g, &err);
    if (!st) st = fr_gguf_writer_create(&w, &err);
    for (size_t i = 0; !st && i < fr_gguf_kv_count(g); i++) {
        const fr_gguf_kv *kv = fr_gguf_kv_at(g, i);
        if (strcmp(kv->key.s, "tokenizer.ggml.add_bos_token") &&
            strcmp(kv->key.s, "tokenizer.ggml.add_space_prefix"))
            st = fr_gguf_writer_set(w, kv->key.s, &kv->value, &err);
    }
    if (!st) st = fr_gguf_writer_write(w, tmp, &err);
    if (!st) st = fr_tokenizer_load(tmp, &tok, &err);
    CHECK(st == FR_OK, "%s without default keys: %s", path, err.msg);
    fr_gguf_writer_free(w);
    fr_gguf_close(g);
    unlink(tmp);
    return tok;
}

/* A Mistral tokenizer (Llama 2 style SentencePiece BPE: "mistral" is 7B v0.1's, "mistral-v3" 7B
 * Instruct v0.3's with 770 control and user-defined tokens) as tokenizer.json, in its newer
 * Metaspace forms, as a GGUF "llama" tokenizer merging by SentencePiece scores (as llama.cpp's
 * converter writes it) and as the GGUF quantize writes from the tokenizer.json (scores from
 * merge ranks), against fixtures/tokenizer/NAME.jsonl (HF tokenizers; scripts/gen_spm_refs.py). */
static void test_mistral(const char *name) {
    char path[1024], rel[256];
    fr_error err = {0};
    fr_tokenizer *json = load_named(name), *meta = mistral_metaspace(name, "first", false),
                 *meta_split = mistral_metaspace(name, "always", true),
                 *meta_never = mistral_metaspace(name, "never", true), *gguf = NULL;
    fr_tokenizer *written = json ? mistral_written(name, (int)fr_tokenizer_vocab_size(json)) : NULL;
    snprintf(rel, sizeof rel, "%s/tokenizer.gguf", name);
    CHECK(!fr_tokenizer_load(fr_test_tokenizer_path(rel, path, sizeof path), &gguf, &err),
          "load %s: %s", path, err.msg);
    fr_tokenizer *defaults = gguf_defaults(path);
    if (!json || !meta || !meta_split || !meta_never || !gguf || !written || !defaults) goto done;
    fr_tokenizer *all[4] = {json, gguf, written, defaults};
    const char *names[4] = {"json", "gguf", "written gguf", "gguf without add_bos/space_prefix"};
    for (int k = 0; k < 4; k++)
        CHECK(fr_tokenizer_bos(all[k]) == 1 && fr_tokenizer_eos(all[k]) == 2 &&
                  fr_tokenizer_is_special(all[k], 0) && fr_tokenizer_is_special(all[k], 1) &&
                  !fr_tokenizer_is_special(all[k], fr_tokenizer_find(json, "<0x41>", 6)) &&
                  fr_tokenizer_vocab_size(all[k]) == fr_tokenizer_vocab_size(json) &&
                  fr_tokenizer_vocab_size(json) >= 32000,
              "%s %s: bos/eos/special/vocab", name, names[k]);
    size_t len;
    snprintf(rel, sizeof rel, "fixtures/tokenizer/%s.jsonl", name);
    char *buf = fr_test_read_file(fr_test_data_path(rel, path, sizeof path), &len);
    CHECK(buf != NULL, "cannot read %s", path);
    int lines = 0, dec_lines = 0, ok[7] = {0}, dec_ok = 0;
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        cJSON *j = cJSON_Parse(line);
        CHECK(j != NULL, "%s.jsonl: bad line", name);
        if (!j) continue;
        const cJSON *jt = cJSON_GetObjectItem(j, "text");
        if (!cJSON_IsString(jt)) { /* decoding alone */
            const cJSON *ids = cJSON_GetObjectItem(j, "decode_ids");
            bool good = true;
            for (int k = 0; k < 4; k++)
                good = good && decodes_to(all[k], ids, false, cJSON_GetObjectItem(j, "decoded")) &&
                       decodes_to(all[k], ids, true, cJSON_GetObjectItem(j, "decoded_skip"));
            dec_lines++;
            dec_ok += good;
            CHECK(good, "%s decode line %d differs", name, lines + dec_lines);
            cJSON_Delete(j);
            continue;
        }
        const char *text = jt->valuestring;
        lines++;
        const cJSON *ids = cJSON_GetObjectItem(j, "ids"),
                    *ids_sp = cJSON_GetObjectItem(j, "ids_with_special");
        for (int k = 0; k < 4; k++) {
            bool good =
                encodes_to(all[k], text, false, ids) && encodes_to(all[k], text, true, ids_sp) &&
                decodes_to(all[k], ids, false, cJSON_GetObjectItem(j, "decoded")) &&
                decodes_to(all[k], ids_sp, false, cJSON_GetObjectItem(j, "decoded_special")) &&
                decodes_to(all[k], ids_sp, true, cJSON_GetObjectItem(j, "decoded_skip"));
            ok[k == 3 ? 6 : k] += good;
            CHECK(good, "%s %s line %d: %.60s", name, names[k], lines, text);
        }
        bool good = encodes_to(meta, text, false, cJSON_GetObjectItem(j, "ids_metaspace"));
        ok[3] += good;
        CHECK(good, "%s metaspace line %d: %.60s", name, lines, text);
        good = encodes_to(meta_split, text, false, cJSON_GetObjectItem(j, "ids_metaspace_split"));
        ok[4] += good;
        CHECK(good, "%s metaspace (always, split) line %d: %.60s", name, lines, text);
        good = encodes_to(meta_never, text, false, cJSON_GetObjectItem(j, "ids_metaspace_never"));
        ok[5] += good;
        CHECK(good, "%s metaspace (never, split) line %d: %.60s", name, lines, text);
        cJSON_Delete(j);
    }
    CHECK(lines >= 200 && dec_lines >= 10, "%s.jsonl: %d + %d lines", name, lines, dec_lines);
    fprintf(stderr,
            "%s.jsonl: %d lines: tokenizer.json %d, GGUF (SentencePiece scores) %d, GGUF "
            "written by ferrum %d, GGUF relying on defaults %d, Metaspace form %d (always + split "
            "%d, never + split %d); %d/%d decode-only lines\n",
            name, lines, ok[0], ok[1], ok[2], ok[6], ok[3], ok[4], ok[5], dec_ok, dec_lines);
    free(buf);
    test_stream_random(json, name);
    test_stream_bytes(json, name);
    test_stream_bytes(gguf, name);
done:
    fr_tokenizer_free(json);
    fr_tokenizer_free(meta);
    fr_tokenizer_free(meta_split);
    fr_tokenizer_free(meta_never);
    fr_tokenizer_free(gguf);
    fr_tokenizer_free(written);
    fr_tokenizer_free(defaults);
}

/* SentencePiece pieces of the pipeline on small hand-made inputs. */
static void test_spm_parts(void) {
    fr_error err = {0};
    /* Metaspace split cuts before every replacement, wherever it sits: with a piece "a\xe2\x96\x81"
     * in the vocabulary, "a b" is "a" + "\xe2\x96\x81b" (HF tokenizers: [0, 4]; [3, 2] unsplit). */
    static const char tiny[] =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"\xe2\x96\x81\": 1, \"b\": 2, "
        "\"a\xe2\x96\x81\": 3, \"\xe2\x96\x81\x62\": 4}, \"merges\": [[\"a\", \"\xe2\x96\x81\"], "
        "[\"\xe2\x96\x81\", \"b\"]]}, \"pre_tokenizer\": {\"type\": \"Metaspace\", "
        "\"replacement\": \"\xe2\x96\x81\", \"prepend_scheme\": \"never\", \"split\": %s}}";
    char text[512];
    for (int split = 0; split < 2; split++) {
        fr_tokenizer *t = NULL;
        snprintf(text, sizeof text, tiny, split ? "true" : "false");
        int32_t *ids = NULL;
        size_t n = 0;
        bool good = !load_text(text, strlen(text), &err, &t) &&
                    !fr_tokenizer_encode(t, "a b", 3, false, &ids, &n, &err) && n == 2 &&
                    ids[0] == (split ? 0 : 3) && ids[1] == (split ? 4 : 2);
        CHECK(good, "Metaspace split=%d on \"a b\": %s", split, err.msg);
        free(ids);
        fr_tokenizer_free(t);
    }
    /* The GGUF writer: the same vocabulary with byte_fallback (SentencePiece-style) becomes a
     * "llama" tokenizer, add_space_prefix false for prepend_scheme never, scores from the merge
     * ranks ("a b" -> [3, 2] as unsplit above); layouts it cannot express are refused. */
    static const char *const layouts[] = {
        "{\"type\": \"Metaspace\", \"replacement\": \"\xe2\x96\x81\", \"prepend_scheme\": "
        "\"never\", \"split\": false}",
        "{\"type\": \"Metaspace\", \"replacement\": \"\xe2\x96\x81\", \"prepend_scheme\": "
        "\"never\", \"split\": true}",
        "null"};
    for (int k = 0; k < 3; k++) {
        char dir[] = "/tmp/fr_tok_spmdirXXXXXX", file[64], gguf[64];
        CHECK(mkdtemp(dir) != NULL, "mkdtemp");
        snprintf(file, sizeof file, "%s/tokenizer.json", dir);
        snprintf(gguf, sizeof gguf, "%s/t.gguf", dir);
        snprintf(text, sizeof text, tiny, "false");
        cJSON *j = cJSON_Parse(text);
        cJSON_AddBoolToObject(cJSON_GetObjectItem(j, "model"), "byte_fallback", 1);
        cJSON_ReplaceItemInObject(j, "pre_tokenizer", cJSON_Parse(layouts[k]));
        char *js = cJSON_PrintUnformatted(j);
        FILE *f = fopen(file, "wb");
        fputs(js, f);
        fclose(f);
        fr_gguf_writer *w = NULL;
        fr_tokenizer *t = NULL;
        int32_t *ids = NULL;
        size_t n = 0;
        fr_status st = fr_gguf_writer_create(&w, &err);
        if (!st) st = fr_tokenizer_json_to_gguf(dir, 5, -1, NULL, 0, w, &err);
        if (k == 0) {
            bool good = !st && !fr_gguf_writer_write(w, gguf, &err) &&
                        !fr_tokenizer_load(gguf, &t, &err) &&
                        !fr_tokenizer_encode(t, "a b", 3, false, &ids, &n, &err) && n == 2 &&
                        ids[0] == 3 && ids[1] == 2;
            CHECK(good, "written SentencePiece GGUF: %s", err.msg);
        } else {
            CHECK(st == FR_ERR_UNSUPPORTED && strstr(err.msg, "tokenizer.json") &&
                      strstr(err.msg, "Metaspace"),
                  "layout %d refused: %s", k, err.msg);
        }
        free(ids);
        fr_tokenizer_free(t);
        fr_gguf_writer_free(w);
        free(js);
        cJSON_Delete(j);
        unlink(gguf);
        unlink(file);
        rmdir(dir);
    }
    /* SentencePiece parts the loader cannot honour are refused, naming the part. */
    expect_bad("Metaspace scheme", NULL, "pre_tokenizer",
               "{\"type\": \"Metaspace\", \"replacement\": \"_\", \"prepend_scheme\": \"x\"}",
               FR_ERR_FORMAT, "prepend_scheme \"x\"");
    expect_bad("Metaspace replacement", NULL, "pre_tokenizer",
               "{\"type\": \"Metaspace\", \"replacement\": \"ab\"}", FR_ERR_FORMAT,
               "one character");
    expect_bad("decoder order", NULL, "decoder",
               "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Fuse\"}, "
               "{\"type\": \"ByteFallback\"}]}",
               FR_ERR_UNSUPPORTED, "\"ByteFallback\" is not supported there");
    expect_bad("decoder Strip before Fuse", NULL, "decoder",
               "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Strip\", "
               "\"content\": \" \", \"start\": 1, \"stop\": 0}]}",
               FR_ERR_UNSUPPORTED, "\"Strip\" is not supported there");
    expect_bad("decoder Strip stop", NULL, "decoder",
               "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Fuse\"}, {\"type\": "
               "\"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 1}]}",
               FR_ERR_UNSUPPORTED, "\"stop\"");
    expect_bad("decoder Replace regex", NULL, "decoder",
               "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", "
               "\"pattern\": {\"Regex\": \"a+\"}, \"content\": \" \"}]}",
               FR_ERR_UNSUPPORTED, "String pattern");
}

/* Issue 16: a merge with an empty side (["a", ""], "a ", ["", "a"]) passed a NULL key to
 * memcpy/memcmp in the vocabulary lookup (UBSan). Refused when "" is no token; accepted, and
 * harmless, when the vocabulary has an empty token. */
static void test_empty_merge_sides(void) {
    static const char *const MERGES[] = {"[[\"a\", \"\"]]", "[\"a \"]", "[[\"\", \"a\"]]",
                                         "[\" a\"]"};
    for (int with_empty = 0; with_empty < 2; with_empty++) {
        for (size_t i = 0; i < sizeof MERGES / sizeof MERGES[0]; i++) {
            cJSON *root = small_tokenizer();
            cJSON *model = cJSON_GetObjectItem(root, "model");
            if (with_empty) cJSON_AddNumberToObject(cJSON_GetObjectItem(model, "vocab"), "", 260);
            cJSON *merges = cJSON_Parse(MERGES[i]);
            cJSON_AddItemToArray(merges, cJSON_CreateString("a b"));
            cJSON_ReplaceItemInObject(model, "merges", merges);
            char *text = cJSON_PrintUnformatted(root);
            fr_error err = {0};
            fr_tokenizer *tok = NULL;
            fr_status st = load_text(text, strlen(text), &err, &tok);
            if (!with_empty) {
                CHECK(st == FR_ERR_FORMAT && !tok && strstr(err.msg, "merge 0") &&
                          strstr(err.msg, "not in the vocabulary"),
                      "merge %s without an empty token: %s \"%s\"", MERGES[i], fr_status_name(st),
                      err.msg);
            } else {
                CHECK(st == FR_OK && tok, "merge %s with an empty token: %s", MERGES[i], err.msg);
                int32_t *ids = NULL;
                size_t n = 0;
                if (tok && fr_tokenizer_encode(tok, "ab", 2, false, &ids, &n, &err) == FR_OK)
                    CHECK(n == 1 && ids[0] == 256, "merge %s: \"ab\" -> %zu ids", MERGES[i], n);
                else
                    CHECK(false, "merge %s: encode: %s", MERGES[i], err.msg);
                free(ids);
            }
            fr_tokenizer_free(tok);
            free(text);
            cJSON_Delete(root);
        }
    }
}

/* fixtures/tokenizer/mistral-chat.json: the Mistral template (tokenizer_config.json and the GGUF's
 * tokenizer.chat_template) and a Llama 2 style one render as jinja2 does, role errors included,
 * and the rendered prompts encode to HF's ids. */
static void test_mistral_chat(void) {
    char path[1024];
    fr_error err = {0};
    cJSON *data =
        load_json(fr_test_data_path("fixtures/tokenizer/mistral-chat.json", path, sizeof path));
    CHECK(data != NULL, "read %s", path);
    fr_chat_template *tpl[3] = {0};
    fr_tokenizer *tok = load_named("mistral");
    const cJSON *l2 = cJSON_GetObjectItem(data, "llama2_template");
    CHECK(
        !fr_chat_template_load(fr_test_tokenizer_path("mistral", path, sizeof path), &tpl[0], &err),
        "mistral template: %s", err.msg);
    CHECK(!fr_chat_template_load_gguf(
              fr_test_tokenizer_path("mistral/tokenizer.gguf", path, sizeof path), &tpl[1], &err),
          "mistral GGUF template: %s", err.msg);
    CHECK(cJSON_IsString(l2) &&
              !fr_chat_template_from_source(l2->valuestring, strlen(l2->valuestring), "<s>", "</s>",
                                            &tpl[2], &err),
          "llama2 template: %s", err.msg);
    int n = 0, ok = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(data, "cases")) {
        if (!tok || !tpl[0] || !tpl[1] || !tpl[2]) break;
        bool l2case = !strcmp(cJSON_GetObjectItem(c, "template")->valuestring, "llama2");
        const char *msgs = cJSON_GetObjectItem(c, "messages_json")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(c, "rendered");
        bool good = true;
        for (int k = l2case ? 2 : 0; k < (l2case ? 3 : 2); k++) {
            char *out = NULL;
            size_t len = 0;
            fr_status st =
                fr_chat_template_render(tpl[k], msgs, NULL, false, NULL, &out, &len, &err);
            if (!want)
                good = good && st != FR_OK && strstr(err.msg, "must alternate");
            else
                good = good && !st && text_equal(out, len, want) &&
                       encodes_to(tok, out, false, cJSON_GetObjectItem(c, "ids"));
            free(out);
        }
        n++;
        ok += good;
        CHECK(good, "mistral-chat case %d (%s) differs", n, l2case ? "llama2" : "mistral");
    }
    CHECK(n >= 14 && ok == n, "mistral-chat: %d/%d", ok, n);
    fprintf(stderr, "mistral-chat.json: %d/%d renders (and their ids) as jinja2 + HF\n", ok, n);
    for (int k = 0; k < 3; k++)
        fr_chat_template_free(tpl[k]);
    fr_tokenizer_free(tok);
    cJSON_Delete(data);
}

int main(void) {
    const char *names[2] = {"qwen3", "llama3"};
    for (int k = 0; k < 2; k++) {
        fr_tokenizer *tok = load_named(names[k]);
        if (!tok) continue;
        fixture_stats fs = run_fixture(tok, names[k], true, true);
        fprintf(stderr,
                "%s.jsonl: %d lines: ids %d, ids_with_special %d, decoded %d, streaming %d\n",
                names[k], fs.lines, fs.ids_ok, fs.special_ok, fs.decode_ok, fs.stream_ok);
        CHECK(fs.lines >= 190, "%s: only %d fixture lines", names[k], fs.lines);
        test_bos_eos(tok, names[k]);
        test_stream_random(tok, names[k]);
        test_threads(tok, names[k]);
        if (k == 0) {
            test_lossy(tok);
            test_errors_api(tok);
        }
        fr_tokenizer_free(tok);
    }
    test_template();
    test_gguf_style("qwen3", "qwen2");
    test_gguf_style("llama3", "llama-bpe");
    test_features();
    test_malformed();
    test_empty_merge_sides();
    test_mistral("mistral");
    test_mistral("mistral-v3");
    test_spm_parts();
    test_mistral_chat();
    return fr_test_finish("test_tokenizer");
}
