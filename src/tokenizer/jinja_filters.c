/* Jinja filters, tests and global functions with jinja2's semantics. jinja2 builtins that are not
 * implemented here are still "known" names, so a template that merely contains them in an untaken
 * branch renders as in jinja2; applying one fails with an error naming it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer/jinja_internal.h"

#define MAX_RANGE 100000 /* jinja2's sandbox refuses longer ranges */

static fr_jval *nomem(fr_jeval *e, const fr_jnode *n) {
    return fr_jeval_nomem(e, n);
}
static fr_jval *or_nomem(fr_jeval *e, const fr_jnode *n, fr_jval *v) {
    return v ? v : nomem(e, n);
}

static const char *const FILTERS[] = {
    "abs",       "attr",       "batch",       "capitalize", "center",  "count",
    "d",         "default",    "dictsort",    "e",          "escape",  "filesizeformat",
    "first",     "float",      "forceescape", "format",     "groupby", "indent",
    "int",       "join",       "last",        "length",     "list",    "lower",
    "items",     "map",        "min",         "max",        "pprint",  "random",
    "reject",    "rejectattr", "replace",     "reverse",    "round",   "safe",
    "select",    "selectattr", "slice",       "sort",       "string",  "striptags",
    "sum",       "title",      "trim",        "truncate",   "unique",  "upper",
    "urlencode", "urlize",     "wordcount",   "wordwrap",   "xmlattr", "tojson",
    NULL};

static const char *const TESTS[] = {
    "odd",     "even",   "divisibleby", "defined",  "undefined", "filter", "test",    "none",
    "boolean", "false",  "true",        "integer",  "float",     "lower",  "upper",   "string",
    "mapping", "number", "sequence",    "iterable", "callable",  "sameas", "escaped", "in",
    "==",      "eq",     "equalto",     "!=",       "ne",        ">",      "gt",      "greaterthan",
    "ge",      ">=",     "<",           "lt",       "lessthan",  "<=",     "le",      NULL};

static bool in_list(const char *const *l, const char *s) {
    for (; *l; l++)
        if (!strcmp(*l, s)) return true;
    return false;
}

bool fr_jinja_filter_known(const char *name) {
    return in_list(FILTERS, name);
}
bool fr_jinja_test_known(const char *name) {
    return in_list(TESTS, name);
}

/* ---------------------------------------------------------------- arguments */

fr_jval *fr_jargs_get(const fr_jargs *a, size_t i, const char *name, fr_jval *dflt) {
    if (i < a->npos) return a->pos[i];
    for (size_t k = 0; name && k < a->nkw; k++)
        if (!strcmp(a->kwn[k], name)) return a->kwv[k];
    return dflt;
}

bool fr_jargs_check(fr_jeval *e, const fr_jnode *n, const char *what, const fr_jargs *a,
                    size_t max_pos, const char *const *kw) {
    if (a->npos > max_pos) {
        fr_jeval_fail(e, n, FR_ERR_INVALID, "%s takes at most %zu positional argument(s), got %zu",
                      what, max_pos, a->npos);
        return false;
    }
    for (size_t k = 0; k < a->nkw; k++) {
        size_t idx = 0;
        bool ok = false;
        for (const char *const *p = kw; p && *p; p++, idx++)
            if (!strcmp(*p, a->kwn[k])) ok = idx >= a->npos; /* not also given positionally */
        if (!ok) {
            fr_jeval_fail(e, n, FR_ERR_INVALID,
                          "%s got an unexpected or repeated keyword argument '%s'", what,
                          a->kwn[k]);
            return false;
        }
    }
    return true;
}

static fr_jval *str_of(fr_jeval *e, const fr_jnode *n, fr_jval *v) {
    return fr_jeval_to_str(e, n, v);
}

static fr_jval *make_str(fr_jeval *e, const fr_jnode *n, fr_jbuf *b) {
    return fr_jeval_buf_str(e, n, b);
}

/* ---------------------------------------------------------------- individual filters */

static fr_jval *f_length(fr_jeval *e, const fr_jnode *n, fr_jval *v) {
    switch ((fr_jtype)v->type) {
    case JV_UNDEF:
        return or_nomem(e, n, fr_jv_int(e->a, 0));
    case JV_STR:
        return or_nomem(e, n, fr_jv_int(e->a, (int64_t)fr_jutf8_len(v->u.str.s, v->u.str.len)));
    case JV_LIST:
        if (v->sub == JL_ITER) break;
        return or_nomem(e, n, fr_jv_int(e->a, (int64_t)v->u.list.n));
    case JV_DICT:
        return or_nomem(e, n, fr_jv_int(e->a, (int64_t)v->u.dict.n));
    default:
        break;
    }
    return fr_jeval_fail(e, n, FR_ERR_INVALID, "object of type '%s' has no len()",
                         fr_jv_type_name(v));
}

