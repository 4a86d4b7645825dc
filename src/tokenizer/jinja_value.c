/* Jinja values: arena, buffers, construction, truthiness, equality and Python's str()/repr(). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "tokenizer/jinja_internal.h"

/* ---------------------------------------------------------------- arena */

struct fr_jarena_chunk {
    fr_jarena_chunk *next;
    size_t used, cap;
    _Alignas(16) char data[];
};

#define JARENA_CHUNK 65536

void *fr_jarena_alloc(fr_jarena *a, size_t size) {
    size = (size + 15) & ~(size_t)15;
    if (size == 0) size = 16;
    if (size > FR_JINJA_MAX_MEMORY || a->total + size > FR_JINJA_MAX_MEMORY) {
        a->over_limit = true;
        return NULL;
    }
    fr_jarena_chunk *c = a->head;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > JARENA_CHUNK / 4 ? size : JARENA_CHUNK;
        fr_jarena_chunk *n = calloc(1, sizeof *n + cap);
        if (!n) return NULL;
        n->cap = cap;
        if (cap == size && c) {
            /* A big block goes behind the current chunk so the current one keeps filling. */
            n->next = c->next;
            c->next = n;
        } else {
            n->next = c;
            a->head = n;
        }
        c = n;
    }
    void *p = c->data + c->used;
    c->used += size;
    a->total += size;
    return p;
}

