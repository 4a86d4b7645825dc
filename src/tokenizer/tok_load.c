/* fr_tokenizer_load (model folder, tokenizer.json or GGUF) and the small accessors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "tokenizer/tok_gguf.h"
#include "tokenizer/tok_impl.h"

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (k && p[k - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

fr_status fr_tokenizer_load(const char *path, fr_tokenizer **out, fr_error *err) {
    if (!path || !out) return fr_error_set(err, FR_ERR_INVALID, "fr_tokenizer_load: NULL argument");
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fr_error_set(err, FR_ERR_NOT_FOUND, "%s: no such file or folder", path);
    fr_status st;
    if (S_ISDIR(sb.st_mode)) {
        char *json = join(path, "tokenizer.json"), *cfg = join(path, "tokenizer_config.json");
        if (!json || !cfg) {
            free(json);
            free(cfg);
            return fr_error_set(err, FR_ERR_NOMEM, "fr_tokenizer_load: out of memory");
        }
        if (stat(json, &sb) != 0)
            st =
                fr_error_set(err, FR_ERR_NOT_FOUND, "%s: model folder has no tokenizer.json", path);
        else
            st = fr_tokenizer_load_json(json, cfg, out, err);
        free(json);
        free(cfg);
        return st;
    }
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return fr_error_set(err, FR_ERR_IO, "%s: cannot open", path);
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && !memcmp(magic, "GGUF", 4)) return fr_tokenizer_load_gguf(path, out, err);
    /* A tokenizer.json: its tokenizer_config.json, if any, sits in the same folder. */
    const char *slash = strrchr(path, '/');
    char *cfg;
    if (slash) {
        size_t d = (size_t)(slash - path) + 1;
        cfg = malloc(d + sizeof "tokenizer_config.json");
        if (cfg) {
            memcpy(cfg, path, d);
            memcpy(cfg + d, "tokenizer_config.json", sizeof "tokenizer_config.json");
        }
    } else {
        cfg = join("", "tokenizer_config.json");
    }
    if (!cfg) return fr_error_set(err, FR_ERR_NOMEM, "fr_tokenizer_load: out of memory");
    st = fr_tokenizer_load_json(path, cfg, out, err);
    free(cfg);
    return st;
}

size_t fr_tokenizer_vocab_size(const fr_tokenizer *tok) {
    return tok ? (size_t)tok->n_ids : 0;
}

int32_t fr_tokenizer_bos(const fr_tokenizer *tok) {
    return tok ? tok->bos : -1;
}

int32_t fr_tokenizer_eos(const fr_tokenizer *tok) {
    return tok ? tok->eos : -1;
}

const char *fr_tokenizer_token(const fr_tokenizer *tok, int32_t id, size_t *len) {
    if (len) *len = 0;
    if (!tok || id < 0 || id >= tok->n_ids || !(tok->id_flags[id] & FR_TOK_ID_PRESENT)) return NULL;
    if (len) *len = tok->tok_len[id];
    return tok->tok_blob + tok->tok_off[id];
}

int32_t fr_tokenizer_find(const fr_tokenizer *tok, const char *token, size_t len) {
    if (!tok || !token) return -1;
    return fr_tok_strmap_get(&tok->token_ids, token, len);
}

bool fr_tokenizer_is_special(const fr_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || id >= tok->n_ids) return false;
    return (tok->id_flags[id] & FR_TOK_ID_SPECIAL) != 0;
}