static fr_jval *f_tojson(fr_jeval *e, const fr_jnode *n, fr_jval *v, fr_jargs *a) {
    /* transformers' signature: tojson(x, ensure_ascii=False, indent=None, separators=None,
     * sort_keys=False) */
    static const char *const KW[] = {"ensure_ascii", "indent", "separators", "sort_keys", NULL};
    if (!fr_jargs_check(e, n, "tojson", a, 4, KW)) return NULL;
    fr_jval *ea = fr_jargs_get(a, 0, "ensure_ascii", &fr_jv_false);
    fr_jval *ind = fr_jargs_get(a, 1, "indent", &fr_jv_none);
    fr_jval *sep = fr_jargs_get(a, 2, "separators", &fr_jv_none);
    fr_jval *sk = fr_jargs_get(a, 3, "sort_keys", &fr_jv_false);
    fr_jjson_opts o = {
        .ensure_ascii = fr_jv_truthy(ea), .indent = -1, .sort_keys = fr_jv_truthy(sk)};
    if (ind->type == JV_INT) {
        if (ind->u.i > 64)
            return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "tojson: indent too large");
        o.indent = ind->u.i < 0 ? 0 : (int)ind->u.i;
    } else if (ind->type != JV_NONE) {
        return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "tojson: indent must be an integer or None");
    }
    o.item_sep = o.indent >= 0 ? "," : ", ";
    o.key_sep = ": ";
    if (sep->type != JV_NONE) {
        if (!fr_jv_is_seq(sep) || sep->u.list.n != 2 || sep->u.list.v[0]->type != JV_STR ||
            sep->u.list.v[1]->type != JV_STR)
            return fr_jeval_fail(e, n, FR_ERR_INVALID,
                                 "tojson: separators must be a pair of strings");
        o.item_sep = sep->u.list.v[0]->u.str.s;
        o.key_sep = sep->u.list.v[1]->u.str.s;
    }
    fr_jbuf b = {0};
    const char *why = NULL;
    if (!fr_jv_to_json(&b, v, &o, 0, &why)) {
        fr_jbuf_free(&b);
        return fr_jeval_fail(e, n, FR_ERR_INVALID, "tojson: %s", why);
    }
    return make_str(e, n, &b);
}

static fr_jval *f_join(fr_jeval *e, const fr_jnode *n, fr_jval *v, fr_jargs *a) {
    static const char *const KW[] = {"d", "attribute", NULL};
    if (!fr_jargs_check(e, n, "join", a, 2, KW)) return NULL;
    fr_jval *d = fr_jargs_get(a, 0, "d", NULL),
            *attr = fr_jargs_get(a, 1, "attribute", &fr_jv_none);
    if (attr->type != JV_NONE)
        return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "join: attribute= is not supported");
    if (d && !(d = str_of(e, n, d))) return NULL;
    fr_jval *items = fr_jeval_iterate(e, n, v);
    if (!items) return NULL;
    fr_jbuf b = {0};
    for (size_t i = 0; i < items->u.list.n; i++) {
        if (i && d) fr_jbuf_put(&b, d->u.str.s, d->u.str.len);
        const char *why = NULL;
        if (!fr_jv_str_append(&b, items->u.list.v[i], &why)) {
            fr_jbuf_free(&b);
            return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "join: %s", why);
        }
    }
    return make_str(e, n, &b);
}

/* Python int(str): optional sign, digits with single underscores, surrounding whitespace. */
static bool parse_py_int(const char *s, size_t len, int64_t *out) {
    size_t i = 0;
    while (i < len && fr_py_isspace((unsigned char)s[i]))
        i++;
    while (len > i && fr_py_isspace((unsigned char)s[len - 1]))
        len--;
    bool neg = false;
    if (i < len && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i >= len) return false;
    uint64_t v = 0;
    bool prev_us = true;
    for (; i < len; i++) {
        if (s[i] == '_' && !prev_us) {
            prev_us = true;
            continue;
        }
        if (s[i] < '0' || s[i] > '9') return false;
        prev_us = false;
        if (v > (uint64_t)INT64_MAX / 10) return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > (uint64_t)INT64_MAX) return false;
    }
    if (prev_us) return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

static bool parse_py_float(const char *s, size_t len, double *out) {
    char tmp[128];
    size_t i = 0;
    while (i < len && fr_py_isspace((unsigned char)s[i]))
        i++;
    while (len > i && fr_py_isspace((unsigned char)s[len - 1]))
        len--;
    if (len - i == 0 || len - i >= sizeof tmp) return false;
    memcpy(tmp, s + i, len - i);
    tmp[len - i] = '\0';
    for (size_t k = 0; tmp[k]; k++)
        if (!strchr("0123456789+-.eEinfatyINFATY", tmp[k])) return false; /* no hex floats */
    char *end;
    *out = strtod(tmp, &end);
    return *end == '\0';
}

