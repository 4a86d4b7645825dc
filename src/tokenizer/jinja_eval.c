/* Jinja evaluator: statements write into a buffer, expressions return arena values. Scoping
 * follows jinja2: a for-loop iteration, macro call or block gets a fresh child scope (a {% set %}
 * inside a loop is gone in the next iteration and after the loop, hence namespace()), while
 * {% if %} shares its enclosing scope. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_internal.h"

#define MAX_DEPTH 400 /* nested expression evaluation and macro calls */

/* ---------------------------------------------------------------- errors */

fr_jval *fr_jeval_fail(fr_jeval *e, const fr_jnode *n, fr_status code, const char *fmt, ...) {
    if (e->failed) return NULL;
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fr_jinja_error_at(e->err, code, e->t, n ? n->pos : 0, "%s", msg);
    e->failed = true;
    e->code = code;
    return NULL;
}

fr_jval *fr_jeval_undef_error(fr_jeval *e, const fr_jnode *n, const fr_jval *v) {
    const char *hint =
        v->type == JV_UNDEF && v->u.undef_hint ? v->u.undef_hint : "value is undefined";
    return fr_jeval_fail(e, n, FR_ERR_INVALID, "%s", hint);
}

fr_jval *fr_jeval_nomem(fr_jeval *e, const fr_jnode *n) {
    if (e->a->over_limit)
        return fr_jeval_fail(e, n, FR_ERR_RANGE,
                             "template exceeds its limits (%zu MiB per string, %zu items per list, "
                             "%zu MiB per render)",
                             FR_JINJA_MAX_STRING >> 20, FR_JINJA_MAX_ITEMS,
                             FR_JINJA_MAX_MEMORY >> 20);
    return fr_jeval_fail(e, n, FR_ERR_NOMEM, "out of memory");
}

fr_jval *fr_jeval_buf_str(fr_jeval *e, const fr_jnode *n, fr_jbuf *b) {
    fr_jval *r = NULL;
    if (b->too_long)
        fr_jeval_fail(e, n, FR_ERR_RANGE,
                      "string or output longer than the template limit of %zu MiB",
                      FR_JINJA_MAX_STRING >> 20);
    else if (b->oom || !(r = fr_jv_str(e->a, b->data ? b->data : "", b->len)))
        fr_jeval_nomem(e, n);
    fr_jbuf_free(b);
    return r;
}

static fr_jval *nomem(fr_jeval *e, const fr_jnode *n) {
    return fr_jeval_nomem(e, n);
}

static fr_jval *or_nomem(fr_jeval *e, const fr_jnode *n, fr_jval *v) {
    return v ? v : nomem(e, n);
}

/* ---------------------------------------------------------------- scopes */

static fr_jscope *scope_new(fr_jeval *e, fr_jscope *parent) {
    fr_jscope *s = fr_jarena_alloc(e->a, sizeof *s);
    if (s) s->parent = parent;
    return s;
}

static bool scope_set(fr_jeval *e, fr_jscope *s, const char *name, fr_jval *v) {
    for (size_t i = 0; i < s->n; i++) {
        if (!strcmp(s->names[i], name)) {
            s->vals[i] = v;
            return true;
        }
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        const char **nn = fr_jarena_alloc(e->a, cap * sizeof *nn);
        fr_jval **vv = fr_jarena_alloc(e->a, cap * sizeof *vv);
        if (!nn || !vv) return false;
        if (s->n) {
            memcpy(nn, s->names, s->n * sizeof *nn);
            memcpy(vv, s->vals, s->n * sizeof *vv);
        }
        s->names = nn;
        s->vals = vv;
        s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n] = v;
    s->n++;
    return true;
}

static fr_jval *scope_get(const fr_jscope *s, const char *name) {
    for (; s; s = s->parent)
        for (size_t i = s->n; i-- > 0;)
            if (!strcmp(s->names[i], name)) return s->vals[i];
    return NULL;
}

/* ---------------------------------------------------------------- helpers */

fr_jval *fr_jeval_to_str(fr_jeval *e, const fr_jnode *n, fr_jval *v) {
    if (v->type == JV_STR) return v;
    fr_jbuf b = {0};
    const char *why = NULL;
    if (!fr_jv_str_append(&b, v, &why)) {
        fr_jbuf_free(&b);
        return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "%s", why);
    }
    return fr_jeval_buf_str(e, n, &b);
}

fr_jval *fr_jeval_iterate(fr_jeval *e, const fr_jnode *n, fr_jval *v) {
    switch ((fr_jtype)v->type) {
    case JV_UNDEF:
        return fr_jv_list(e->a, 0, JL_LIST);
    case JV_LIST:
        return v;
    case JV_DICT: {
        fr_jval *l = fr_jv_list(e->a, v->u.dict.n, JL_LIST);
        if (!l) return nomem(e, n);
        for (size_t i = 0; i < v->u.dict.n; i++)
            l->u.list.v[i] = v->u.dict.k[i];
        return l;
    }
    case JV_STR: {
        const char *s = v->u.str.s;
        size_t len = v->u.str.len;
        fr_jval *l = fr_jv_list(e->a, fr_jutf8_len(s, len), JL_LIST);
        if (!l) return nomem(e, n);
        size_t k = 0;
        for (size_t i = 0; i < len;) {
            size_t j = fr_jutf8_next(s, len, i);
            if (!(l->u.list.v[k++] = fr_jv_str(e->a, s + i, j - i))) return nomem(e, n);
            i = j;
        }
        return l;
    }
    default:
        return fr_jeval_fail(e, n, FR_ERR_INVALID, "'%s' object is not iterable",
                             fr_jv_type_name(v));
    }
}

