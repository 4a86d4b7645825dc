/* Jinja entry points: compiling a template, the variables of a render, error positions. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_internal.h"

fr_status fr_jinja_error_at(fr_error *err, fr_status code, const fr_jinja_template *t, uint32_t pos,
                            const char *fmt, ...) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < t->len; i++) {
        if (t->src[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)t->src[i] & 0xC0) != 0x80) {
            col++; /* columns count characters, not bytes */
        }
    }
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* a message cut at the buffer's end must not end inside a UTF-8 character */
    size_t n = strlen(msg), k = n;
    while (k > 0 && ((unsigned char)msg[k - 1] & 0xC0) == 0x80)
        k--;
    if (k > 0 && (unsigned char)msg[k - 1] >= 0xC0) {
        unsigned char lead = (unsigned char)msg[k - 1];
        size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
        if (n - (k - 1) < want) msg[k - 1] = '\0';
    }
    return fr_error_set(err, code, "%s line %zu column %zu: %s", t->name, line, col, msg);
}

fr_status fr_jinja_compile(const char *src, size_t len, const char *name, fr_jinja_template **out,
                           fr_error *err) {
    *out = NULL;
    if (!name) name = "template";
    if (!src) return fr_error_set(err, FR_ERR_INVALID, "%s: no source text", name);
    if (len > FR_JINJA_MAX_STRING)
        return fr_error_set(err, FR_ERR_RANGE,
                            "%s: %zu bytes exceeds the template limit of %zu MiB", name, len,
                            FR_JINJA_MAX_STRING >> 20);
    if (!fr_jutf8_valid(src, len))
        return fr_error_set(err, FR_ERR_FORMAT, "%s: not valid UTF-8", name);
    fr_jinja_template *t = calloc(1, sizeof *t);
    if (!t) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", name);
    snprintf(t->name, sizeof t->name, "%s", name);
    /* jinja2 turns \r\n and \r into \n everywhere and drops one trailing newline */
    t->src = fr_jarena_alloc(&t->arena, len + 1);
    if (!t->src) {
        fr_jinja_template_free(t);
        return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", name);
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            t->src[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            t->src[n++] = src[i];
        }
    }
    if (n && t->src[n - 1] == '\n') n--;
    t->src[n] = '\0';
    t->len = n;
    fr_jtoks toks = {0};
    fr_status st = fr_jinja_lex(t, &toks, err);
    if (st == FR_OK) st = fr_jinja_parse(t, &toks, err);
    free(toks.v);
    if (st != FR_OK) {
        fr_jinja_template_free(t);
        return st;
    }
    *out = t;
    return FR_OK;
}

void fr_jinja_template_free(fr_jinja_template *t) {
    if (!t) return;
    fr_jarena_free(&t->arena);
    free(t);
}

/* ---------------------------------------------------------------- variables */

fr_jinja_vars *fr_jinja_vars_new(void) {
    return calloc(1, sizeof(fr_jinja_vars));
}

void fr_jinja_vars_free(fr_jinja_vars *v) {
    if (!v) return;
    fr_jarena_free(&v->arena);
    free(v->names);
    free(v->vals);
    free(v);
}

static fr_status vars_put(fr_jinja_vars *v, const char *name, size_t nlen, fr_jval *val,
                          fr_error *err) {
    if (!val) return fr_error_set(err, FR_ERR_NOMEM, "template variables: out of memory");
    for (size_t i = 0; i < v->n; i++) {
        if (strlen(v->names[i]) == nlen && !memcmp(v->names[i], name, nlen)) {
            v->vals[i] = val;
            return FR_OK;
        }
    }
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        const char **nn = realloc(v->names, cap * sizeof *nn);
        if (!nn) return fr_error_set(err, FR_ERR_NOMEM, "template variables: out of memory");
        v->names = nn;
        fr_jval **vv = realloc(v->vals, cap * sizeof *vv);
        if (!vv) return fr_error_set(err, FR_ERR_NOMEM, "template variables: out of memory");
        v->vals = vv;
        v->cap = cap;
    }
    const char *copy = fr_jarena_strdup(&v->arena, name, nlen);
    if (!copy) return fr_error_set(err, FR_ERR_NOMEM, "template variables: out of memory");
    v->names[v->n] = copy;
    v->vals[v->n] = val;
    v->n++;
    return FR_OK;
}

fr_status fr_jinja_vars_set_json(fr_jinja_vars *v, const char *name, const char *json, size_t len,
                                 fr_error *err) {
    if (!v || !name || !json)
        return fr_error_set(err, FR_ERR_INVALID, "template variables: NULL argument");
    fr_error local = {0}, *e = err ? err : &local; /* the status lives in the error */
    fr_jval *val = fr_jv_from_json(&v->arena, json, len, e);
    if (!val) return fr_error_prefix(err, e->code, "template variable '%s'", name);
    return vars_put(v, name, strlen(name), val, err);
}

fr_status fr_jinja_vars_merge_json(fr_jinja_vars *v, const char *json, size_t len, fr_error *err) {
    if (!v || !json) return fr_error_set(err, FR_ERR_INVALID, "template variables: NULL argument");
    fr_error local = {0}, *e = err ? err : &local; /* the status lives in the error */
    fr_jval *obj = fr_jv_from_json(&v->arena, json, len, e);
    if (!obj) return fr_error_prefix(err, e->code, "template variables");
    if (obj->type != JV_DICT)
        return fr_error_set(err, FR_ERR_INVALID, "template variables: expected a JSON object");
    for (size_t i = 0; i < obj->u.dict.n; i++) {
        const fr_jval *k = obj->u.dict.k[i];
        fr_status st = vars_put(v, k->u.str.s, k->u.str.len, obj->u.dict.v[i], err);
        if (st) return st;
    }
    return FR_OK;
}

fr_status fr_jinja_vars_set_str(fr_jinja_vars *v, const char *name, const char *s, fr_error *err) {
    if (!v || !name || !s)
        return fr_error_set(err, FR_ERR_INVALID, "template variables: NULL argument");
    size_t n = strlen(s);
    if (!fr_jutf8_valid(s, n))
        return fr_error_set(err, FR_ERR_INVALID, "template variable '%s': not valid UTF-8", name);
    return vars_put(v, name, strlen(name), fr_jv_str(&v->arena, s, n), err);
}

fr_status fr_jinja_vars_set_bool(fr_jinja_vars *v, const char *name, bool b, fr_error *err) {
    if (!v || !name) return fr_error_set(err, FR_ERR_INVALID, "template variables: NULL argument");
    return vars_put(v, name, strlen(name), fr_jv_bool(b), err);
}

fr_status fr_jinja_vars_set_none(fr_jinja_vars *v, const char *name, fr_error *err) {
    if (!v || !name) return fr_error_set(err, FR_ERR_INVALID, "template variables: NULL argument");
    return vars_put(v, name, strlen(name), &fr_jv_none, err);
}