static fr_jval *f_int(fr_jeval *e, const fr_jnode *n, fr_jval *v, fr_jargs *a) {
    static const char *const KW[] = {"default", "base", NULL};
    if (!fr_jargs_check(e, n, "int", a, 2, KW)) return NULL;
    fr_jval *dflt = fr_jargs_get(a, 0, "default", NULL), *base = fr_jargs_get(a, 1, "base", NULL);
    if (base && !(base->type == JV_INT && base->u.i == 10))
        return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "int: only base 10 is supported");
    int64_t r;
    double f;
    if (v->type == JV_INT || v->type == JV_BOOL)
        return or_nomem(e, n, fr_jv_int(e->a, v->type == JV_INT ? v->u.i : v->u.b));
    if (v->type == JV_FLOAT && isfinite(v->u.f) && fabs(v->u.f) < 9.2e18)
        return or_nomem(e, n, fr_jv_int(e->a, (int64_t)v->u.f));
    if (v->type == JV_STR) {
        if (parse_py_int(v->u.str.s, v->u.str.len, &r)) return or_nomem(e, n, fr_jv_int(e->a, r));
        if (parse_py_float(v->u.str.s, v->u.str.len, &f) && isfinite(f) && fabs(f) < 9.2e18)
            return or_nomem(e, n, fr_jv_int(e->a, (int64_t)f));
    }
    return dflt ? dflt : or_nomem(e, n, fr_jv_int(e->a, 0));
}

static fr_jval *f_float(fr_jeval *e, const fr_jnode *n, fr_jval *v, fr_jargs *a) {
    static const char *const KW[] = {"default", NULL};
    if (!fr_jargs_check(e, n, "float", a, 1, KW)) return NULL;
    fr_jval *dflt = fr_jargs_get(a, 0, "default", NULL);
    double f;
    if (fr_jv_is_number(v)) return or_nomem(e, n, fr_jv_float(e->a, fr_jv_as_double(v)));
    if (v->type == JV_STR && parse_py_float(v->u.str.s, v->u.str.len, &f))
        return or_nomem(e, n, fr_jv_float(e->a, f));
    return dflt ? dflt : or_nomem(e, n, fr_jv_float(e->a, 0.0));
}

static fr_jval *f_reverse(fr_jeval *e, const fr_jnode *n, fr_jval *v) {
    if (v->type == JV_STR) {
        const char *s = v->u.str.s;
        size_t len = v->u.str.len;
        char *p = fr_jarena_alloc(e->a, len + 1);
        if (!p) return nomem(e, n);
        for (size_t i = 0; i < len;) {
            size_t j = fr_jutf8_next(s, len, i);
            memcpy(p + (len - j), s + i, j - i);
            i = j;
        }
        return or_nomem(e, n, fr_jv_str_owned(e->a, p, len));
    }
    fr_jval *items = fr_jeval_iterate(e, n, v);
    if (!items) return NULL;
    fr_jval *r = fr_jv_list(e->a, items->u.list.n, JL_ITER); /* reversed() is an iterator */
    if (!r) return nomem(e, n);
    for (size_t i = 0; i < items->u.list.n; i++)
        r->u.list.v[i] = items->u.list.v[items->u.list.n - 1 - i];
    return r;
}

static fr_jval *to_list(fr_jeval *e, const fr_jnode *n, fr_jval *v, int sub) {
    fr_jval *items = fr_jeval_iterate(e, n, v);
    if (!items) return NULL;
    fr_jval *r = fr_jv_list(e->a, items->u.list.n, sub);
    if (!r) return nomem(e, n);
    if (items->u.list.n) memcpy(r->u.list.v, items->u.list.v, items->u.list.n * sizeof(fr_jval *));
    return r;
}

/* jinja2's title filter: upper-case the first character of each word, lower the rest, where
 * words start after runs of whitespace, '-', '(', '{', '[' or '<'. */
static fr_jval *f_title(fr_jeval *e, const fr_jnode *n, fr_jval *v) {
    const char *s = v->u.str.s;
    size_t len = v->u.str.len;
    fr_jbuf b = {0};
    bool start = true;
    for (size_t i = 0; i < len;) {
        size_t j = fr_jutf8_next(s, len, i);
        uint32_t cp = fr_jutf8_decode(s, len, i);
        bool sep =
            fr_py_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
        fr_jval piece = {.type = JV_STR, .u.str = {s + i, j - i}};
        fr_jval *m = sep ? &piece : fr_jstr_case(e, n, &piece, start ? 0 : 1);
        if (!m) {
            fr_jbuf_free(&b);
            return NULL;
        }
        fr_jbuf_put(&b, m->u.str.s, m->u.str.len);
        start = sep;
        i = j;
    }
    return make_str(e, n, &b);
}

/* Python str.splitlines() boundaries, for the indent filter. */
static size_t line_break_len(const char *s, size_t len, size_t i) {
    uint32_t cp = fr_jutf8_decode(s, len, i);
    if (cp == '\r') return i + 1 < len && s[i + 1] == '\n' ? 2 : 1;
    if (cp == '\n' || cp == 0x0B || cp == 0x0C || (cp >= 0x1C && cp <= 0x1E)) return 1;
    if (cp == 0x85) return 2;
    if (cp == 0x2028 || cp == 0x2029) return 3;
    return 0;
}