int fr_jeval_less(fr_jeval *e, const fr_jnode *n, const fr_jval *x, const fr_jval *y) {
    if (fr_jv_is_number(x) && fr_jv_is_number(y)) {
        if (x->type != JV_FLOAT && y->type != JV_FLOAT) {
            int64_t a = x->type == JV_INT ? x->u.i : x->u.b,
                    b = y->type == JV_INT ? y->u.i : y->u.b;
            return a < b;
        }
        return fr_jv_as_double(x) < fr_jv_as_double(y);
    }
    if (x->type == JV_STR && y->type == JV_STR) {
        size_t m = x->u.str.len < y->u.str.len ? x->u.str.len : y->u.str.len;
        int c = memcmp(x->u.str.s, y->u.str.s, m);
        return c < 0 || (c == 0 && x->u.str.len < y->u.str.len);
    }
    if (fr_jv_is_seq(x) && fr_jv_is_seq(y) && x->sub == y->sub) {
        for (size_t i = 0; i < x->u.list.n && i < y->u.list.n; i++) {
            if (fr_jv_equal(x->u.list.v[i], y->u.list.v[i])) continue;
            return fr_jeval_less(e, n, x->u.list.v[i], y->u.list.v[i]);
        }
        return x->u.list.n < y->u.list.n;
    }
    if (x->type == JV_UNDEF || y->type == JV_UNDEF)
        return fr_jeval_undef_error(e, n, x->type == JV_UNDEF ? x : y), -1;
    fr_jeval_fail(e, n, FR_ERR_INVALID, "'<' not supported between instances of '%s' and '%s'",
                  fr_jv_type_name(x), fr_jv_type_name(y));
    return -1;
}

/* Python index into a sequence of n items: negative counts from the end; -1 when out of range. */
static int64_t norm_index(int64_t i, size_t n) {
    if (i < 0) i += (int64_t)n;
    return i < 0 || i >= (int64_t)n ? -1 : i;
}

/* Byte offset of code point k in s (k <= number of code points). */
static size_t cp_offset(const char *s, size_t len, size_t k) {
    size_t i = 0;
    while (k-- > 0 && i < len)
        i = fr_jutf8_next(s, len, i);
    return i;
}

static bool is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return false;
    return true;
}

fr_jval *fr_jeval_getitem(fr_jeval *e, const fr_jnode *n, fr_jval *obj, fr_jval *key) {
    if (obj->type == JV_UNDEF) return fr_jeval_undef_error(e, n, obj);
    if (fr_jv_is_seq(obj) || obj->type == JV_STR) {
        if (key->type == JV_INT || key->type == JV_BOOL) {
            int64_t k = key->type == JV_INT ? key->u.i : key->u.b;
            if (obj->type == JV_LIST) {
                int64_t i = norm_index(k, obj->u.list.n);
                if (i >= 0) return obj->u.list.v[i];
            } else {
                const char *s = obj->u.str.s;
                size_t len = obj->u.str.len;
                bool ascii = is_ascii(s, len);
                int64_t i = norm_index(k, ascii ? len : fr_jutf8_len(s, len));
                if (i >= 0) {
                    size_t b = ascii ? (size_t)i : cp_offset(s, len, (size_t)i);
                    size_t end = ascii ? b + 1 : fr_jutf8_next(s, len, b);
                    fr_jval *r = fr_jv_str(e->a, s + b, end - b);
                    return r ? r : nomem(e, n);
                }
            }
            return fr_jv_undef_hint(e->a, "%s object has no element %lld", fr_jv_type_name(obj),
                                    (long long)k);
        }
    } else if (obj->type == JV_DICT) {
        if (key->type == JV_LIST || key->type == JV_DICT)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "unhashable type: '%s'",
                                 fr_jv_type_name(key));
        fr_jval *r = fr_jv_dict_get(obj, key);
        if (r) return r;
    }
    /* jinja2 falls back to an attribute for string keys (methods, namespace members, loop.*) */
    if (key->type == JV_STR) {
        fr_jval *r = fr_jinja_attr(e, obj, key->u.str.s, key->u.str.len);
        if (r) return r;
        return fr_jv_undef_hint(e->a, "'%s object' has no attribute '%s'", fr_jv_type_name(obj),
                                key->u.str.s);
    }
    return fr_jv_undef_hint(e->a, "'%s object' has no element", fr_jv_type_name(obj));
}

