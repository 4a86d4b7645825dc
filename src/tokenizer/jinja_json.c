/* JSON in and out of Jinja values with Python's json module semantics: json.loads keeps ints and
 * floats apart (1 vs 1.0 print differently), json.dumps is what transformers' tojson calls. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_internal.h"

#define JSON_MAX_DEPTH 200

/* ---------------------------------------------------------------- dumps */

static void put_utf16_escape(fr_jbuf *b, uint32_t cp) {
    if (cp >= 0x10000) {
        cp -= 0x10000;
        fr_jbuf_printf(b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
    } else {
        fr_jbuf_printf(b, "\\u%04x", cp);
    }
}

static void json_string(fr_jbuf *b, const char *s, size_t n, bool ensure_ascii) {
    fr_jbuf_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t j = fr_jutf8_next(s, n, i);
            if (!ensure_ascii) {
                fr_jbuf_put(b, s + i, j - i);
            } else {
                uint32_t cp = c >= 0xF0 ? c & 0x07 : c >= 0xE0 ? c & 0x0F : c & 0x1F;
                for (size_t k = i + 1; k < j; k++)
                    cp = (cp << 6) | ((unsigned char)s[k] & 0x3F);
                put_utf16_escape(b, cp);
            }
            i = j;
            continue;
        }
        switch (c) {
        case '"':
            fr_jbuf_puts(b, "\\\"");
            break;
        case '\\':
            fr_jbuf_puts(b, "\\\\");
            break;
        case '\n':
            fr_jbuf_puts(b, "\\n");
            break;
        case '\r':
            fr_jbuf_puts(b, "\\r");
            break;
        case '\t':
            fr_jbuf_puts(b, "\\t");
            break;
        case '\b':
            fr_jbuf_puts(b, "\\b");
            break;
        case '\f':
            fr_jbuf_puts(b, "\\f");
            break;
        default:
            /* ensure_ascii=False escapes only control characters; the ASCII encoder escapes
             * everything outside ' '..'~', DEL included. */
            if (c < 0x20 || (ensure_ascii && c == 0x7f))
                fr_jbuf_printf(b, "\\u%04x", c);
            else
                fr_jbuf_putc(b, (char)c);
        }
        i++;
    }
    fr_jbuf_putc(b, '"');
}

static void json_float(fr_jbuf *b, double f) {
    if (isnan(f))
        fr_jbuf_puts(b, "NaN");
    else if (isinf(f))
        fr_jbuf_puts(b, f < 0 ? "-Infinity" : "Infinity");
    else
        fr_jv_float_repr(b, f);
}

static void newline_indent(fr_jbuf *b, const fr_jjson_opts *o, int level) {
    fr_jbuf_putc(b, '\n');
    for (int i = 0; i < o->indent * level; i++)
        fr_jbuf_putc(b, ' ');
}

/* A dict key as json.dumps converts it: strings as they are, scalars to their JSON text. */
static bool json_key(fr_jbuf *b, const fr_jval *k, const fr_jjson_opts *o, const char **why) {
    switch ((fr_jtype)k->type) {
    case JV_STR:
        json_string(b, k->u.str.s, k->u.str.len, o->ensure_ascii);
        return true;
    case JV_NONE:
        fr_jbuf_puts(b, "\"null\"");
        return true;
    case JV_BOOL:
        fr_jbuf_puts(b, k->u.b ? "\"true\"" : "\"false\"");
        return true;
    case JV_INT:
        fr_jbuf_printf(b, "\"%lld\"", (long long)k->u.i);
        return true;
    case JV_FLOAT:
        fr_jbuf_putc(b, '"');
        json_float(b, k->u.f);
        fr_jbuf_putc(b, '"');
        return true;
    default:
        *why = "keys must be str, int, float, bool or None";
        return false;
    }
}

static int cmp_keys(const void *x, const void *y) {
    const fr_jval *a = **(fr_jval *const *const *)x, *b = **(fr_jval *const *const *)y;
    size_t n = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
    int c = memcmp(a->u.str.s, b->u.str.s, n);
    if (c) return c;
    return a->u.str.len < b->u.str.len ? -1 : a->u.str.len > b->u.str.len;
}