static fr_jval *f_indent(fr_jeval *e, const fr_jnode *n, fr_jval *v, fr_jargs *a) {
    static const char *const KW[] = {"width", "first", "blank", NULL};
    if (!fr_jargs_check(e, n, "indent", a, 3, KW)) return NULL;
    fr_jval *w = fr_jargs_get(a, 0, "width", NULL),
            *first = fr_jargs_get(a, 1, "first", &fr_jv_false),
            *blank = fr_jargs_get(a, 2, "blank", &fr_jv_false);
    fr_jbuf ind = {0};
    if (!w) {
        fr_jbuf_puts(&ind, "    ");
    } else if (w->type == JV_INT) {
        for (int64_t i = 0; i < w->u.i && i < 1024; i++)
            fr_jbuf_putc(&ind, ' ');
    } else if (w->type == JV_STR) {
        fr_jbuf_put(&ind, w->u.str.s, w->u.str.len);
    } else {
        return fr_jeval_fail(e, n, FR_ERR_INVALID, "indent: width must be an integer or a string");
    }
    const char *s = v->u.str.s;
    size_t len = v->u.str.len;
    fr_jbuf b = {0};
    if (fr_jv_truthy(first)) fr_jbuf_put(&b, ind.data ? ind.data : "", ind.len);
    /* jinja2 indents (s + "\n").splitlines(): the pieces of s between line breaks, the last
     * one included even when empty; empty lines stay unindented unless blank */
    size_t i = 0, line = 0;
    while (1) {
        size_t j = i, br = 0;
        while (j < len && !(br = line_break_len(s, len, j)))
            j = fr_jutf8_next(s, len, j);
        if (line > 0) {
            fr_jbuf_putc(&b, '\n');
            if (j > i || fr_jv_truthy(blank)) fr_jbuf_put(&b, ind.data ? ind.data : "", ind.len);
        }
        fr_jbuf_put(&b, s + i, j - i);
        line++;
        if (j >= len) break;
        i = j + br;
    }
    fr_jbuf_free(&ind);
    return make_str(e, n, &b);
}

/* jinja2's attribute getter for map/selectattr: "a.b.0" looks up item by item (dict keys
 * first, then attributes; digit parts as integer indexes). */
static fr_jval *attr_path(fr_jeval *e, const fr_jnode *n, fr_jval *v, const fr_jval *path) {
    const char *p = path->u.str.s, *end = p + path->u.str.len;
    while (v) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t len = dot ? (size_t)(dot - p) : (size_t)(end - p);
        bool digits = len > 0;
        for (size_t i = 0; i < len; i++)
            if (p[i] < '0' || p[i] > '9') digits = false;
        fr_jval *key =
            digits && len < 18 ? fr_jv_int(e->a, strtoll(p, NULL, 10)) : fr_jv_str(e->a, p, len);
        if (!key) return nomem(e, n);
        v = fr_jeval_getitem(e, n, v, key);
        if (!dot) break;
        p = dot + 1;
    }
    return v;
}

/* map / select / reject / selectattr / rejectattr produce generators. */
static fr_jval *f_map_select(fr_jeval *e, const fr_jnode *n, const char *name, fr_jval *v,
                             fr_jargs *a) {
    fr_jval *items = fr_jeval_iterate(e, n, v);
    if (!items) return NULL;
    fr_jval *r = fr_jv_list(e->a, items->u.list.n, JL_ITER);
    if (!r) return nomem(e, n);
    size_t k = 0;
    bool is_map = !strcmp(name, "map"), by_attr = strstr(name, "attr") != NULL;
    bool reject = name[0] == 'r';
    fr_jval *attr = NULL;
    size_t skip = 0;
    if (is_map) {
        attr = fr_jargs_get(a, 99, "attribute", NULL);
        if (!attr && a->npos == 0)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "map: no filter or attribute given");
        if (attr && attr->type != JV_STR)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "map: attribute must be a string");
        if (attr && a->nkw > 1)
            return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "map: only attribute= is supported");
    } else if (by_attr) {
        if (a->npos < 1 || a->pos[0]->type != JV_STR)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "%s: missing attribute name", name);
        attr = a->pos[0];
        skip = 1;
    }
    for (size_t i = 0; i < items->u.list.n; i++) {
        fr_jval *it = items->u.list.v[i], *probe = it;
        if (attr && !(probe = attr_path(e, n, it, attr))) return NULL;
        if (is_map) {
            if (!attr) {
                if (a->pos[0]->type != JV_STR)
                    return fr_jeval_fail(e, n, FR_ERR_INVALID, "map: filter name must be a string");
                fr_jargs sub = {a->pos + 1, a->npos - 1, a->kwn, a->kwv, a->nkw};
                if (!fr_jinja_filter_known(a->pos[0]->u.str.s))
                    return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "unknown filter '%s'",
                                         a->pos[0]->u.str.s);
                if (!(probe = fr_jinja_filter(e, n, a->pos[0]->u.str.s, it, &sub))) return NULL;
            }
            r->u.list.v[k++] = probe;
            continue;
        }
        int keep;
        if (a->npos > skip) {
            fr_jval *tn = a->pos[skip];
            if (tn->type != JV_STR)
                return fr_jeval_fail(e, n, FR_ERR_INVALID, "%s: test name must be a string", name);
            if (!fr_jinja_test_known(tn->u.str.s))
                return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "unknown test '%s'", tn->u.str.s);
            fr_jargs sub = {a->pos + skip + 1, a->npos - skip - 1, a->kwn, a->kwv, a->nkw};
            if ((keep = fr_jinja_test(e, n, tn->u.str.s, probe, &sub)) < 0) return NULL;
        } else {
            keep = fr_jv_truthy(probe);
        }
        if (keep != reject) r->u.list.v[k++] = it;
    }
    r->u.list.n = k;
    return r;
}