/* Python slice semantics on lists and (by code point) strings. */
static fr_jval *slice(fr_jeval *e, const fr_jnode *n, fr_jval *obj, fr_jval *st, fr_jval *sp,
                      fr_jval *sd) {
    if (obj->type == JV_UNDEF) return fr_jeval_undef_error(e, n, obj);
    if (!(obj->type == JV_STR || fr_jv_is_seq(obj)))
        return fr_jv_undef_hint(e->a, "'%s' object cannot be sliced", fr_jv_type_name(obj));
    int64_t v[3];
    bool given[3];
    fr_jval *parts[3] = {st, sp, sd};
    for (int k = 0; k < 3; k++) {
        fr_jval *p = parts[k];
        given[k] = p && p->type != JV_NONE;
        if (!given[k]) continue;
        if (p->type != JV_INT && p->type != JV_BOOL)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "slice indices must be integers or None");
        v[k] = p->type == JV_INT ? p->u.i : p->u.b;
    }
    int64_t step = given[2] ? v[2] : 1;
    if (step == 0) return fr_jeval_fail(e, n, FR_ERR_INVALID, "slice step cannot be zero");
    bool ascii = obj->type == JV_STR && is_ascii(obj->u.str.s, obj->u.str.len);
    int64_t len = obj->type == JV_LIST ? (int64_t)obj->u.list.n
                  : ascii              ? (int64_t)obj->u.str.len
                                       : (int64_t)fr_jutf8_len(obj->u.str.s, obj->u.str.len);
    int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? len - 1 : len;
    int64_t start, stop;
    if (!given[0]) {
        start = step < 0 ? hi : lo;
    } else {
        start = v[0] < 0 ? v[0] + len : v[0];
        start = start < lo ? lo : start > hi ? hi : start;
    }
    if (!given[1]) {
        stop = step < 0 ? lo : hi;
    } else {
        stop = v[1] < 0 ? v[1] + len : v[1];
        stop = stop < lo ? lo : stop > hi ? hi : stop;
    }
    size_t count = 0;
    if (step > 0 && stop > start) count = (size_t)((stop - start + step - 1) / step);
    if (step < 0 && start > stop) count = (size_t)((start - stop - step - 1) / -step);
    if (obj->type == JV_LIST) {
        fr_jval *r = fr_jv_list(e->a, count, obj->sub);
        if (!r) return nomem(e, n);
        for (size_t i = 0; i < count; i++)
            r->u.list.v[i] = obj->u.list.v[start + (int64_t)i * step];
        return r;
    }
    const char *s = obj->u.str.s;
    size_t blen = obj->u.str.len;
    if (step == 1) {
        size_t b = ascii ? (size_t)start : cp_offset(s, blen, (size_t)start);
        size_t end = ascii ? b + count : cp_offset(s + b, blen - b, count) + b;
        fr_jval *r = fr_jv_str(e->a, s + b, end - b);
        return r ? r : nomem(e, n);
    }
    /* general step: index the code points once */
    size_t *off = malloc(((size_t)len + 1) * sizeof *off);
    if (!off) return nomem(e, n);
    for (size_t i = 0, k = 0; k <= (size_t)len; k++) {
        off[k] = i;
        if (i < blen) i = fr_jutf8_next(s, blen, i);
    }
    fr_jbuf b = {0};
    for (size_t i = 0; i < count; i++) {
        int64_t k = start + (int64_t)i * step;
        fr_jbuf_put(&b, s + off[k], off[k + 1] - off[k]);
    }
    free(off);
    return fr_jeval_buf_str(e, n, &b);
}

/* ---------------------------------------------------------------- operators */

static fr_jval *type_error(fr_jeval *e, const fr_jnode *n, const char *op, const fr_jval *x,
                           const fr_jval *y) {
    if (x->type == JV_UNDEF) return fr_jeval_undef_error(e, n, x);
    if (y->type == JV_UNDEF) return fr_jeval_undef_error(e, n, y);
    return fr_jeval_fail(e, n, FR_ERR_INVALID, "unsupported operand type(s) for %s: '%s' and '%s'",
                         op, fr_jv_type_name(x), fr_jv_type_name(y));
}

static int64_t as_int(const fr_jval *v) {
    return v->type == JV_INT ? v->u.i : v->u.b;
}

static fr_jval *repeat(fr_jeval *e, const fr_jnode *n, fr_jval *seq, int64_t k) {
    if (k < 0) k = 0;
    if (seq->type == JV_STR) {
        if (seq->u.str.len && (uint64_t)k > FR_JINJA_MAX_STRING / seq->u.str.len)
            return fr_jeval_fail(e, n, FR_ERR_RANGE,
                                 "string repetition longer than the template limit of %zu MiB",
                                 FR_JINJA_MAX_STRING >> 20);
        if (!seq->u.str.len) k = 0; /* "" * k: nothing to copy */
        size_t total = seq->u.str.len * (size_t)k;
        char *p = fr_jarena_alloc(e->a, total + 1);
        if (!p) return nomem(e, n);
        /* doubling copies: a one-character string repeated millions of times is not millions
         * of memcpy calls */
        if (total) memcpy(p, seq->u.str.s, seq->u.str.len);
        for (size_t done = seq->u.str.len; done && done < total; done *= 2)
            memcpy(p + done, p, done < total - done ? done : total - done);
        return or_nomem(e, n, fr_jv_str_owned(e->a, p, total));
    }
    if (seq->u.list.n && (uint64_t)k > FR_JINJA_MAX_ITEMS / seq->u.list.n)
        return fr_jeval_fail(e, n, FR_ERR_RANGE,
                             "list repetition longer than the template limit of %zu items",
                             FR_JINJA_MAX_ITEMS);
    /* [] * k: k copies of nothing; the empty list has no item array to copy from */
    if (!seq->u.list.n) k = 0;
    fr_jval *r = fr_jv_list(e->a, seq->u.list.n * (size_t)k, seq->sub);
    if (!r) return nomem(e, n);
    for (int64_t i = 0; i < k; i++)
        memcpy(r->u.list.v + (size_t)i * seq->u.list.n, seq->u.list.v,
               seq->u.list.n * sizeof(fr_jval *));
    return r;
}

