/* Chat templates: loading a model's template and rendering a conversation the way transformers'
 * apply_chat_template(tokenize=False) does: render(messages=..., tools=..., documents=None,
 * add_generation_prompt=..., **special_tokens_map, **extra_kwargs). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "core/error.h"
#include "tokenizer/jinja.h"
#include "tokenizer/template.h"
#include "tokenizer/tok_gguf.h"

#define MAX_CONFIG_BYTES ((size_t)64 << 20)

struct fr_chat_template {
    fr_jinja_template *def;      /* "default" */
    fr_jinja_template *tool_use; /* "tool_use" when the model has one */
    char *source;
    cJSON *tokens; /* object: special-token variable -> string or list of strings */
};

fr_status fr_chat_read_file(const char *path, size_t max_bytes, char **out, size_t *len,
                            fr_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fr_error_set(err, errno == ENOENT ? FR_ERR_NOT_FOUND : FR_ERR_IO, "%s: %s", path,
                            strerror(errno));
    fr_status st = FR_OK;
    char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = fr_error_set(err, FR_ERR_IO, "%s: cannot determine the size", path);
    } else if ((size_t)size > max_bytes) {
        st = fr_error_set(err, FR_ERR_RANGE, "%s: %ld bytes exceeds the %zu-byte limit", path, size,
                          max_bytes);
    } else if (!(buf = malloc((size_t)size + 1))) {
        st = fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
    } else if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        st = fr_error_set(err, FR_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    if (st) {
        free(buf);
        return st;
    }
    buf[size] = '\0';
    *out = buf;
    if (len) *len = (size_t)size;
    return FR_OK;
}

static void template_free(fr_chat_template *t) {
    if (!t) return;
    fr_jinja_template_free(t->def);
    fr_jinja_template_free(t->tool_use);
    free(t->source);
    cJSON_Delete(t->tokens);
    free(t);
}

void fr_chat_template_free(fr_chat_template *t) {
    template_free(t);
}

const char *fr_chat_template_source(const fr_chat_template *t) {
    return t ? t->source : NULL;
}

static fr_chat_template *template_new(fr_error *err) {
    fr_chat_template *t = calloc(1, sizeof *t);
    if (t && !(t->tokens = cJSON_CreateObject())) {
        free(t);
        t = NULL;
    }
    if (!t) fr_error_set(err, FR_ERR_NOMEM, "chat template: out of memory");
    return t;
}

fr_status fr_chat_template_set_token(fr_chat_template *t, const char *name, const char *value,
                                     fr_error *err) {
    if (!t || !name) return fr_error_set(err, FR_ERR_INVALID, "chat template: NULL argument");
    cJSON_DeleteItemFromObjectCaseSensitive(t->tokens, name);
    if (!value) return FR_OK;
    cJSON *s = cJSON_CreateString(value);
    if (!s || !cJSON_AddItemToObject(t->tokens, name, s)) {
        cJSON_Delete(s);
        return fr_error_set(err, FR_ERR_NOMEM, "chat template: out of memory");
    }
    return FR_OK;
}

static fr_status compile(fr_chat_template *t, const char *src, size_t len, bool tool_use,
                         fr_error *err) {
    fr_jinja_template **slot = tool_use ? &t->tool_use : &t->def;
    fr_status st = fr_jinja_compile(
        src, len, tool_use ? "chat template 'tool_use'" : "chat template", slot, err);
    if (st || tool_use) return st;
    if (!(t->source = malloc(len + 1)))
        return fr_error_set(err, FR_ERR_NOMEM, "chat template: out of memory");
    memcpy(t->source, src, len);
    t->source[len] = '\0';
    return FR_OK;
}

fr_status fr_chat_template_from_source(const char *src, size_t len, const char *bos_token,
                                       const char *eos_token, fr_chat_template **out,
                                       fr_error *err) {
    if (!out || !src) return fr_error_set(err, FR_ERR_INVALID, "chat template: NULL argument");
    *out = NULL;
    fr_chat_template *t = template_new(err);
    if (!t) return FR_ERR_NOMEM;
    fr_status st = compile(t, src, len, false, err);
    if (!st && bos_token) st = fr_chat_template_set_token(t, "bos_token", bos_token, err);
    if (!st && eos_token) st = fr_chat_template_set_token(t, "eos_token", eos_token, err);
    if (st) {
        template_free(t);
        return st;
    }
    *out = t;
    return FR_OK;
}

/* A special token in tokenizer_config.json: "<s>" or {"content": "<s>", ...}; NULL if neither. */
static const char *token_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