static fr_jval *f_default(fr_jeval *e, const fr_jnode *n, fr_jval *v, fr_jargs *a) {
    static const char *const KW[] = {"default_value", "boolean", NULL};
    if (!fr_jargs_check(e, n, "default", a, 2, KW)) return NULL;
    fr_jval *d = fr_jargs_get(a, 0, "default_value", NULL),
            *boolean = fr_jargs_get(a, 1, "boolean", &fr_jv_false);
    if (v->type == JV_UNDEF || (fr_jv_truthy(boolean) && !fr_jv_truthy(v)))
        return d ? d : or_nomem(e, n, fr_jv_str(e->a, "", 0));
    return v;
}

static fr_jval *f_escape(fr_jeval *e, const fr_jnode *n, fr_jval *v) {
    fr_jbuf b = {0};
    for (size_t i = 0; i < v->u.str.len; i++) {
        char c = v->u.str.s[i];
        switch (c) {
        case '&':
            fr_jbuf_puts(&b, "&amp;");
            break;
        case '<':
            fr_jbuf_puts(&b, "&lt;");
            break;
        case '>':
            fr_jbuf_puts(&b, "&gt;");
            break;
        case '"':
            fr_jbuf_puts(&b, "&#34;");
            break;
        case '\'':
            fr_jbuf_puts(&b, "&#39;");
            break;
        default:
            fr_jbuf_putc(&b, c);
        }
    }
    return make_str(e, n, &b);
}

/* ---------------------------------------------------------------- dispatch */