static fr_jval *arith(fr_jeval *e, const fr_jnode *n, int op, fr_jval *x, fr_jval *y) {
    static const char *const NAMES[] = {
        [JOP_ADD] = "+",       [JOP_SUB] = "-", [JOP_MUL] = "*", [JOP_DIV] = "/",
        [JOP_FLOORDIV] = "//", [JOP_MOD] = "%", [JOP_POW] = "**"};
    const char *name = NAMES[op];
    if (fr_jv_is_number(x) && fr_jv_is_number(y)) {
        bool ints = x->type != JV_FLOAT && y->type != JV_FLOAT;
        if (ints && op != JOP_DIV) {
            int64_t a = as_int(x), b = as_int(y), r = 0;
            bool ovf = false;
            switch (op) {
            case JOP_ADD:
                ovf = __builtin_add_overflow(a, b, &r);
                break;
            case JOP_SUB:
                ovf = __builtin_sub_overflow(a, b, &r);
                break;
            case JOP_MUL:
                ovf = __builtin_mul_overflow(a, b, &r);
                break;
            case JOP_FLOORDIV:
            case JOP_MOD:
                if (b == 0)
                    return fr_jeval_fail(e, n, FR_ERR_INVALID,
                                         "integer division or modulo by zero");
                if (a == INT64_MIN && b == -1) {
                    ovf = true;
                    break;
                }
                r = op == JOP_FLOORDIV ? a / b : a % b;
                if (op == JOP_FLOORDIV && (a % b != 0) && ((a < 0) != (b < 0))) r--;
                if (op == JOP_MOD && r != 0 && ((r < 0) != (b < 0))) r += b;
                break;
            case JOP_POW:
                if (b < 0 && a == 0)
                    return fr_jeval_fail(e, n, FR_ERR_INVALID,
                                         "0.0 cannot be raised to a negative power");
                if (b < 0) return or_nomem(e, n, fr_jv_float(e->a, pow((double)a, (double)b)));
                r = 1;
                for (int64_t i = 0; i < b && !ovf; i++)
                    ovf = __builtin_mul_overflow(r, a, &r);
                break;
            }
            if (ovf)
                return fr_jeval_fail(e, n, FR_ERR_RANGE,
                                     "integer overflow in '%s' (beyond 64 bits)", name);
            return or_nomem(e, n, fr_jv_int(e->a, r));
        }
        double a = fr_jv_as_double(x), b = fr_jv_as_double(y), r = 0;
        switch (op) {
        case JOP_ADD:
            r = a + b;
            break;
        case JOP_SUB:
            r = a - b;
            break;
        case JOP_MUL:
            r = a * b;
            break;
        case JOP_DIV:
        case JOP_FLOORDIV:
        case JOP_MOD:
            if (b == 0) return fr_jeval_fail(e, n, FR_ERR_INVALID, "division by zero");
            if (op == JOP_DIV) {
                r = a / b;
                break;
            }
            /* Python's float divmod: the remainder takes the divisor's sign */
            double mod = fmod(a, b), div = (a - mod) / b;
            if (mod != 0) {
                if ((b < 0) != (mod < 0)) {
                    mod += b;
                    div -= 1.0;
                }
            } else {
                mod = copysign(0.0, b);
            }
            double fl;
            if (div != 0) {
                fl = floor(div);
                if (div - fl > 0.5) fl += 1.0;
            } else {
                fl = copysign(0.0, a / b);
            }
            r = op == JOP_MOD ? mod : fl;
            break;
        case JOP_POW:
            if (a == 0 && b < 0)
                return fr_jeval_fail(e, n, FR_ERR_INVALID,
                                     "0.0 cannot be raised to a negative power");
            if (a < 0 && b != floor(b))
                return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED,
                                     "a negative number to a fractional power is complex");
            r = pow(a, b);
            break;
        }
        return or_nomem(e, n, fr_jv_float(e->a, r));
    }
    if (op == JOP_ADD && x->type == JV_STR && y->type == JV_STR) {
        size_t len = x->u.str.len + y->u.str.len;
        if (len > FR_JINJA_MAX_STRING)
            return fr_jeval_fail(e, n, FR_ERR_RANGE,
                                 "string concatenation longer than the template limit of %zu MiB",
                                 FR_JINJA_MAX_STRING >> 20);
        char *p = fr_jarena_alloc(e->a, len + 1);
        if (!p) return nomem(e, n);
        memcpy(p, x->u.str.s, x->u.str.len);
        memcpy(p + x->u.str.len, y->u.str.s, y->u.str.len);
        return or_nomem(e, n, fr_jv_str_owned(e->a, p, len));
    }
    if (op == JOP_ADD && fr_jv_is_seq(x) && fr_jv_is_seq(y) && x->sub == y->sub) {
        fr_jval *r = fr_jv_list(e->a, x->u.list.n + y->u.list.n, x->sub);
        if (!r) return nomem(e, n);
        if (x->u.list.n) memcpy(r->u.list.v, x->u.list.v, x->u.list.n * sizeof(fr_jval *));
        if (y->u.list.n)
            memcpy(r->u.list.v + x->u.list.n, y->u.list.v, y->u.list.n * sizeof(fr_jval *));
        return r;
    }
    if (op == JOP_MUL) {
        bool xs = x->type == JV_STR || fr_jv_is_seq(x);
        bool ys = y->type == JV_STR || fr_jv_is_seq(y);
        if (xs && (y->type == JV_INT || y->type == JV_BOOL)) return repeat(e, n, x, as_int(y));
        if (ys && (x->type == JV_INT || x->type == JV_BOOL)) return repeat(e, n, y, as_int(x));
    }
    if (op == JOP_MOD && x->type == JV_STR)
        return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED,
                             "printf-style '%%' string formatting is not supported");
    return type_error(e, n, name, x, y);
}

static int contains(fr_jeval *e, const fr_jnode *n, fr_jval *item, fr_jval *c) {
    switch ((fr_jtype)c->type) {
    case JV_UNDEF:
        return 0; /* an Undefined iterates as empty */
    case JV_STR:
        if (item->type != JV_STR) {
            fr_jeval_fail(e, n, FR_ERR_INVALID,
                          "'in <string>' requires string as left operand, not %s",
                          fr_jv_type_name(item));
            return -1;
        }
        if (item->u.str.len == 0) return 1;
        return memmem(c->u.str.s, c->u.str.len, item->u.str.s, item->u.str.len) != NULL;
    case JV_LIST:
        for (size_t i = 0; i < c->u.list.n; i++)
            if (fr_jv_equal(item, c->u.list.v[i])) return 1;
        return 0;
    case JV_DICT:
        if (item->type == JV_LIST || item->type == JV_DICT) {
            fr_jeval_fail(e, n, FR_ERR_INVALID, "unhashable type: '%s'", fr_jv_type_name(item));
            return -1;
        }
        return fr_jv_dict_get(c, item) != NULL;
    default:
        fr_jeval_fail(e, n, FR_ERR_INVALID, "argument of type '%s' is not iterable",
                      fr_jv_type_name(c));
        return -1;
    }
}