static fr_status load_tokens(fr_chat_template *t, const cJSON *cfg, const char *path,
                             fr_error *err) {
    static const char *const NAMES[] = {"bos_token", "eos_token", "unk_token",  "sep_token",
                                        "pad_token", "cls_token", "mask_token", NULL};
    for (const char *const *n = NAMES; *n; n++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, *n);
        if (!v || cJSON_IsNull(v)) continue;
        const char *s = token_text(v);
        if (!s)
            return fr_error_set(err, FR_ERR_FORMAT,
                                "%s: \"%s\" is neither a string nor {\"content\": string}", path,
                                *n);
        fr_status st = fr_chat_template_set_token(t, *n, s, err);
        if (st) return st;
    }
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(cfg, "additional_special_tokens");
    if (cJSON_IsArray(add)) {
        cJSON *list = cJSON_CreateArray();
        if (!list || !cJSON_AddItemToObject(t->tokens, "additional_special_tokens", list)) {
            cJSON_Delete(list);
            return fr_error_set(err, FR_ERR_NOMEM, "chat template: out of memory");
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, add) {
            const char *s = token_text(it);
            if (!s)
                return fr_error_set(err, FR_ERR_FORMAT,
                                    "%s: an additional_special_tokens entry is not a token", path);
            cJSON *c = cJSON_CreateString(s);
            if (!c || !cJSON_AddItemToArray(list, c)) {
                cJSON_Delete(c);
                return fr_error_set(err, FR_ERR_NOMEM, "chat template: out of memory");
            }
        }
    }
    return FR_OK;
}

/* "chat_template": a string, or [{"name": ..., "template": ...}, ...]. */
static fr_status load_template_field(fr_chat_template *t, const cJSON *field, const char *path,
                                     fr_error *err) {
    if (cJSON_IsString(field))
        return compile(t, field->valuestring, strlen(field->valuestring), false, err);
    if (!cJSON_IsArray(field))
        return fr_error_set(
            err, FR_ERR_FORMAT,
            "%s: \"chat_template\" is neither a string nor a list of {name, template}", path);
    const cJSON *it;
    cJSON_ArrayForEach(it, field) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(it, "template");
        if (!cJSON_IsString(name) || !cJSON_IsString(tpl))
            return fr_error_set(err, FR_ERR_FORMAT,
                                "%s: a \"chat_template\" entry lacks a string name or template",
                                path);
        bool is_default = !strcmp(name->valuestring, "default"),
             is_tool = !strcmp(name->valuestring, "tool_use");
        if (!is_default && !is_tool) continue;
        if ((is_default && t->def) || (is_tool && t->tool_use))
            return fr_error_set(err, FR_ERR_FORMAT, "%s: duplicate chat template \"%s\"", path,
                                name->valuestring);
        fr_status st = compile(t, tpl->valuestring, strlen(tpl->valuestring), is_tool, err);
        if (st) return fr_error_prefix(err, st, "%s", path);
    }
    if (!t->def)
        return fr_error_set(err, FR_ERR_NOT_FOUND,
                            "%s: \"chat_template\" has no template named \"default\"", path);
    return FR_OK;
}

static bool is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* A GGUF model file (its template lives in the metadata). */
static bool is_gguf(const char *path) {
    char magic[4];
    FILE *f = is_dir(path) ? NULL : fopen(path, "rb");
    if (!f) return false;
    bool yes = fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    fclose(f);
    return yes;
}

static cJSON *parse_json_file(const char *path, fr_status *st, fr_error *err) {
    char *text = NULL;
    size_t len = 0;
    *st = fr_chat_read_file(path, MAX_CONFIG_BYTES, &text, &len, err);
    if (*st) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j) {
        size_t off = 0;
        const char *ep = cJSON_GetErrorPtr();
        if (ep && ep >= text && ep <= text + len) off = (size_t)(ep - text);
        *st = fr_error_set(err, FR_ERR_FORMAT, "%s: malformed JSON near byte %zu", path, off);
    } else if (!cJSON_IsObject(j)) {
        *st = fr_error_set(err, FR_ERR_FORMAT, "%s: expected a JSON object", path);
        cJSON_Delete(j);
        j = NULL;
    }
    free(text);
    return j;
}