fr_jval *fr_jinja_filter(fr_jeval *e, const fr_jnode *n, const char *name, fr_jval *v,
                         fr_jargs *a) {
    static const char *const NONE[] = {NULL};
#define NOARGS()                                                                                   \
    do {                                                                                           \
        if (!fr_jargs_check(e, n, name, a, 0, NONE)) return NULL;                                  \
    } while (0)
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        NOARGS();
        return f_length(e, n, v);
    }
    if (!strcmp(name, "tojson")) return f_tojson(e, n, v, a);
    if (!strcmp(name, "default") || !strcmp(name, "d")) return f_default(e, n, v, a);
    if (!strcmp(name, "join")) return f_join(e, n, v, a);
    if ((!strcmp(name, "int") || !strcmp(name, "float")) && v->type == JV_UNDEF)
        return fr_jeval_undef_error(e, n, v); /* int(Undefined) raises in jinja2 */
    if (!strcmp(name, "int")) return f_int(e, n, v, a);
    if (!strcmp(name, "float")) return f_float(e, n, v, a);
    if (!strcmp(name, "safe")) {
        NOARGS();
        return v;
    }
    if (!strcmp(name, "list")) {
        NOARGS();
        return to_list(e, n, v, JL_LIST);
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        NOARGS();
        fr_jval *items = fr_jeval_iterate(e, n, v);
        if (!items) return NULL;
        if (name[0] == 'l' && v->type == JV_LIST && v->sub == JL_ITER)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "last: cannot reverse a generator");
        if (!items->u.list.n)
            return or_nomem(e, n, fr_jv_undef_hint(e->a, "no %s item, sequence was empty", name));
        return items->u.list.v[name[0] == 'f' ? 0 : items->u.list.n - 1];
    }
    if (!strcmp(name, "reverse")) {
        NOARGS();
        return f_reverse(e, n, v);
    }
    if (!strcmp(name, "items")) {
        NOARGS();
        if (v->type == JV_UNDEF) return or_nomem(e, n, fr_jv_list(e->a, 0, JL_ITER));
        if (v->type != JV_DICT)
            return fr_jeval_fail(e, n, FR_ERR_INVALID,
                                 "items: can only get item pairs from a mapping");
        fr_jval *r = fr_jv_list(e->a, v->u.dict.n, JL_ITER);
        if (!r) return nomem(e, n);
        for (size_t i = 0; i < v->u.dict.n; i++) {
            fr_jval *t = fr_jv_list(e->a, 2, JL_TUPLE);
            if (!t) return nomem(e, n);
            t->u.list.v[0] = v->u.dict.k[i];
            t->u.list.v[1] = v->u.dict.v[i];
            r->u.list.v[i] = t;
        }
        return r;
    }
    if (!strcmp(name, "map") || !strcmp(name, "select") || !strcmp(name, "reject") ||
        !strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
        return f_map_select(e, n, name, v, a);
    if (!strcmp(name, "abs")) {
        NOARGS();
        if (v->type == JV_FLOAT) return or_nomem(e, n, fr_jv_float(e->a, fabs(v->u.f)));
        if (v->type == JV_INT || v->type == JV_BOOL) {
            int64_t i = v->type == JV_INT ? v->u.i : v->u.b;
            if (i == INT64_MIN) return fr_jeval_fail(e, n, FR_ERR_RANGE, "integer overflow");
            return or_nomem(e, n, fr_jv_int(e->a, i < 0 ? -i : i));
        }
        return fr_jeval_fail(e, n, FR_ERR_INVALID, "bad operand type for abs(): '%s'",
                             fr_jv_type_name(v));
    }
    /* the rest work on str(value) */
    bool string_filter =
        !strcmp(name, "string") || !strcmp(name, "trim") || !strcmp(name, "upper") ||
        !strcmp(name, "lower") || !strcmp(name, "capitalize") || !strcmp(name, "title") ||
        !strcmp(name, "replace") || !strcmp(name, "indent") || !strcmp(name, "escape") ||
        !strcmp(name, "e") || !strcmp(name, "wordcount");
    if (string_filter) {
        fr_jval *s = str_of(e, n, v);
        if (!s) return NULL;
        if (!strcmp(name, "string")) {
            NOARGS();
            return s;
        }
        if (!strcmp(name, "trim")) {
            static const char *const KW[] = {"chars", NULL};
            if (!fr_jargs_check(e, n, name, a, 1, KW)) return NULL;
            return fr_jstr_strip(e, n, s, fr_jargs_get(a, 0, "chars", NULL), 0);
        }
        if (!strcmp(name, "upper") || !strcmp(name, "lower")) {
            NOARGS();
            return fr_jstr_case(e, n, s, name[0] == 'u' ? 0 : 1);
        }
        if (!strcmp(name, "capitalize")) {
            NOARGS();
            return fr_jstr_case(e, n, s, 2);
        }
        if (!strcmp(name, "title")) {
            NOARGS();
            return f_title(e, n, s);
        }
        if (!strcmp(name, "escape") || !strcmp(name, "e")) {
            NOARGS();
            return f_escape(e, n, s);
        }
        if (!strcmp(name, "indent")) {
            if (v->type != JV_STR) /* jinja2 appends "\n" to the value: only strings work */
                return fr_jeval_fail(e, n, FR_ERR_INVALID,
                                     "indent: can only indent a string, not '%s'",
                                     fr_jv_type_name(v));
            return f_indent(e, n, s, a);
        }
        if (!strcmp(name, "replace")) {
            static const char *const KW[] = {"old", "new", "count", NULL};
            if (!fr_jargs_check(e, n, name, a, 3, KW)) return NULL;
            fr_jval *o = fr_jargs_get(a, 0, "old", NULL), *nw = fr_jargs_get(a, 1, "new", NULL),
                    *c = fr_jargs_get(a, 2, "count", &fr_jv_none);
            if (!o || !nw) return fr_jeval_fail(e, n, FR_ERR_INVALID, "replace: needs old and new");
            if (!(o = str_of(e, n, o)) || !(nw = str_of(e, n, nw))) return NULL;
            if (c->type != JV_NONE && c->type != JV_INT)
                return fr_jeval_fail(e, n, FR_ERR_INVALID, "replace: count must be an integer");
            return fr_jstr_replace(e, n, s, o, nw, c->type == JV_INT ? c->u.i : -1);
        }
    }
    return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "filter '%s' is not supported", name);
#undef NOARGS
}

/* ---------------------------------------------------------------- tests */