static int compare(fr_jeval *e, const fr_jnode *n, int op, fr_jval *x, fr_jval *y) {
    switch (op) {
    case JOP_EQ:
        return fr_jv_equal(x, y);
    case JOP_NE:
        return !fr_jv_equal(x, y);
    case JOP_LT:
        return fr_jeval_less(e, n, x, y);
    case JOP_GT:
        return fr_jeval_less(e, n, y, x);
    case JOP_LE: {
        int r = fr_jeval_less(e, n, y, x);
        return r < 0 ? -1 : !r;
    }
    case JOP_GE: {
        int r = fr_jeval_less(e, n, x, y);
        return r < 0 ? -1 : !r;
    }
    case JOP_IN:
        return contains(e, n, x, y);
    case JOP_NOTIN: {
        int r = contains(e, n, x, y);
        return r < 0 ? -1 : !r;
    }
    }
    return -1;
}

/* ---------------------------------------------------------------- expressions */

static fr_jval *eval(fr_jeval *e, fr_jscope *sc, const fr_jnode *n);
static int exec_body(fr_jeval *e, fr_jscope *sc, const fr_jnode *body, fr_jbuf *out);

/* Evaluates call arguments (positional and name=value) of node n. */
static bool eval_args(fr_jeval *e, fr_jscope *sc, const fr_jnode *n, fr_jargs *a) {
    memset(a, 0, sizeof *a);
    if (!n->nitems) return true;
    a->pos = fr_jarena_alloc(e->a, n->nitems * sizeof *a->pos);
    a->kwn = fr_jarena_alloc(e->a, n->nitems * sizeof *a->kwn);
    a->kwv = fr_jarena_alloc(e->a, n->nitems * sizeof *a->kwv);
    if (!a->pos || !a->kwn || !a->kwv) return nomem(e, n), false;
    for (size_t i = 0; i < n->nitems; i++) {
        const fr_jnode *arg = n->items[i];
        if (arg->kind == JN_KWARG) {
            fr_jval *v = eval(e, sc, arg->a);
            if (!v) return false;
            a->kwn[a->nkw] = arg->str;
            a->kwv[a->nkw++] = v;
        } else {
            fr_jval *v = eval(e, sc, arg);
            if (!v) return false;
            a->pos[a->npos++] = v;
        }
    }
    return true;
}

static fr_jval *call_macro(fr_jeval *e, const fr_jnode *n, fr_jval *m, fr_jargs *a) {
    const fr_jnode *def = m->u.macro.node;
    if (a->npos > def->nitems)
        return fr_jeval_fail(e, n, FR_ERR_INVALID, "macro '%s' takes not more than %zu argument(s)",
                             def->str, def->nitems);
    for (size_t k = 0; k < a->nkw; k++) {
        bool found = false;
        for (size_t i = 0; i < def->nitems; i++)
            if (!strcmp(def->items[i]->str, a->kwn[k])) found = true;
        if (!found)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "macro '%s' has no argument named '%s'",
                                 def->str, a->kwn[k]);
    }
    if (++e->depth > MAX_DEPTH)
        return fr_jeval_fail(e, n, FR_ERR_RANGE, "macro calls nested too deep");
    fr_jscope *sc = scope_new(e, m->u.macro.closure);
    if (!sc) return nomem(e, n);
    for (size_t i = 0; i < def->nitems; i++) {
        const fr_jnode *p = def->items[i];
        fr_jval *v = i < a->npos ? a->pos[i] : NULL;
        for (size_t k = 0; !v && k < a->nkw; k++)
            if (!strcmp(p->str, a->kwn[k])) v = a->kwv[k];
        if (!v && p->a && !(v = eval(e, sc, p->a))) return NULL;
        if (!v) v = fr_jv_undef_hint(e->a, "parameter '%s' was not provided", p->str);
        if (!v || !scope_set(e, sc, p->str, v)) return nomem(e, n);
    }
    fr_jbuf b = {0};
    int rc = exec_body(e, sc, def->c, &b);
    e->depth--;
    fr_jval *r = NULL;
    if (rc == 0) r = fr_jeval_buf_str(e, n, &b);
    fr_jbuf_free(&b);
    return r;
}

static fr_jval *eval_call(fr_jeval *e, fr_jscope *sc, const fr_jnode *n) {
    fr_jval *f = eval(e, sc, n->a);
    if (!f) return NULL;
    fr_jargs a;
    if (!eval_args(e, sc, n, &a)) return NULL;
    switch ((fr_jtype)f->type) {
    case JV_FUNC:
        return fr_jinja_call_func(e, n, f, &a);
    case JV_METHOD:
        return fr_jinja_call_method(e, n, f, &a);
    case JV_MACRO:
        return call_macro(e, n, f, &a);
    case JV_UNDEF:
        return fr_jeval_undef_error(e, n, f);
    default:
        return fr_jeval_fail(e, n, FR_ERR_INVALID, "'%s' object is not callable",
                             fr_jv_type_name(f));
    }
}

static fr_jval *apply_filter(fr_jeval *e, fr_jscope *sc, const fr_jnode *f, fr_jval *v) {
    if (f->deferred_unknown)
        return fr_jeval_fail(e, f, FR_ERR_UNSUPPORTED, "unknown filter '%s'", f->str);
    fr_jargs a;
    if (!eval_args(e, sc, f, &a)) return NULL;
    return fr_jinja_filter(e, f, f->str, v, &a);
}