static bool json_dict(fr_jbuf *b, const fr_jval *v, const fr_jjson_opts *o, int depth,
                      const char **why) {
    size_t n = v->u.dict.n;
    if (n == 0) {
        fr_jbuf_puts(b, "{}");
        return true;
    }
    /* order[i] points at the key slot so the value is found at the same index */
    fr_jval *const **order = malloc(n * sizeof *order);
    if (!order) {
        *why = "out of memory";
        return false;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = &v->u.dict.k[i];
    if (o->sort_keys) {
        for (size_t i = 0; i < n; i++) {
            if (v->u.dict.k[i]->type != JV_STR) {
                free(order);
                *why = "sort_keys needs string keys";
                return false;
            }
        }
        qsort(order, n, sizeof *order, cmp_keys);
    }
    bool ok = true;
    fr_jbuf_putc(b, '{');
    for (size_t i = 0; i < n && ok; i++) {
        size_t idx = (size_t)(order[i] - v->u.dict.k);
        if (i) fr_jbuf_puts(b, o->item_sep);
        if (o->indent >= 0) newline_indent(b, o, depth + 1);
        ok = json_key(b, v->u.dict.k[idx], o, why);
        if (!ok) break;
        fr_jbuf_puts(b, o->key_sep);
        ok = fr_jv_to_json(b, v->u.dict.v[idx], o, depth + 1, why);
    }
    free(order);
    if (!ok) return false;
    if (o->indent >= 0) newline_indent(b, o, depth);
    fr_jbuf_putc(b, '}');
    return true;
}

bool fr_jv_to_json(fr_jbuf *b, const fr_jval *v, const fr_jjson_opts *o, int depth,
                   const char **why) {
    if (depth > JSON_MAX_DEPTH) {
        *why = "nesting too deep";
        return false;
    }
    switch ((fr_jtype)v->type) {
    case JV_NONE:
        fr_jbuf_puts(b, "null");
        return true;
    case JV_BOOL:
        fr_jbuf_puts(b, v->u.b ? "true" : "false");
        return true;
    case JV_INT:
        fr_jbuf_printf(b, "%lld", (long long)v->u.i);
        return true;
    case JV_FLOAT:
        json_float(b, v->u.f);
        return true;
    case JV_STR:
        json_string(b, v->u.str.s, v->u.str.len, o->ensure_ascii);
        return true;
    case JV_LIST:
        if (!fr_jv_is_seq(v)) break;
        if (v->u.list.n == 0) {
            fr_jbuf_puts(b, "[]");
            return true;
        }
        fr_jbuf_putc(b, '[');
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (i) fr_jbuf_puts(b, o->item_sep);
            if (o->indent >= 0) newline_indent(b, o, depth + 1);
            if (!fr_jv_to_json(b, v->u.list.v[i], o, depth + 1, why)) return false;
        }
        if (o->indent >= 0) newline_indent(b, o, depth);
        fr_jbuf_putc(b, ']');
        return true;
    case JV_DICT:
        return json_dict(b, v, o, depth, why);
    default:
        break;
    }
    *why = v->type == JV_UNDEF ? "Object of type Undefined is not JSON serializable"
                               : "object is not JSON serializable";
    return false;
}

/* ---------------------------------------------------------------- loads */

typedef struct jparse {
    fr_jarena *a;
    const char *s;
    size_t n, i;
    fr_error *err;
    const char *why;
} jparse;