int fr_jinja_test(fr_jeval *e, const fr_jnode *n, const char *name, fr_jval *v, fr_jargs *a) {
    fr_jval *arg = fr_jargs_get(a, 0, NULL, NULL);
    if (!strcmp(name, "defined")) return v->type != JV_UNDEF;
    if (!strcmp(name, "undefined")) return v->type == JV_UNDEF;
    if (!strcmp(name, "none")) return v->type == JV_NONE;
    if (!strcmp(name, "boolean")) return v->type == JV_BOOL;
    if (!strcmp(name, "true")) return v->type == JV_BOOL && v->u.b;
    if (!strcmp(name, "false")) return v->type == JV_BOOL && !v->u.b;
    if (!strcmp(name, "integer")) return v->type == JV_INT;
    if (!strcmp(name, "float")) return v->type == JV_FLOAT;
    if (!strcmp(name, "number")) return fr_jv_is_number(v);
    if (!strcmp(name, "string")) return v->type == JV_STR;
    if (!strcmp(name, "mapping")) return v->type == JV_DICT;
    if (!strcmp(name, "sequence"))
        return v->type == JV_STR || v->type == JV_DICT || fr_jv_is_seq(v) ||
               (v->type == JV_LIST && v->sub == JL_VIEW) || v->type == JV_UNDEF;
    if (!strcmp(name, "iterable"))
        return v->type == JV_STR || v->type == JV_DICT || v->type == JV_LIST || v->type == JV_UNDEF;
    if (!strcmp(name, "callable"))
        return v->type == JV_FUNC || v->type == JV_MACRO || v->type == JV_METHOD;
    if (!strcmp(name, "sameas")) {
        if (!arg) return fr_jeval_fail(e, n, FR_ERR_INVALID, "sameas needs an argument"), -1;
        /* `is` identity: singletons compare equal, other values only to themselves */
        if (v->type == JV_NONE || v->type == JV_BOOL || v->type == JV_UNDEF)
            return v->type == arg->type && (v->type != JV_BOOL || v->u.b == arg->u.b);
        return v == arg;
    }
    if (!strcmp(name, "filter") || !strcmp(name, "test")) {
        if (v->type != JV_STR) return 0;
        return name[0] == 'f' ? fr_jinja_filter_known(v->u.str.s) : fr_jinja_test_known(v->u.str.s);
    }
    if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby")) {
        /* value % 2 == 1, value % 2 == 0, value % num == 0 with Python's modulo */
        fr_jval *d = name[0] == 'd' ? arg : NULL;
        if (!fr_jv_is_number(v) || (name[0] == 'd' && (!d || !fr_jv_is_number(d))))
            return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "test '%s' needs numbers", name), -1;
        double x = fr_jv_as_double(v), m = d ? fr_jv_as_double(d) : 2.0;
        if (m == 0) return fr_jeval_fail(e, n, FR_ERR_INVALID, "divisibleby: division by zero"), -1;
        if (v->type != JV_FLOAT && (!d || d->type != JV_FLOAT)) {
            int64_t xi = v->type == JV_INT ? v->u.i : v->u.b,
                    mi = d ? (d->type == JV_INT ? d->u.i : d->u.b) : 2;
            int64_t r = mi == -1 ? 0 : xi % mi;
            if (r != 0 && ((r < 0) != (mi < 0))) r += mi;
            return name[0] == 'o' ? r == 1 : r == 0;
        }
        double r = fmod(x, m);
        if (r != 0 && ((r < 0) != (m < 0))) r += m;
        return name[0] == 'o' ? r == 1.0 : r == 0.0;
    }
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        /* str(value).islower() / isupper(): some cased character and none of the other case */
        fr_jval *s = fr_jeval_to_str(e, n, v);
        if (!s) return -1;
        fr_jval *m = fr_jstr_case(e, n, s, name[0] == 'l' ? 1 : 0);
        fr_jval *o = m ? fr_jstr_case(e, n, s, name[0] == 'l' ? 0 : 1) : NULL;
        if (!o) return -1;
        bool same = m->u.str.len == s->u.str.len && !memcmp(m->u.str.s, s->u.str.s, s->u.str.len);
        bool cased = o->u.str.len != s->u.str.len || memcmp(o->u.str.s, s->u.str.s, s->u.str.len);
        return same && cased;
    }
    if (!strcmp(name, "in")) {
        if (!arg) return fr_jeval_fail(e, n, FR_ERR_INVALID, "test 'in' needs an argument"), -1;
        if (arg->type == JV_STR) {
            if (v->type != JV_STR)
                return fr_jeval_fail(e, n, FR_ERR_INVALID,
                                     "'in <string>' requires string as left operand"),
                       -1;
            return v->u.str.len == 0 ||
                   memmem(arg->u.str.s, arg->u.str.len, v->u.str.s, v->u.str.len) != NULL;
        }
        if (arg->type == JV_LIST) {
            for (size_t i = 0; i < arg->u.list.n; i++)
                if (fr_jv_equal(v, arg->u.list.v[i])) return 1;
            return 0;
        }
        if (arg->type == JV_DICT) return fr_jv_dict_get(arg, v) != NULL;
        if (arg->type == JV_UNDEF) return 0;
        return fr_jeval_fail(e, n, FR_ERR_INVALID, "argument of type '%s' is not iterable",
                             fr_jv_type_name(arg)),
               -1;
    }
    static const struct {
        const char *names[4];
        int op; /* 0 eq, 1 ne, 2 gt, 3 ge, 4 lt, 5 le */
    } CMP[] = {{{"==", "eq", "equalto", NULL}, 0},    {{"!=", "ne", NULL, NULL}, 1},
               {{">", "gt", "greaterthan", NULL}, 2}, {{">=", "ge", NULL, NULL}, 3},
               {{"<", "lt", "lessthan", NULL}, 4},    {{"<=", "le", NULL, NULL}, 5}};
    for (size_t k = 0; k < sizeof CMP / sizeof CMP[0]; k++) {
        for (int j = 0; j < 4 && CMP[k].names[j]; j++) {
            if (strcmp(name, CMP[k].names[j])) continue;
            if (!arg)
                return fr_jeval_fail(e, n, FR_ERR_INVALID, "test '%s' needs an argument", name), -1;
            int r;
            switch (CMP[k].op) {
            case 0:
                return fr_jv_equal(v, arg);
            case 1:
                return !fr_jv_equal(v, arg);
            case 2:
                return fr_jeval_less(e, n, arg, v);
            case 3:
                r = fr_jeval_less(e, n, v, arg);
                return r < 0 ? -1 : !r;
            case 4:
                return fr_jeval_less(e, n, v, arg);
            default:
                r = fr_jeval_less(e, n, arg, v);
                return r < 0 ? -1 : !r;
            }
        }
    }
    return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "test '%s' is not supported", name), -1;
}