static fr_jval *eval_inner(fr_jeval *e, fr_jscope *sc, const fr_jnode *n) {
    switch (n->kind) {
    case JN_LITERAL:
        return n->lit;
    case JN_NAME: {
        fr_jval *v = scope_get(sc, n->str);
        return v ? v : or_nomem(e, n, fr_jv_undef_hint(e->a, "'%s' is undefined", n->str));
    }
    case JN_LIST:
    case JN_TUPLE: {
        fr_jval *l = fr_jv_list(e->a, n->nitems, n->kind == JN_TUPLE ? JL_TUPLE : JL_LIST);
        if (!l) return nomem(e, n);
        for (size_t i = 0; i < n->nitems; i++)
            if (!(l->u.list.v[i] = eval(e, sc, n->items[i]))) return NULL;
        return l;
    }
    case JN_DICT: {
        fr_jval *d = fr_jv_dict(e->a, JV_DICT);
        if (!d) return nomem(e, n);
        for (size_t i = 0; i < n->nitems; i++) {
            fr_jval *k = eval(e, sc, n->items[i]->a), *v = k ? eval(e, sc, n->items[i]->b) : NULL;
            if (!v) return NULL;
            if (k->type == JV_LIST || k->type == JV_DICT || k->type == JV_NS)
                return fr_jeval_fail(e, n->items[i], FR_ERR_INVALID, "unhashable type: '%s'",
                                     fr_jv_type_name(k));
            if (!fr_jv_dict_set(e->a, d, k, v)) return nomem(e, n);
        }
        return d;
    }
    case JN_GETATTR: {
        fr_jval *obj = eval(e, sc, n->a);
        if (!obj) return NULL;
        if (obj->type == JV_UNDEF) return fr_jeval_undef_error(e, n, obj);
        fr_jval *r = fr_jinja_attr(e, obj, n->str, n->len);
        if (r || e->failed) return r;
        return or_nomem(e, n,
                        fr_jv_undef_hint(e->a, "'%s object' has no attribute '%s'",
                                         fr_jv_type_name(obj), n->str));
    }
    case JN_GETITEM: {
        fr_jval *obj = eval(e, sc, n->a), *k = obj ? eval(e, sc, n->b) : NULL;
        return k ? fr_jeval_getitem(e, n, obj, k) : NULL;
    }
    case JN_SLICE: {
        fr_jval *obj = eval(e, sc, n->a), *parts[3] = {NULL, NULL, NULL};
        if (!obj) return NULL;
        const fr_jnode *pn[3] = {n->b, n->c, n->d};
        for (int k = 0; k < 3; k++)
            if (pn[k] && !(parts[k] = eval(e, sc, pn[k]))) return NULL;
        return slice(e, n, obj, parts[0], parts[1], parts[2]);
    }
    case JN_CALL:
        return eval_call(e, sc, n);
    case JN_FILTER: {
        fr_jval *v = eval(e, sc, n->a);
        return v ? apply_filter(e, sc, n, v) : NULL;
    }
    case JN_TEST: {
        if (n->deferred_unknown)
            return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "unknown test '%s'", n->str);
        fr_jval *v = eval(e, sc, n->a);
        fr_jargs a;
        if (!v || !eval_args(e, sc, n, &a)) return NULL;
        int r = fr_jinja_test(e, n, n->str, v, &a);
        return r < 0 ? NULL : fr_jv_bool(n->op ? !r : r);
    }
    case JN_UNARY: {
        fr_jval *v = eval(e, sc, n->a);
        if (!v) return NULL;
        if (v->type == JV_FLOAT)
            return or_nomem(e, n, fr_jv_float(e->a, n->op == JOP_SUB ? -v->u.f : v->u.f));
        if (v->type == JV_INT || v->type == JV_BOOL) {
            int64_t i = as_int(v);
            if (n->op == JOP_SUB && i == INT64_MIN)
                return fr_jeval_fail(e, n, FR_ERR_RANGE, "integer overflow");
            return or_nomem(e, n, fr_jv_int(e->a, n->op == JOP_SUB ? -i : i));
        }
        if (v->type == JV_UNDEF) return fr_jeval_undef_error(e, n, v);
        return fr_jeval_fail(e, n, FR_ERR_INVALID, "bad operand type for unary %c: '%s'",
                             n->op == JOP_SUB ? '-' : '+', fr_jv_type_name(v));
    }
    case JN_NOT: {
        fr_jval *v = eval(e, sc, n->a);
        return v ? fr_jv_bool(!fr_jv_truthy(v)) : NULL;
    }
    case JN_AND:
    case JN_OR: {
        /* Python returns the deciding operand itself, not a bool */
        fr_jval *l = eval(e, sc, n->a);
        if (!l) return NULL;
        if (fr_jv_truthy(l) == (n->kind == JN_OR)) return l;
        return eval(e, sc, n->b);
    }
    case JN_BINARY: {
        fr_jval *x = eval(e, sc, n->a), *y = x ? eval(e, sc, n->b) : NULL;
        if (!y) return NULL;
        if (n->op != JOP_TILDE) return arith(e, n, n->op, x, y);
        fr_jval *xs = fr_jeval_to_str(e, n, x), *ys = xs ? fr_jeval_to_str(e, n, y) : NULL;
        return ys ? arith(e, n, JOP_ADD, xs, ys) : NULL;
    }
    case JN_COMPARE: {
        fr_jval *l = eval(e, sc, n->a);
        if (!l) return NULL;
        for (size_t i = 0; i < n->nitems; i++) {
            fr_jval *r = eval(e, sc, n->items[i]->a);
            if (!r) return NULL;
            int c = compare(e, n->items[i], n->items[i]->op, l, r);
            if (c < 0) return NULL;
            if (!c) return &fr_jv_false;
            l = r;
        }
        return &fr_jv_true;
    }
    case JN_COND: {
        fr_jval *t = eval(e, sc, n->a);
        if (!t) return NULL;
        if (fr_jv_truthy(t)) return eval(e, sc, n->b);
        if (n->c) return eval(e, sc, n->c);
        return or_nomem(
            e, n,
            fr_jv_undef_hint(
                e->a,
                "the inline if-expression evaluated to false and no else section was defined"));
    }
    default:
        return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "node %d cannot be evaluated", (int)n->kind);
    }
}