static void skip_ws(jparse *p) {
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static fr_jval *fail(jparse *p, const char *why) {
    if (!p->why) p->why = why;
    return NULL;
}

static int hex4(const char *s) {
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static void put_utf8(fr_jbuf *b, uint32_t cp) {
    char t[4];
    if (cp < 0x80) {
        fr_jbuf_putc(b, (char)cp);
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        fr_jbuf_put(b, t, 2);
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        fr_jbuf_put(b, t, 3);
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        fr_jbuf_put(b, t, 4);
    }
}

static fr_jval *parse_string(jparse *p) {
    p->i++; /* opening quote */
    fr_jbuf b = {0};
    while (1) {
        if (p->i >= p->n) {
            fr_jbuf_free(&b);
            return fail(p, "unterminated string");
        }
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') break;
        if (c < 0x20) {
            fr_jbuf_free(&b);
            return fail(p, "control character in string");
        }
        if (c != '\\') {
            size_t j = p->i;
            while (j < p->n && p->s[j] != '"' && p->s[j] != '\\' && (unsigned char)p->s[j] >= 0x20)
                j++;
            fr_jbuf_put(&b, p->s + p->i, j - p->i);
            p->i = j;
            continue;
        }
        if (p->i + 1 >= p->n) {
            fr_jbuf_free(&b);
            return fail(p, "unterminated string");
        }
        char e = p->s[p->i + 1];
        p->i += 2;
        switch (e) {
        case '"':
            fr_jbuf_putc(&b, '"');
            break;
        case '\\':
            fr_jbuf_putc(&b, '\\');
            break;
        case '/':
            fr_jbuf_putc(&b, '/');
            break;
        case 'b':
            fr_jbuf_putc(&b, '\b');
            break;
        case 'f':
            fr_jbuf_putc(&b, '\f');
            break;
        case 'n':
            fr_jbuf_putc(&b, '\n');
            break;
        case 'r':
            fr_jbuf_putc(&b, '\r');
            break;
        case 't':
            fr_jbuf_putc(&b, '\t');
            break;
        case 'u': {
            int u = p->i + 4 <= p->n ? hex4(p->s + p->i) : -1;
            if (u < 0) {
                fr_jbuf_free(&b);
                return fail(p, "bad \\u escape");
            }
            p->i += 4;
            uint32_t cp = (uint32_t)u;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = p->i + 6 <= p->n && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u'
                             ? hex4(p->s + p->i + 2)
                             : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    fr_jbuf_free(&b);
                    return fail(p, "unpaired surrogate in \\u escape");
                }
                p->i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fr_jbuf_free(&b);
                return fail(p, "unpaired surrogate in \\u escape");
            }
            put_utf8(&b, cp);
            break;
        }
        default:
            fr_jbuf_free(&b);
            return fail(p, "invalid escape in string");
        }
    }
    p->i++;
    if (b.oom) {
        bool too_long = b.too_long;
        fr_jbuf_free(&b);
        return fail(p, too_long ? "string longer than the template limit" : "out of memory");
    }
    fr_jval *v = fr_jv_str(p->a, b.data ? b.data : "", b.len);
    fr_jbuf_free(&b);
    return v ? v : fail(p, "out of memory");
}

static fr_jval *parse_number(jparse *p) {
    size_t st = p->i, i = p->i;
    bool is_float = false;
    if (i < p->n && p->s[i] == '-') i++;
    if (i + 8 <= p->n && !memcmp(p->s + i, "Infinity", 8)) {
        p->i = i + 8;
        fr_jval *v = fr_jv_float(p->a, p->s[st] == '-' ? -INFINITY : INFINITY);
        return v ? v : fail(p, "out of memory");
    }
    if (i >= p->n || !(p->s[i] >= '0' && p->s[i] <= '9')) return fail(p, "invalid number");
    if (p->s[i] == '0')
        i++;
    else
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
    if (i + 1 < p->n && p->s[i] == '.' && p->s[i + 1] >= '0' && p->s[i + 1] <= '9') {
        is_float = true;
        i++;
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        size_t j = i + 1;
        if (j < p->n && (p->s[j] == '+' || p->s[j] == '-')) j++;
        if (j < p->n && p->s[j] >= '0' && p->s[j] <= '9') {
            is_float = true;
            while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9')
                j++;
            i = j;
        }
    }
    char tmp[400];
    if (i - st >= sizeof tmp) return fail(p, "number too long");
    memcpy(tmp, p->s + st, i - st);
    tmp[i - st] = '\0';
    p->i = i;
    fr_jval *v;
    if (is_float) {
        v = fr_jv_float(p->a, strtod(tmp, NULL));
    } else {
        char *end;
        errno = 0;
        long long x = strtoll(tmp, &end, 10);
        if (errno) return fail(p, "integer out of the 64-bit range");
        v = fr_jv_int(p->a, x);
    }
    return v ? v : fail(p, "out of memory");
}

static fr_jval *parse_value(jparse *p, int depth);