/* ---------------------------------------------------------------- global functions */

static fr_jval *g_range(fr_jeval *e, const fr_jnode *n, fr_jargs *a) {
    if (a->nkw || a->npos < 1 || a->npos > 3)
        return fr_jeval_fail(e, n, FR_ERR_INVALID, "range expects 1 to 3 integer arguments");
    int64_t v[3] = {0, 0, 1};
    for (size_t i = 0; i < a->npos; i++) {
        fr_jval *x = a->pos[i];
        if (x->type != JV_INT && x->type != JV_BOOL)
            return fr_jeval_fail(e, n, FR_ERR_INVALID,
                                 "'%s' object cannot be interpreted as an integer",
                                 fr_jv_type_name(x));
        v[a->npos == 1 ? 1 : i] = x->type == JV_INT ? x->u.i : x->u.b;
    }
    int64_t start = v[0], stop = v[1], step = v[2];
    if (step == 0) return fr_jeval_fail(e, n, FR_ERR_INVALID, "range() arg 3 must not be zero");
    double cnt_d = step > 0 ? ceil(((double)stop - (double)start) / (double)step)
                            : ceil(((double)start - (double)stop) / (double)-step);
    if (cnt_d > MAX_RANGE)
        return fr_jeval_fail(e, n, FR_ERR_RANGE, "range too big, maximum size for range is %d",
                             MAX_RANGE);
    size_t cnt = cnt_d > 0 ? (size_t)cnt_d : 0;
    fr_jval *l = fr_jv_list(e->a, cnt, JL_LIST);
    if (!l) return nomem(e, n);
    for (size_t i = 0; i < cnt; i++)
        if (!(l->u.list.v[i] = fr_jv_int(e->a, start + (int64_t)i * step))) return nomem(e, n);
    return l;
}

fr_jval *fr_jinja_call_func(fr_jeval *e, const fr_jnode *n, fr_jval *f, fr_jargs *a) {
    switch ((fr_jfunc)f->sub) {
    case JF_RANGE:
        return g_range(e, n, a);
    case JF_NAMESPACE:
    case JF_DICT: {
        fr_jval *d = fr_jv_dict(e->a, f->sub == JF_NAMESPACE ? JV_NS : JV_DICT);
        if (!d) return nomem(e, n);
        if (a->npos > 1)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "expected at most 1 positional argument");
        if (a->npos == 1) {
            fr_jval *src = a->pos[0];
            if (src->type != JV_DICT && src->type != JV_NS)
                return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED,
                                     "only a mapping can initialise a namespace or dict");
            for (size_t i = 0; i < src->u.dict.n; i++)
                if (!fr_jv_dict_set(e->a, d, src->u.dict.k[i], src->u.dict.v[i]))
                    return nomem(e, n);
        }
        for (size_t i = 0; i < a->nkw; i++) {
            fr_jval *k = fr_jv_str(e->a, a->kwn[i], strlen(a->kwn[i]));
            if (!k || !fr_jv_dict_set(e->a, d, k, a->kwv[i])) return nomem(e, n);
        }
        return d;
    }
    case JF_RAISE: {
        fr_jval *m = a->npos ? fr_jeval_to_str(e, n, a->pos[0]) : NULL;
        if (a->npos && !m) return NULL;
        return fr_jeval_fail(e, n, FR_ERR_INVALID, "raise_exception: %s", m ? m->u.str.s : "");
    }
    case JF_STRFTIME: {
        if (a->npos != 1 || a->nkw || a->pos[0]->type != JV_STR)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "strftime_now expects one format string");
        time_t now = time(NULL);
        struct tm tm;
        char out[512];
        if (!localtime_r(&now, &tm))
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "strftime_now: no local time");
        size_t k = strftime(out, sizeof out, a->pos[0]->u.str.s, &tm);
        if (k == 0 && a->pos[0]->u.str.len > 0)
            return fr_jeval_fail(e, n, FR_ERR_INVALID,
                                 "strftime_now: format produced nothing or too much");
        return or_nomem(e, n, fr_jv_str(e->a, out, k));
    }
    }
    return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "unknown function");
}