static fr_jval *eval(fr_jeval *e, fr_jscope *sc, const fr_jnode *n) {
    if (e->failed) return NULL;
    if (++e->depth > MAX_DEPTH)
        return fr_jeval_fail(e, n, FR_ERR_RANGE, "expression nested too deep");
    fr_jval *v = eval_inner(e, sc, n);
    e->depth--;
    if (!v && !e->failed) nomem(e, n);
    return v;
}

/* ---------------------------------------------------------------- statements */

static bool assign(fr_jeval *e, fr_jscope *sc, const fr_jnode *target, fr_jval *v) {
    if (target->kind == JN_NAME) return scope_set(e, sc, target->str, v) || nomem(e, target);
    if (target->kind == JN_GETATTR) {
        fr_jval *ns = scope_get(sc, target->a->str);
        if (!ns || ns->type != JV_NS) {
            fr_jeval_fail(e, target, FR_ERR_INVALID,
                          "cannot assign attribute on non-namespace object");
            return false;
        }
        fr_jval *k = fr_jv_str(e->a, target->str, target->len);
        return (k && fr_jv_dict_set(e->a, ns, k, v)) || nomem(e, target);
    }
    /* tuple unpacking */
    fr_jval *l = fr_jeval_iterate(e, target, v);
    if (!l) return false;
    if (l->u.list.n != target->nitems) {
        fr_jeval_fail(e, target, FR_ERR_INVALID, "%s values to unpack (expected %zu, got %zu)",
                      l->u.list.n > target->nitems ? "too many" : "not enough", target->nitems,
                      l->u.list.n);
        return false;
    }
    for (size_t i = 0; i < target->nitems; i++)
        if (!scope_set(e, sc, target->items[i]->str, l->u.list.v[i]))
            return nomem(e, target), false;
    return true;
}

static bool output(fr_jeval *e, const fr_jnode *n, fr_jval *v, fr_jbuf *out) {
    const char *why = NULL;
    if (!fr_jv_str_append(out, v, &why)) {
        fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "%s", why);
        return false;
    }
    return true;
}

/* Renders body in a fresh child scope into a string value. */
static fr_jval *capture(fr_jeval *e, fr_jscope *sc, const fr_jnode *n, const fr_jnode *body) {
    fr_jscope *inner = scope_new(e, sc);
    if (!inner) return nomem(e, n);
    fr_jbuf b = {0};
    int rc = exec_body(e, inner, body, &b);
    fr_jval *r = NULL;
    if (rc == 0) r = fr_jeval_buf_str(e, n, &b);
    fr_jbuf_free(&b);
    return r;
}

static int exec_for(fr_jeval *e, fr_jscope *sc, const fr_jnode *n, fr_jbuf *out) {
    fr_jval *it = eval(e, sc, n->b);
    if (!it) return -1;
    fr_jval *seq = fr_jeval_iterate(e, n->b, it);
    if (!seq) return -1;
    size_t count = seq->u.list.n;
    fr_jval **items = seq->u.list.v;
    if (n->e) { /* `for x in xs if cond`: filter first so loop.length/last see the result */
        fr_jval **kept = count ? fr_jarena_alloc(e->a, count * sizeof *kept) : NULL;
        if (count && !kept) return nomem(e, n), -1;
        size_t k = 0;
        for (size_t i = 0; i < count; i++) {
            fr_jscope *fs = scope_new(e, sc);
            if (!fs) return nomem(e, n), -1;
            if (!assign(e, fs, n->a, items[i])) return -1;
            fr_jval *c = eval(e, fs, n->e);
            if (!c) return -1;
            if (fr_jv_truthy(c)) kept[k++] = items[i];
        }
        items = kept;
        count = k;
    }
    if (count == 0) {
        if (!n->d) return 0;
        fr_jscope *es = scope_new(e, sc);
        return es ? exec_body(e, es, n->d, out) : (nomem(e, n), -1);
    }
    fr_jloop *lp = fr_jarena_alloc(e->a, sizeof *lp);
    fr_jval *lv = fr_jv_new(e->a, JV_LOOP);
    if (!lp || !lv) return nomem(e, n), -1;
    lp->items = items;
    lp->n = count;
    lv->u.loop = lp;
    for (size_t i = 0; i < count; i++) {
        fr_jscope *is = scope_new(e, sc);
        if (!is) return nomem(e, n), -1;
        /* each iteration sees its own loop state (a macro defined inside may keep it) */
        fr_jloop *cur = fr_jarena_alloc(e->a, sizeof *cur);
        fr_jval *cv = fr_jv_new(e->a, JV_LOOP);
        if (!cur || !cv) return nomem(e, n), -1;
        *cur = *lp;
        cur->index0 = i;
        cv->u.loop = cur;
        if (!scope_set(e, is, "loop", cv)) return nomem(e, n), -1;
        if (!assign(e, is, n->a, items[i])) return -1;
        if (exec_body(e, is, n->c, out)) return -1;
        if (e->loopctl == 1) {
            e->loopctl = 0;
            break;
        }
        e->loopctl = 0;
    }
    return 0;
}