char *fr_jarena_strdup(fr_jarena *a, const char *s, size_t len) {
    char *p = fr_jarena_alloc(a, len + 1);
    if (!p) return NULL;
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void fr_jarena_free(fr_jarena *a) {
    fr_jarena_chunk *c = a->head;
    while (c) {
        fr_jarena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->total = 0;
}

/* ---------------------------------------------------------------- buffers */

void fr_jbuf_put(fr_jbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (n > FR_JINJA_MAX_STRING - b->len) {
        b->oom = b->too_long = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2; /* stays below 2 * FR_JINJA_MAX_STRING + 2 */
        char *d = realloc(b->data, cap);
        if (!d) {
            b->oom = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void fr_jbuf_putc(fr_jbuf *b, char c) {
    fr_jbuf_put(b, &c, 1);
}

void fr_jbuf_printf(fr_jbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        fr_jbuf_put(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    fr_jbuf_put(b, big, (size_t)n);
    free(big);
}

void fr_jbuf_free(fr_jbuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------- UTF-8 */

bool fr_jutf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k) return false; /* the k continuation bytes must all be present */
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

size_t fr_jutf8_next(const char *s, size_t n, size_t i) {
    i++;
    while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80)
        i++;
    return i;
}

size_t fr_jutf8_len(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) k++;
    return k;
}

/* ---------------------------------------------------------------- construction */

fr_jval fr_jv_undef = {.type = JV_UNDEF};
fr_jval fr_jv_none = {.type = JV_NONE};
fr_jval fr_jv_true = {.type = JV_BOOL, .u.b = true};
fr_jval fr_jv_false = {.type = JV_BOOL, .u.b = false};

fr_jval *fr_jv_new(fr_jarena *a, fr_jtype type) {
    fr_jval *v = fr_jarena_alloc(a, sizeof *v);
    if (v) v->type = (uint8_t)type;
    return v;
}

fr_jval *fr_jv_int(fr_jarena *a, int64_t i) {
    fr_jval *v = fr_jv_new(a, JV_INT);
    if (v) v->u.i = i;
    return v;
}

fr_jval *fr_jv_float(fr_jarena *a, double f) {
    fr_jval *v = fr_jv_new(a, JV_FLOAT);
    if (v) v->u.f = f;
    return v;
}

fr_jval *fr_jv_str_owned(fr_jarena *a, const char *s, size_t len) {
    fr_jval *v = fr_jv_new(a, JV_STR);
    if (!v) return NULL;
    v->u.str.s = s;
    v->u.str.len = len;
    return v;
}

fr_jval *fr_jv_str(fr_jarena *a, const char *s, size_t len) {
    if (len > FR_JINJA_MAX_STRING) {
        a->over_limit = true;
        return NULL;
    }
    char *c = fr_jarena_strdup(a, s, len);
    return c ? fr_jv_str_owned(a, c, len) : NULL;
}

fr_jval *fr_jv_list(fr_jarena *a, size_t n, int sub) {
    if (n > FR_JINJA_MAX_ITEMS) {
        a->over_limit = true;
        return NULL;
    }
    fr_jval *v = fr_jv_new(a, JV_LIST);
    if (!v) return NULL;
    v->sub = (uint8_t)sub;
    v->u.list.n = n;
    if (n && !(v->u.list.v = fr_jarena_alloc(a, n * sizeof(fr_jval *)))) return NULL;
    return v;
}

fr_jval *fr_jv_dict(fr_jarena *a, fr_jtype type) {
    return fr_jv_new(a, type);
}

fr_jval *fr_jv_undef_hint(fr_jarena *a, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    fr_jval *v = fr_jv_new(a, JV_UNDEF);
    if (v) v->u.undef_hint = fr_jarena_strdup(a, tmp, strlen(tmp));
    return v;
}

fr_jval *fr_jv_dict_get(const fr_jval *d, const fr_jval *key) {
    if (key->type == JV_STR) return fr_jv_dict_gets(d, key->u.str.s, key->u.str.len);
    for (size_t i = 0; i < d->u.dict.n; i++)
        if (fr_jv_equal(d->u.dict.k[i], key)) return d->u.dict.v[i];
    return NULL;
}

fr_jval *fr_jv_dict_gets(const fr_jval *d, const char *key, size_t len) {
    for (size_t i = 0; i < d->u.dict.n; i++) {
        const fr_jval *k = d->u.dict.k[i];
        if (k->type == JV_STR && k->u.str.len == len && !memcmp(k->u.str.s, key, len))
            return d->u.dict.v[i];
    }
    return NULL;
}

bool fr_jv_dict_set(fr_jarena *a, fr_jval *d, fr_jval *key, fr_jval *val) {
    for (size_t i = 0; i < d->u.dict.n; i++) {
        if (fr_jv_equal(d->u.dict.k[i], key)) {
            d->u.dict.v[i] = val; /* Python keeps the first position of a re-assigned key */
            return true;
        }
    }
    if (d->u.dict.n == d->u.dict.cap) {
        size_t cap = d->u.dict.cap ? d->u.dict.cap * 2 : 8;
        fr_jval **k = fr_jarena_alloc(a, cap * sizeof *k);
        fr_jval **v = fr_jarena_alloc(a, cap * sizeof *v);
        if (!k || !v) return false;
        if (d->u.dict.n) {
            memcpy(k, d->u.dict.k, d->u.dict.n * sizeof *k);
            memcpy(v, d->u.dict.v, d->u.dict.n * sizeof *v);
        }
        d->u.dict.k = k;
        d->u.dict.v = v;
        d->u.dict.cap = cap;
    }
    d->u.dict.k[d->u.dict.n] = key;
    d->u.dict.v[d->u.dict.n] = val;
    d->u.dict.n++;
    return true;
}

/* ---------------------------------------------------------------- predicates */

const char *fr_jv_type_name(const fr_jval *v) {
    switch ((fr_jtype)v->type) {
    case JV_UNDEF:
        return "Undefined";
    case JV_NONE:
        return "NoneType";
    case JV_BOOL:
        return "bool";
    case JV_INT:
        return "int";
    case JV_FLOAT:
        return "float";
    case JV_STR:
        return "str";
    case JV_LIST:
        return v->sub == JL_TUPLE  ? "tuple"
               : v->sub == JL_ITER ? "generator"
               : v->sub == JL_VIEW ? "dict_view"
                                   : "list";
    case JV_DICT:
        return "dict";
    case JV_NS:
        return "Namespace";
    case JV_FUNC:
        return "function";
    case JV_MACRO:
        return "Macro";
    case JV_METHOD:
        return "builtin_function_or_method";
    case JV_LOOP:
        return "LoopContext";
    }
    return "object";
}

bool fr_jv_truthy(const fr_jval *v) {
    switch ((fr_jtype)v->type) {
    case JV_UNDEF:
    case JV_NONE:
        return false;
    case JV_BOOL:
        return v->u.b;
    case JV_INT:
        return v->u.i != 0;
    case JV_FLOAT:
        return v->u.f != 0.0;
    case JV_STR:
        return v->u.str.len != 0;
    case JV_LIST:
        return v->sub == JL_ITER || v->u.list.n != 0; /* generators are always true */
    case JV_DICT:
        return v->u.dict.n != 0;
    default:
        return true;
    }
}

bool fr_jv_is_number(const fr_jval *v) {
    return v->type == JV_INT || v->type == JV_FLOAT || v->type == JV_BOOL;
}

double fr_jv_as_double(const fr_jval *v) {
    return v->type == JV_FLOAT ? v->u.f : v->type == JV_INT ? (double)v->u.i : (double)v->u.b;
}

static bool num_equal(const fr_jval *x, const fr_jval *y) {
    if (x->type != JV_FLOAT && y->type != JV_FLOAT) {
        int64_t a = x->type == JV_INT ? x->u.i : x->u.b, b = y->type == JV_INT ? y->u.i : y->u.b;
        return a == b;
    }
    return fr_jv_as_double(x) == fr_jv_as_double(y);
}

bool fr_jv_equal(const fr_jval *x, const fr_jval *y) {
    if (fr_jv_is_number(x) && fr_jv_is_number(y)) return num_equal(x, y);
    if (x->type != y->type) return false;
    switch ((fr_jtype)x->type) {
    case JV_UNDEF:
    case JV_NONE:
        return true;
    case JV_STR:
        return x->u.str.len == y->u.str.len && !memcmp(x->u.str.s, y->u.str.s, x->u.str.len);
    case JV_LIST:
        if (x->sub != y->sub || !fr_jv_is_seq(x)) return x == y;
        if (x->u.list.n != y->u.list.n) return false;
        for (size_t i = 0; i < x->u.list.n; i++)
            if (!fr_jv_equal(x->u.list.v[i], y->u.list.v[i])) return false;
        return true;
    case JV_DICT:
        if (x->u.dict.n != y->u.dict.n) return false;
        for (size_t i = 0; i < x->u.dict.n; i++) {
            fr_jval *o = fr_jv_dict_get(y, x->u.dict.k[i]);
            if (!o || !fr_jv_equal(x->u.dict.v[i], o)) return false;
        }
        return true;
    case JV_METHOD:
        return x->u.method.self == y->u.method.self && !strcmp(x->u.method.name, y->u.method.name);
    default:
        return x == y;
    }
}

/* ---------------------------------------------------------------- str() and repr() */

void fr_jv_float_repr(fr_jbuf *b, double f) {
    if (isnan(f)) {
        fr_jbuf_puts(b, "nan");
        return;
    }
    if (isinf(f)) {
        fr_jbuf_puts(b, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0) {
        fr_jbuf_puts(b, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    /* Shortest digit string that reads back to the same double, as Python's repr picks. */
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    char digits[24];
    int nd = 0;
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < 20) digits[nd++] = *p;
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    int decpt = exp10 + 1; /* value = 0.d1d2... * 10^decpt */
    if (neg) fr_jbuf_putc(b, '-');
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            fr_jbuf_puts(b, "0.");
            for (int i = 0; i < -decpt; i++)
                fr_jbuf_putc(b, '0');
            fr_jbuf_put(b, digits, (size_t)nd);
        } else if (decpt >= nd) {
            fr_jbuf_put(b, digits, (size_t)nd);
            for (int i = nd; i < decpt; i++)
                fr_jbuf_putc(b, '0');
            fr_jbuf_puts(b, ".0");
        } else {
            fr_jbuf_put(b, digits, (size_t)decpt);
            fr_jbuf_putc(b, '.');
            fr_jbuf_put(b, digits + decpt, (size_t)(nd - decpt));
        }
    } else {
        fr_jbuf_putc(b, digits[0]);
        if (nd > 1) {
            fr_jbuf_putc(b, '.');
            fr_jbuf_put(b, digits + 1, (size_t)(nd - 1));
        }
        int e = decpt - 1;
        fr_jbuf_printf(b, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
}

/* Python's str.isprintable() for one code point. */
static bool cp_printable(int32_t cp) {
    if (cp == ' ') return true;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS:
        return false;
    default:
        return true;
    }
}

static void str_repr(fr_jbuf *b, const char *s, size_t n) {
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    fr_jbuf_putc(b, q);
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            if (c == '\\' || c == (unsigned char)q) {
                fr_jbuf_putc(b, '\\');
                fr_jbuf_putc(b, (char)c);
            } else if (c == '\n') {
                fr_jbuf_puts(b, "\\n");
            } else if (c == '\r') {
                fr_jbuf_puts(b, "\\r");
            } else if (c == '\t') {
                fr_jbuf_puts(b, "\\t");
            } else if (c < 0x20 || c == 0x7f) {
                fr_jbuf_printf(b, "\\x%02x", c);
            } else {
                fr_jbuf_putc(b, (char)c);
            }
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) { /* strings are validated on entry; keep going byte-wise if not */
            fr_jbuf_printf(b, "\\x%02x", c);
            i++;
            continue;
        }
        if (cp_printable(cp))
            fr_jbuf_put(b, s + i, (size_t)k);
        else if (cp < 0x100)
            fr_jbuf_printf(b, "\\x%02x", (unsigned)cp);
        else if (cp < 0x10000)
            fr_jbuf_printf(b, "\\u%04x", (unsigned)cp);
        else
            fr_jbuf_printf(b, "\\U%08x", (unsigned)cp);
        i += (size_t)k;
    }
    fr_jbuf_putc(b, q);
}

static bool dict_repr(fr_jbuf *b, const fr_jval *v, const char **why) {
    fr_jbuf_putc(b, '{');
    for (size_t i = 0; i < v->u.dict.n; i++) {
        if (i) fr_jbuf_puts(b, ", ");
        if (!fr_jv_repr_append(b, v->u.dict.k[i], why)) return false;
        fr_jbuf_puts(b, ": ");
        if (!fr_jv_repr_append(b, v->u.dict.v[i], why)) return false;
    }
    fr_jbuf_putc(b, '}');
    return true;
}

bool fr_jv_repr_append(fr_jbuf *b, const fr_jval *v, const char **why) {
    switch ((fr_jtype)v->type) {
    case JV_UNDEF:
        fr_jbuf_puts(b, "Undefined");
        return true;
    case JV_STR:
        str_repr(b, v->u.str.s, v->u.str.len);
        return true;
    case JV_LIST:
        if (!fr_jv_is_seq(v)) break;
        fr_jbuf_putc(b, v->sub == JL_TUPLE ? '(' : '[');
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (i) fr_jbuf_puts(b, ", ");
            if (!fr_jv_repr_append(b, v->u.list.v[i], why)) return false;
        }
        if (v->sub == JL_TUPLE && v->u.list.n == 1) fr_jbuf_putc(b, ',');
        fr_jbuf_putc(b, v->sub == JL_TUPLE ? ')' : ']');
        return true;
    case JV_DICT:
        return dict_repr(b, v, why);
    case JV_NS:
        fr_jbuf_puts(b, "<Namespace ");
        if (!dict_repr(b, v, why)) return false;
        fr_jbuf_putc(b, '>');
        return true;
    case JV_FUNC:
    case JV_MACRO:
    case JV_METHOD:
    case JV_LOOP:
        break;
    default:
        return fr_jv_str_append(b, v, why);
    }
    *why = v->type == JV_LIST ? "cannot print a generator or dict view the way jinja2 does; "
                                "apply |list first"
                              : "cannot print a function or loop object";
    return false;
}

bool fr_jv_str_append(fr_jbuf *b, const fr_jval *v, const char **why) {
    switch ((fr_jtype)v->type) {
    case JV_UNDEF:
        return true;
    case JV_NONE:
        fr_jbuf_puts(b, "None");
        return true;
    case JV_BOOL:
        fr_jbuf_puts(b, v->u.b ? "True" : "False");
        return true;
    case JV_INT:
        fr_jbuf_printf(b, "%lld", (long long)v->u.i);
        return true;
    case JV_FLOAT:
        fr_jv_float_repr(b, v->u.f);
        return true;
    case JV_STR:
        fr_jbuf_put(b, v->u.str.s, v->u.str.len);
        return true;
    default:
        return fr_jv_repr_append(b, v, why);
    }
}