fr_status fr_chat_template_load(const char *path, fr_chat_template **out, fr_error *err) {
    if (!path || !out) return fr_error_set(err, FR_ERR_INVALID, "chat template: NULL argument");
    *out = NULL;
    if (is_gguf(path)) return fr_chat_template_load_gguf(path, out, err);
    size_t plen = strlen(path);
    char *dir = malloc(plen + 2), *p = malloc(plen + 64);
    fr_chat_template *t = template_new(err);
    cJSON *cfg = NULL;
    fr_status st = FR_OK;
    if (!dir || !p || !t) {
        st = fr_error_set(err, FR_ERR_NOMEM, "chat template: out of memory");
        goto done;
    }
    const char *cfg_path;
    if (is_dir(path)) {
        snprintf(dir, plen + 2, "%s", path);
        snprintf(p, plen + 64, "%s/tokenizer_config.json", dir);
        cfg_path = p;
    } else {
        cfg_path = path;
        snprintf(dir, plen + 2, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, plen + 2, ".");
    }
    char *cfg_copy = strdup(cfg_path);
    if (!cfg_copy) {
        st = fr_error_set(err, FR_ERR_NOMEM, "chat template: out of memory");
        goto done;
    }
    cfg = parse_json_file(cfg_copy, &st, err);
    bool have_cfg = cfg != NULL;
    /* a folder may lack the config (chat_template.jinja alone); a named file must exist */
    if (!have_cfg && (st != FR_ERR_NOT_FOUND || cfg_path == path)) {
        free(cfg_copy);
        goto done;
    }
    if (have_cfg && (st = load_tokens(t, cfg, cfg_copy, err))) {
        free(cfg_copy);
        goto done;
    }
    /* newer transformers keep the template beside the config; it wins when present */
    snprintf(p, plen + 64, "%s/chat_template.jinja", dir);
    char *src = NULL;
    size_t len = 0;
    st = fr_chat_read_file(p, MAX_CONFIG_BYTES, &src, &len, err);
    if (st == FR_OK) {
        st = compile(t, src, len, false, err);
        if (st) fr_error_prefix(err, st, "%s", p);
        free(src);
    } else if (st == FR_ERR_NOT_FOUND) {
        snprintf(p, plen + 64, "%s/chat_template.json", dir);
        cJSON *ct = parse_json_file(p, &st, err);
        if (ct) {
            st = load_template_field(t, cJSON_GetObjectItemCaseSensitive(ct, "chat_template"), p,
                                     err);
            cJSON_Delete(ct);
        } else if (st == FR_ERR_NOT_FOUND) {
            const cJSON *field =
                have_cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "chat_template") : NULL;
            if (!field || cJSON_IsNull(field))
                st = fr_error_set(err, FR_ERR_NOT_FOUND, "%s: the model has no chat template",
                                  have_cfg ? cfg_copy : dir);
            else
                st = load_template_field(t, field, cfg_copy, err);
        }
    }
    free(cfg_copy);
done:
    cJSON_Delete(cfg);
    free(dir);
    free(p);
    if (st) {
        template_free(t);
        return st;
    }
    *out = t;
    return FR_OK;
}

fr_status fr_chat_template_render(const fr_chat_template *t, const char *messages_json,
                                  const char *tools_json, bool add_generation_prompt,
                                  const char *extra_vars_json, char **out, size_t *out_len,
                                  fr_error *err) {
    if (!t || !messages_json || !out)
        return fr_error_set(err, FR_ERR_INVALID, "chat template: NULL argument");
    *out = NULL;
    fr_jinja_vars *v = fr_jinja_vars_new();
    if (!v) return fr_error_set(err, FR_ERR_NOMEM, "chat template: out of memory");
    fr_status st = FR_OK;
    char *tok = cJSON_PrintUnformatted(t->tokens);
    if (!tok) {
        st = fr_error_set(err, FR_ERR_NOMEM, "chat template: out of memory");
        goto done;
    }
    /* transformers: render(messages=, tools=, documents=, add_generation_prompt=,
     * **special_tokens_map, **kwargs): the caller's kwargs override special tokens, and may not
     * repeat the four named arguments. */
    if ((st = fr_jinja_vars_merge_json(v, tok, strlen(tok), err))) goto done;
    if (extra_vars_json) {
        if ((st = fr_jinja_vars_merge_json(v, extra_vars_json, strlen(extra_vars_json), err)))
            goto done;
        cJSON *x = cJSON_Parse(extra_vars_json);
        static const char *const RESERVED[] = {"messages", "tools", "documents",
                                               "add_generation_prompt", NULL};
        for (const char *const *r = RESERVED; x && *r; r++) {
            if (cJSON_GetObjectItemCaseSensitive(x, *r)) {
                st =
                    fr_error_set(err, FR_ERR_INVALID,
                                 "chat template: extra variable '%s' repeats a named argument", *r);
                break;
            }
        }
        cJSON_Delete(x);
        if (st) goto done;
    }
    const char *m = messages_json;
    while (*m == ' ' || *m == '\t' || *m == '\n' || *m == '\r')
        m++;
    if (*m != '[') {
        st = fr_error_set(err, FR_ERR_INVALID, "chat template: messages must be a JSON array");
        goto done;
    }
    if ((st = fr_jinja_vars_set_json(v, "messages", messages_json, strlen(messages_json), err)))
        goto done;
    if (tools_json)
        st = fr_jinja_vars_set_json(v, "tools", tools_json, strlen(tools_json), err);
    else
        st = fr_jinja_vars_set_none(v, "tools", err);
    if (st || (st = fr_jinja_vars_set_none(v, "documents", err)) ||
        (st = fr_jinja_vars_set_bool(v, "add_generation_prompt", add_generation_prompt, err)))
        goto done;
    const fr_jinja_template *tpl = tools_json && t->tool_use ? t->tool_use : t->def;
    st = fr_jinja_render(tpl, v, out, out_len, err);
done:
    free(tok);
    fr_jinja_vars_free(v);
    return st;
}