static int exec_stmt(fr_jeval *e, fr_jscope *sc, const fr_jnode *n, fr_jbuf *out) {
    switch (n->kind) {
    case JN_TEXT:
        fr_jbuf_put(out, n->str, n->len);
        return 0;
    case JN_OUTPUT: {
        fr_jval *v = eval(e, sc, n->a);
        return v && output(e, n, v, out) ? 0 : -1;
    }
    case JN_IF: {
        fr_jval *t = eval(e, sc, n->a);
        if (!t) return -1;
        const fr_jnode *branch = fr_jv_truthy(t) ? n->b : n->c;
        if (!branch) return 0;
        return branch->kind == JN_IF ? exec_stmt(e, sc, branch, out)
                                     : exec_body(e, sc, branch, out);
    }
    case JN_FOR:
        return exec_for(e, sc, n, out);
    case JN_SET: {
        fr_jval *v = eval(e, sc, n->b);
        return v && assign(e, sc, n->a, v) ? 0 : -1;
    }
    case JN_SETBLOCK: {
        fr_jval *v = capture(e, sc, n, n->c);
        for (size_t i = 0; v && i < n->nitems; i++)
            v = apply_filter(e, sc, n->items[i], v);
        return v && assign(e, sc, n->a, v) ? 0 : -1;
    }
    case JN_FILTERBLOCK: {
        fr_jval *v = capture(e, sc, n, n->c);
        for (size_t i = 0; v && i < n->nitems; i++)
            v = apply_filter(e, sc, n->items[i], v);
        return v && output(e, n, v, out) ? 0 : -1;
    }
    case JN_WITH: {
        fr_jscope *ws = scope_new(e, sc);
        if (!ws) return nomem(e, n), -1;
        for (size_t i = 0; i < n->nitems; i++) {
            fr_jval *v = eval(e, sc, n->items[i]->b);
            if (!v || !assign(e, ws, n->items[i]->a, v)) return -1;
        }
        return exec_body(e, ws, n->c, out);
    }
    case JN_MACRO: {
        fr_jval *m = fr_jv_new(e->a, JV_MACRO);
        if (!m) return nomem(e, n), -1;
        m->u.macro.node = n;
        m->u.macro.closure = sc;
        return scope_set(e, sc, n->str, m) ? 0 : (nomem(e, n), -1);
    }
    case JN_BREAK:
        e->loopctl = 1;
        return 0;
    case JN_CONTINUE:
        e->loopctl = 2;
        return 0;
    case JN_BODY:
        return exec_body(e, sc, n, out);
    default:
        fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "statement %d cannot be executed", (int)n->kind);
        return -1;
    }
}

static int exec_body(fr_jeval *e, fr_jscope *sc, const fr_jnode *body, fr_jbuf *out) {
    if (++e->depth > MAX_DEPTH)
        return fr_jeval_fail(e, body, FR_ERR_RANGE, "blocks nested too deep"), -1;
    for (size_t i = 0; i < body->nitems; i++) {
        if (exec_stmt(e, sc, body->items[i], out)) return -1;
        if (out->too_long)
            return fr_jeval_fail(e, body->items[i], FR_ERR_RANGE,
                                 "output longer than the template limit of %zu MiB",
                                 FR_JINJA_MAX_STRING >> 20),
                   -1;
        if (out->oom) return nomem(e, body->items[i]), -1;
        if (e->loopctl) break; /* break/continue unwind to the enclosing loop */
    }
    e->depth--;
    return 0;
}

/* ---------------------------------------------------------------- render */

static fr_jval G_RANGE = {.type = JV_FUNC, .sub = JF_RANGE};
static fr_jval G_NAMESPACE = {.type = JV_FUNC, .sub = JF_NAMESPACE};
static fr_jval G_DICT = {.type = JV_FUNC, .sub = JF_DICT};
static fr_jval G_RAISE = {.type = JV_FUNC, .sub = JF_RAISE};
static fr_jval G_STRFTIME = {.type = JV_FUNC, .sub = JF_STRFTIME};

fr_status fr_jinja_render(const fr_jinja_template *t, const fr_jinja_vars *vars, char **out,
                          size_t *out_len, fr_error *err) {
    if (!out) return fr_error_set(err, FR_ERR_INVALID, "fr_jinja_render: NULL output");
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t || !t->root) return fr_error_set(err, FR_ERR_INVALID, "fr_jinja_render: no template");
    fr_jarena arena = {0};
    fr_jeval e = {.t = t, .a = &arena, .err = err};
    fr_jbuf b = {0};
    fr_status st = FR_OK;
    fr_jscope *builtins = scope_new(&e, NULL), *ctx = scope_new(&e, builtins);
    fr_jscope *top = scope_new(&e, ctx);
    if (!builtins || !ctx || !top || !scope_set(&e, builtins, "range", &G_RANGE) ||
        !scope_set(&e, builtins, "namespace", &G_NAMESPACE) ||
        !scope_set(&e, builtins, "dict", &G_DICT) ||
        !scope_set(&e, builtins, "raise_exception", &G_RAISE) ||
        !scope_set(&e, builtins, "strftime_now", &G_STRFTIME)) {
        st = fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", t->name);
        goto done;
    }
    for (size_t i = 0; vars && i < vars->n; i++) {
        if (!scope_set(&e, ctx, vars->names[i], vars->vals[i])) {
            st = fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", t->name);
            goto done;
        }
    }
    e.globals = top;
    if (exec_body(&e, top, t->root, &b) != 0 || b.oom) {
        st = e.failed ? e.code : fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", t->name);
        goto done;
    }
    if (!b.data) fr_jbuf_put(&b, "", 0);
    if (b.oom) {
        st = fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", t->name);
        goto done;
    }
    *out = b.data;
    if (out_len) *out_len = b.len;
    b.data = NULL;
done:
    fr_jbuf_free(&b);
    fr_jarena_free(&arena);
    return st;
}