static fr_jval *parse_container(jparse *p, int depth, bool is_obj) {
    if (depth > JSON_MAX_DEPTH) return fail(p, "nesting too deep");
    p->i++;
    fr_jval *d = is_obj ? fr_jv_dict(p->a, JV_DICT) : NULL;
    fr_jval **items = NULL; /* lists are collected on malloc, then copied into the arena */
    size_t n = 0, cap = 0;
    if (is_obj && !d) return fail(p, "out of memory");
    skip_ws(p);
    char close = is_obj ? '}' : ']';
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
    } else {
        while (1) {
            skip_ws(p);
            fr_jval *k = NULL;
            if (is_obj) {
                if (p->i >= p->n || p->s[p->i] != '"') {
                    free(items);
                    return fail(p, "expected a string key");
                }
                if (!(k = parse_string(p))) return NULL;
                skip_ws(p);
                if (p->i >= p->n || p->s[p->i] != ':') return fail(p, "expected ':'");
                p->i++;
            }
            fr_jval *v = parse_value(p, depth + 1);
            if (!v) {
                free(items);
                return NULL;
            }
            if (is_obj) {
                if (!fr_jv_dict_set(p->a, d, k, v)) return fail(p, "out of memory");
            } else {
                if (n == cap) {
                    cap = cap ? cap * 2 : 8;
                    fr_jval **t = realloc(items, cap * sizeof *t);
                    if (!t) {
                        free(items);
                        return fail(p, "out of memory");
                    }
                    items = t;
                }
                items[n++] = v;
            }
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->n && p->s[p->i] == close) {
                p->i++;
                break;
            }
            free(items);
            return fail(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    if (is_obj) return d;
    fr_jval *l = fr_jv_list(p->a, n, JL_LIST);
    if (l && n) memcpy(l->u.list.v, items, n * sizeof *items);
    free(items);
    return l ? l : fail(p, "out of memory");
}

static fr_jval *parse_value(jparse *p, int depth) {
    skip_ws(p);
    if (p->i >= p->n) return fail(p, "unexpected end of input");
    char c = p->s[p->i];
    const char *rest = p->s + p->i;
    size_t left = p->n - p->i;
    if (c == '{' || c == '[') return parse_container(p, depth, c == '{');
    if (c == '"') return parse_string(p);
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p);
    if (left >= 4 && !memcmp(rest, "null", 4)) {
        p->i += 4;
        return &fr_jv_none;
    }
    if (left >= 4 && !memcmp(rest, "true", 4)) {
        p->i += 4;
        return &fr_jv_true;
    }
    if (left >= 5 && !memcmp(rest, "false", 5)) {
        p->i += 5;
        return &fr_jv_false;
    }
    if (left >= 3 && !memcmp(rest, "NaN", 3)) {
        p->i += 3;
        fr_jval *v = fr_jv_float(p->a, NAN);
        return v ? v : fail(p, "out of memory");
    }
    if (c == 'I') return parse_number(p);
    return fail(p, "unexpected character");
}

fr_jval *fr_jv_from_json(fr_jarena *a, const char *text, size_t len, fr_error *err) {
    if (!fr_jutf8_valid(text, len)) {
        fr_error_set(err, FR_ERR_FORMAT, "JSON: invalid UTF-8");
        return NULL;
    }
    jparse p = {.a = a, .s = text, .n = len, .err = err};
    fr_jval *v = parse_value(&p, 0);
    if (v) {
        skip_ws(&p);
        if (p.i != p.n) {
            v = NULL;
            p.why = "extra data after the value";
        }
    }
    if (!v) {
        size_t line = 1, col = 1;
        for (size_t k = 0; k < p.i && k < len; k++) {
            if (text[k] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        /* running out of memory or into a limit is not malformed input */
        const char *why = p.why ? p.why : "malformed";
        if (a->over_limit || !strcmp(why, "string longer than the template limit"))
            fr_error_set(err, FR_ERR_RANGE,
                         "JSON line %zu column %zu (byte %zu): exceeds the template limits (%zu "
                         "MiB per string, %zu items per list, %zu MiB in all)",
                         line, col, p.i, FR_JINJA_MAX_STRING >> 20, FR_JINJA_MAX_ITEMS,
                         FR_JINJA_MAX_MEMORY >> 20);
        else
            fr_error_set(err, !strcmp(why, "out of memory") ? FR_ERR_NOMEM : FR_ERR_FORMAT,
                         "JSON line %zu column %zu (byte %zu): %s", line, col, p.i, why);
    }
    return v;
}
