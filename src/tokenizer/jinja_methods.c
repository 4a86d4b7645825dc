/* Attributes and methods of Jinja values: Python's str, dict and list methods that chat templates
 * call (message.content.split('</think>'), tool.items(), ...), namespace members and the `loop`
 * object. Methods that mutate (list.append, dict.update) are refused, as transformers' immutable
 * sandbox refuses them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "tokenizer/jinja_internal.h"

static fr_jval *nomem(fr_jeval *e, const fr_jnode *n) {
    return fr_jeval_nomem(e, n);
}
static fr_jval *or_nomem(fr_jeval *e, const fr_jnode *n, fr_jval *v) {
    return v ? v : nomem(e, n);
}

/* ---------------------------------------------------------------- UTF-8 and character classes */

uint32_t fr_jutf8_decode(const char *s, size_t n, size_t i) {
    const unsigned char *p = (const unsigned char *)s;
    unsigned c = p[i];
    if (c < 0x80) return c;
    size_t k = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
    uint32_t cp = c & (0x3F >> k);
    for (size_t j = 1; j <= k && i + j < n; j++)
        cp = (cp << 6) | (p[i + j] & 0x3F);
    return cp;
}

/* Python's str.isspace(): the Unicode whitespace set plus the ASCII separators 0x1c-0x1f. */
bool fr_py_isspace(uint32_t cp) {
    if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
    switch (cp) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

static bool cp_in(uint32_t cp, const fr_jval *chars) {
    const char *s = chars->u.str.s;
    size_t n = chars->u.str.len;
    for (size_t i = 0; i < n; i = fr_jutf8_next(s, n, i))
        if (fr_jutf8_decode(s, n, i) == cp) return true;
    return false;
}

fr_jval *fr_jstr_strip(fr_jeval *e, const fr_jnode *n, const fr_jval *sv, const fr_jval *chars,
                       int mode) {
    const char *s = sv->u.str.s;
    size_t len = sv->u.str.len, b = 0, end = len;
    if (chars && chars->type == JV_NONE) chars = NULL;
    if (chars && chars->type != JV_STR)
        return fr_jeval_fail(e, n, FR_ERR_INVALID, "strip arg must be None or str");
    if (mode != 2) {
        while (b < len) {
            uint32_t cp = fr_jutf8_decode(s, len, b);
            if (chars ? !cp_in(cp, chars) : !fr_py_isspace(cp)) break;
            b = fr_jutf8_next(s, len, b);
        }
    }
    if (mode != 1) {
        while (end > b) {
            size_t p = end - 1;
            while (p > b && ((unsigned char)s[p] & 0xC0) == 0x80)
                p--;
            uint32_t cp = fr_jutf8_decode(s, len, p);
            if (chars ? !cp_in(cp, chars) : !fr_py_isspace(cp)) break;
            end = p;
        }
    }
    return or_nomem(e, n, fr_jv_str(e->a, s + b, end - b));
}

static bool is_cased_letter(uint32_t cp) {
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

static void put_cp(fr_jbuf *b, uint32_t cp) {
    utf8proc_uint8_t t[4];
    utf8proc_ssize_t k = utf8proc_encode_char((utf8proc_int32_t)cp, t);
    fr_jbuf_put(b, (const char *)t, (size_t)k);
}

/* Python's upper/lower/capitalize/title with simple (one-to-one) case mappings. */
fr_jval *fr_jstr_case(fr_jeval *e, const fr_jnode *n, const fr_jval *sv, int case_mode) {
    const char *s = sv->u.str.s;
    size_t len = sv->u.str.len;
    fr_jbuf b = {0};
    bool prev_cased = false;
    for (size_t i = 0; i < len; i = fr_jutf8_next(s, len, i)) {
        uint32_t cp = fr_jutf8_decode(s, len, i);
        bool up;
        switch (case_mode) {
        case 0:
            up = true;
            break;
        case 1:
            up = false;
            break;
        case 2:
            up = i == 0;
            break;
        default:
            up = !prev_cased;
            break;
        }
        uint32_t m = (uint32_t)(up ? (case_mode == 3 || case_mode == 2
                                          ? utf8proc_totitle((utf8proc_int32_t)cp)
                                          : utf8proc_toupper((utf8proc_int32_t)cp))
                                   : utf8proc_tolower((utf8proc_int32_t)cp));
        put_cp(&b, m);
        prev_cased = is_cased_letter(cp);
    }
    return fr_jeval_buf_str(e, n, &b);
}

fr_jval *fr_jstr_replace(fr_jeval *e, const fr_jnode *n, const fr_jval *sv, const fr_jval *old,
                         const fr_jval *nw, int64_t count) {
    const char *s = sv->u.str.s;
    size_t len = sv->u.str.len, ol = old->u.str.len;
    fr_jbuf b = {0};
    if (ol == 0) { /* Python inserts `new` around every character */
        size_t i = 0;
        int64_t done = 0;
        while ((count < 0 || done < count) && !b.oom) { /* oom: stop at the size limit */
            fr_jbuf_put(&b, nw->u.str.s, nw->u.str.len);
            done++;
            if (i >= len) break;
            size_t j = fr_jutf8_next(s, len, i);
            fr_jbuf_put(&b, s + i, j - i);
            i = j;
        }
        fr_jbuf_put(&b, s + i, len - i);
    } else {
        size_t i = 0;
        int64_t done = 0;
        while ((count < 0 || done < count) && !b.oom) {
            const char *hit = memmem(s + i, len - i, old->u.str.s, ol);
            if (!hit) break;
            size_t h = (size_t)(hit - s);
            fr_jbuf_put(&b, s + i, h - i);
            fr_jbuf_put(&b, nw->u.str.s, nw->u.str.len);
            i = h + ol;
            done++;
        }
        fr_jbuf_put(&b, s + i, len - i);
    }
    return fr_jeval_buf_str(e, n, &b);
}

/* ---------------------------------------------------------------- attributes */

static const char *const STR_METHODS[] = {
    "capitalize",   "casefold",    "center",    "count",      "encode",       "endswith",
    "expandtabs",   "find",        "format",    "format_map", "index",        "isalnum",
    "isalpha",      "isascii",     "isdecimal", "isdigit",    "isidentifier", "islower",
    "isnumeric",    "isprintable", "isspace",   "istitle",    "isupper",      "join",
    "ljust",        "lower",       "lstrip",    "maketrans",  "partition",    "removeprefix",
    "removesuffix", "replace",     "rfind",     "rindex",     "rjust",        "rpartition",
    "rsplit",       "rstrip",      "split",     "splitlines", "startswith",   "strip",
    "swapcase",     "title",       "translate", "upper",      "zfill",        NULL};
static const char *const DICT_METHODS[] = {"clear",      "copy",   "fromkeys", "get",
                                           "items",      "keys",   "pop",      "popitem",
                                           "setdefault", "update", "values",   NULL};
static const char *const LIST_METHODS[] = {"append", "clear",   "copy",   "count",
                                           "extend", "index",   "insert", "pop",
                                           "remove", "reverse", "sort",   NULL};

static const char *find_name(const char *const *names, const char *s, size_t len) {
    for (const char *const *p = names; *p; p++)
        if (strlen(*p) == len && !memcmp(*p, s, len)) return *p;
    return NULL;
}

static fr_jval *method(fr_jeval *e, fr_jval *self, const char *name) {
    fr_jval *m = fr_jv_new(e->a, JV_METHOD);
    if (!m) return nomem(e, NULL);
    m->u.method.self = self;
    m->u.method.name = name;
    return m;
}

static fr_jval *loop_attr(fr_jeval *e, fr_jval *obj, const char *name, size_t len) {
    const fr_jloop *l = obj->u.loop;
    size_t i = l->index0, n = l->n;
#define IS(w) (len == strlen(w) && !memcmp(name, w, len))
    if (IS("index0")) return fr_jv_int(e->a, (int64_t)i);
    if (IS("index")) return fr_jv_int(e->a, (int64_t)i + 1);
    if (IS("revindex")) return fr_jv_int(e->a, (int64_t)(n - i));
    if (IS("revindex0")) return fr_jv_int(e->a, (int64_t)(n - i - 1));
    if (IS("first")) return fr_jv_bool(i == 0);
    if (IS("last")) return fr_jv_bool(i + 1 == n);
    if (IS("length")) return fr_jv_int(e->a, (int64_t)n);
    if (IS("depth")) return fr_jv_int(e->a, 1);
    if (IS("depth0")) return fr_jv_int(e->a, 0);
    if (IS("previtem"))
        return i > 0 ? l->items[i - 1] : fr_jv_undef_hint(e->a, "there is no previous item");
    if (IS("nextitem"))
        return i + 1 < n ? l->items[i + 1] : fr_jv_undef_hint(e->a, "there is no next item");
    if (IS("cycle")) return method(e, obj, "cycle");
    if (IS("changed")) return method(e, obj, "changed");
#undef IS
    return NULL;
}

fr_jval *fr_jinja_attr(fr_jeval *e, fr_jval *obj, const char *name, size_t len) {
    const char *m;
    switch ((fr_jtype)obj->type) {
    case JV_DICT:
        /* Python attributes come first: d.items is the method even when "items" is a key */
        if ((m = find_name(DICT_METHODS, name, len))) return method(e, obj, m);
        return fr_jv_dict_gets(obj, name, len);
    case JV_NS:
        return fr_jv_dict_gets(obj, name, len);
    case JV_STR:
        return (m = find_name(STR_METHODS, name, len)) ? method(e, obj, m) : NULL;
    case JV_LIST:
        if (!fr_jv_is_seq(obj)) return NULL;
        return (m = find_name(LIST_METHODS, name, len)) ? method(e, obj, m) : NULL;
    case JV_LOOP:
        return loop_attr(e, obj, name, len);
    default:
        return NULL;
    }
}

/* ---------------------------------------------------------------- string methods */

static bool want_str(fr_jeval *e, const fr_jnode *n, const fr_jval *v, const char *what) {
    if (v && v->type == JV_STR) return true;
    fr_jeval_fail(e, n, FR_ERR_INVALID, "%s: expected a string argument, got '%s'", what,
                  v ? fr_jv_type_name(v) : "nothing");
    return false;
}

static int affix_match(fr_jeval *e, const fr_jnode *n, const fr_jval *s, const fr_jval *arg,
                       bool end) {
    if (arg && fr_jv_is_seq(arg) && arg->sub == JL_TUPLE) {
        for (size_t i = 0; i < arg->u.list.n; i++) {
            int r = affix_match(e, n, s, arg->u.list.v[i], end);
            if (r) return r;
        }
        return 0;
    }
    if (!want_str(e, n, arg, end ? "endswith" : "startswith")) return -1;
    size_t k = arg->u.str.len;
    if (k > s->u.str.len) return 0;
    return !memcmp(s->u.str.s + (end ? s->u.str.len - k : 0), arg->u.str.s, k);
}

/* str.split / str.rsplit with Python's rules: no separator splits on whitespace runs and drops
 * empty pieces; maxsplit counts from the left (split) or the right (rsplit). */
static fr_jval *split(fr_jeval *e, const fr_jnode *n, const fr_jval *sv, const fr_jval *sep,
                      int64_t maxsplit, bool from_right) {
    const char *s = sv->u.str.s;
    size_t len = sv->u.str.len;
    size_t cap = 16, cnt = 0;
    /* pieces as [begin, end) byte ranges, collected in order of discovery */
    size_t *rg = malloc(cap * 2 * sizeof *rg);
    if (!rg) return nomem(e, n);
#define PUSH(b_, e_)                                                                               \
    do {                                                                                           \
        if (cnt == cap) {                                                                          \
            size_t *t_ = realloc(rg, cap * 4 * sizeof *rg);                                        \
            if (!t_) {                                                                             \
                free(rg);                                                                          \
                return nomem(e, n);                                                                \
            }                                                                                      \
            rg = t_;                                                                               \
            cap *= 2;                                                                              \
        }                                                                                          \
        rg[2 * cnt] = (b_);                                                                        \
        rg[2 * cnt + 1] = (e_);                                                                    \
        cnt++;                                                                                     \
    } while (0)
    int64_t splits = 0;
    if (!sep) {
        if (!from_right) {
            size_t i = 0;
            while (1) {
                while (i < len && fr_py_isspace(fr_jutf8_decode(s, len, i)))
                    i = fr_jutf8_next(s, len, i);
                if (i >= len) break;
                if (maxsplit >= 0 && splits == maxsplit) {
                    size_t end = len; /* the rest, without trailing whitespace */
                    while (end > i) {
                        size_t p = end - 1;
                        while (p > i && ((unsigned char)s[p] & 0xC0) == 0x80)
                            p--;
                        if (!fr_py_isspace(fr_jutf8_decode(s, len, p))) break;
                        end = p;
                    }
                    PUSH(i, end);
                    break;
                }
                size_t b = i;
                while (i < len && !fr_py_isspace(fr_jutf8_decode(s, len, i)))
                    i = fr_jutf8_next(s, len, i);
                PUSH(b, i);
                splits++;
            }
        } else {
            size_t i = len;
            while (1) {
                while (i > 0) {
                    size_t p = i - 1;
                    while (p > 0 && ((unsigned char)s[p] & 0xC0) == 0x80)
                        p--;
                    if (!fr_py_isspace(fr_jutf8_decode(s, len, p))) break;
                    i = p;
                }
                if (i == 0) break;
                if (maxsplit >= 0 && splits == maxsplit) {
                    size_t b = 0;
                    while (b < i && fr_py_isspace(fr_jutf8_decode(s, len, b)))
                        b = fr_jutf8_next(s, len, b);
                    PUSH(b, i);
                    break;
                }
                size_t end = i;
                while (i > 0) {
                    size_t p = i - 1;
                    while (p > 0 && ((unsigned char)s[p] & 0xC0) == 0x80)
                        p--;
                    if (fr_py_isspace(fr_jutf8_decode(s, len, p))) break;
                    i = p;
                }
                PUSH(i, end);
                splits++;
            }
        }
    } else {
        size_t k = sep->u.str.len;
        if (k == 0) {
            free(rg);
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "empty separator");
        }
        if (!from_right) {
            size_t i = 0;
            while (maxsplit < 0 || splits < maxsplit) {
                const char *hit = memmem(s + i, len - i, sep->u.str.s, k);
                if (!hit) break;
                PUSH(i, (size_t)(hit - s));
                i = (size_t)(hit - s) + k;
                splits++;
            }
            PUSH(i, len);
        } else {
            size_t end = len;
            while ((maxsplit < 0 || splits < maxsplit) && end >= k) {
                size_t p = end - k + 1, found = SIZE_MAX;
                while (p-- > 0)
                    if (!memcmp(s + p, sep->u.str.s, k)) {
                        found = p;
                        break;
                    }
                if (found == SIZE_MAX) break;
                PUSH(found + k, end);
                end = found;
                splits++;
            }
            PUSH(0, end);
        }
    }
#undef PUSH
    fr_jval *l = fr_jv_list(e->a, cnt, JL_LIST);
    if (!l) {
        free(rg);
        return nomem(e, n);
    }
    for (size_t i = 0; i < cnt; i++) {
        size_t idx = from_right ? cnt - 1 - i : i;
        if (!(l->u.list.v[i] = fr_jv_str(e->a, s + rg[2 * idx], rg[2 * idx + 1] - rg[2 * idx]))) {
            free(rg);
            return nomem(e, n);
        }
    }
    free(rg);
    return l;
}

/* str.format with automatic ({}) or explicit ({0}, {name}) fields and {{ }} escapes; format specs
 * and conversions are not supported. */
static fr_jval *format(fr_jeval *e, const fr_jnode *n, const fr_jval *sv, fr_jargs *a) {
    const char *s = sv->u.str.s;
    size_t len = sv->u.str.len, auto_idx = 0;
    fr_jbuf b = {0};
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if ((c == '{' || c == '}') && i + 1 < len && s[i + 1] == c) {
            fr_jbuf_putc(&b, c);
            i++;
            continue;
        }
        if (c == '}') {
            fr_jbuf_free(&b);
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "format: single '}' encountered");
        }
        if (c != '{') {
            fr_jbuf_putc(&b, c);
            continue;
        }
        size_t j = i + 1;
        while (j < len && s[j] != '}' && s[j] != ':' && s[j] != '!' && s[j] != '{')
            j++;
        if (j >= len || s[j] != '}') {
            fr_jbuf_free(&b);
            return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED,
                                 "format: only plain {} / {0} / {name} fields are supported");
        }
        fr_jval *v = NULL;
        if (j == i + 1) {
            v = auto_idx < a->npos ? a->pos[auto_idx] : NULL;
            auto_idx++;
        } else if (s[i + 1] >= '0' && s[i + 1] <= '9') {
            size_t k = (size_t)strtoul(s + i + 1, NULL, 10);
            v = k < a->npos ? a->pos[k] : NULL;
        } else {
            for (size_t k = 0; k < a->nkw; k++)
                if (strlen(a->kwn[k]) == j - i - 1 && !memcmp(a->kwn[k], s + i + 1, j - i - 1))
                    v = a->kwv[k];
        }
        if (!v) {
            fr_jbuf_free(&b);
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "format: missing argument for field '%.*s'",
                                 (int)(j - i - 1), s + i + 1);
        }
        const char *why = NULL;
        if (!fr_jv_str_append(&b, v, &why)) {
            fr_jbuf_free(&b);
            return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "%s", why);
        }
        i = j;
    }
    return fr_jeval_buf_str(e, n, &b);
}

static fr_jval *find(fr_jeval *e, const fr_jnode *n, const fr_jval *s, const fr_jval *sub,
                     bool right, bool must) {
    if (!want_str(e, n, sub, "find")) return NULL;
    const char *h = s->u.str.s;
    size_t len = s->u.str.len, k = sub->u.str.len;
    int64_t at = -1;
    if (k <= len) {
        if (!right) {
            const char *p = memmem(h, len, sub->u.str.s, k);
            if (p) at = p - h;
        } else {
            for (size_t p = len - k + 1; p-- > 0;)
                if (!memcmp(h + p, sub->u.str.s, k)) {
                    at = (int64_t)p;
                    break;
                }
        }
    }
    if (at < 0 && must) return fr_jeval_fail(e, n, FR_ERR_INVALID, "substring not found");
    if (at > 0) at = (int64_t)fr_jutf8_len(h, (size_t)at); /* Python counts code points */
    return or_nomem(e, n, fr_jv_int(e->a, at));
}

static fr_jval *str_method(fr_jeval *e, const fr_jnode *n, fr_jval *s, const char *name,
                           fr_jargs *a) {
    fr_jval *a0 = fr_jargs_get(a, 0, NULL, NULL), *a1 = fr_jargs_get(a, 1, NULL, NULL);
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        if (a->npos != 1 || a->nkw)
            return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED,
                                 "%s: only the prefix argument is supported", name);
        int r = affix_match(e, n, s, a0, name[0] == 'e');
        return r < 0 ? NULL : fr_jv_bool(r);
    }
    if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
        static const char *const KW[] = {"sep", "maxsplit", NULL};
        if (!fr_jargs_check(e, n, name, a, 2, KW)) return NULL;
        fr_jval *sep = fr_jargs_get(a, 0, "sep", &fr_jv_none),
                *mx = fr_jargs_get(a, 1, "maxsplit", NULL);
        if (sep->type != JV_NONE && !want_str(e, n, sep, name)) return NULL;
        if (mx && mx->type != JV_INT)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "%s: maxsplit must be an integer", name);
        return split(e, n, s, sep->type == JV_NONE ? NULL : sep, mx ? mx->u.i : -1, name[0] == 'r');
    }
    if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
        if (a->npos > 1 || a->nkw)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "%s takes at most 1 argument", name);
        return fr_jstr_strip(e, n, s, a0, name[0] == 's' ? 0 : name[0] == 'l' ? 1 : 2);
    }
    if (!strcmp(name, "replace")) {
        if (a->npos < 2 || a->npos > 3 || a->nkw)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "replace takes 2 or 3 positional arguments");
        if (!want_str(e, n, a0, name) || !want_str(e, n, a1, name)) return NULL;
        fr_jval *c = a->npos == 3 ? a->pos[2] : NULL;
        if (c && c->type != JV_INT)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "replace: count must be an integer");
        return fr_jstr_replace(e, n, s, a0, a1, c ? c->u.i : -1);
    }
    if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "capitalize") ||
        !strcmp(name, "title")) {
        if (a->npos || a->nkw)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "%s takes no arguments", name);
        int mode = name[0] == 'u' ? 0 : name[0] == 'l' ? 1 : name[0] == 'c' ? 2 : 3;
        if (mode == 2) { /* capitalize: first character upper, the rest lower */
            fr_jval *low = fr_jstr_case(e, n, s, 1);
            return low ? fr_jstr_case(e, n, low, 2) : NULL;
        }
        if (mode == 3) {
            /* title: lower everything, then upper-case each cased letter after an uncased one */
            fr_jval *low = fr_jstr_case(e, n, s, 1);
            return low ? fr_jstr_case(e, n, low, 3) : NULL;
        }
        return fr_jstr_case(e, n, s, mode);
    }
    if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "index") ||
        !strcmp(name, "rindex")) {
        if (a->npos != 1 || a->nkw)
            return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "%s: only one argument is supported",
                                 name);
        return find(e, n, s, a0, name[0] == 'r', !strcmp(name, "index") || !strcmp(name, "rindex"));
    }
    if (!strcmp(name, "count")) {
        if (a->npos != 1 || a->nkw || !want_str(e, n, a0, name))
            return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED,
                                 "count: only one string argument is supported");
        size_t k = a0->u.str.len, cnt = 0;
        if (k == 0)
            return or_nomem(e, n,
                            fr_jv_int(e->a, (int64_t)fr_jutf8_len(s->u.str.s, s->u.str.len) + 1));
        for (const char *p = s->u.str.s, *end = p + s->u.str.len;
             (p = memmem(p, (size_t)(end - p), a0->u.str.s, k)); p += k)
            cnt++;
        return or_nomem(e, n, fr_jv_int(e->a, (int64_t)cnt));
    }
    if (!strcmp(name, "join")) {
        if (a->npos != 1 || a->nkw)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "join takes exactly one argument");
        fr_jval *items = fr_jeval_iterate(e, n, a0);
        if (!items) return NULL;
        fr_jbuf b = {0};
        for (size_t i = 0; i < items->u.list.n; i++) {
            fr_jval *it = items->u.list.v[i];
            if (it->type != JV_STR) {
                fr_jbuf_free(&b);
                return fr_jeval_fail(e, n, FR_ERR_INVALID,
                                     "sequence item %zu: expected str instance, %s found", i,
                                     fr_jv_type_name(it));
            }
            if (i) fr_jbuf_put(&b, s->u.str.s, s->u.str.len);
            fr_jbuf_put(&b, it->u.str.s, it->u.str.len);
        }
        return fr_jeval_buf_str(e, n, &b);
    }
    if (!strcmp(name, "format")) return format(e, n, s, a);
    if (!strcmp(name, "removeprefix") || !strcmp(name, "removesuffix")) {
        if (a->npos != 1 || a->nkw || !want_str(e, n, a0, name)) return NULL;
        size_t k = a0->u.str.len, len = s->u.str.len;
        bool pre = name[6] == 'p';
        if (k > len || memcmp(s->u.str.s + (pre ? 0 : len - k), a0->u.str.s, k)) return s;
        return or_nomem(e, n, fr_jv_str(e->a, s->u.str.s + (pre ? k : 0), len - k));
    }
    if (!strcmp(name, "isspace") || !strcmp(name, "isdigit") || !strcmp(name, "isalpha") ||
        !strcmp(name, "isalnum") || !strcmp(name, "islower") || !strcmp(name, "isupper")) {
        if (a->npos || a->nkw)
            return fr_jeval_fail(e, n, FR_ERR_INVALID, "%s takes no arguments", name);
        const char *p = s->u.str.s;
        size_t len = s->u.str.len;
        if (len == 0) return &fr_jv_false;
        bool lower_or_upper = name[2] == 'l' || name[2] == 'u', any_cased = false;
        for (size_t i = 0; i < len; i = fr_jutf8_next(p, len, i)) {
            uint32_t cp = fr_jutf8_decode(p, len, i);
            utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
            bool alpha = c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
            bool digit = c == UTF8PROC_CATEGORY_ND;
            bool ok;
            if (!strcmp(name, "isspace"))
                ok = fr_py_isspace(cp);
            else if (!strcmp(name, "isdigit"))
                ok = digit;
            else if (!strcmp(name, "isalpha"))
                ok = alpha;
            else if (!strcmp(name, "isalnum"))
                ok = alpha || digit;
            else {
                bool is_l = c == UTF8PROC_CATEGORY_LL,
                     is_u = c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT;
                if (is_l || is_u) any_cased = true;
                ok = name[2] == 'l' ? !is_u : !is_l;
            }
            if (!ok) return &fr_jv_false;
        }
        return fr_jv_bool(!lower_or_upper || any_cased);
    }
    return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "string method '%s' is not supported", name);
}

/* ---------------------------------------------------------------- dispatch */

fr_jval *fr_jinja_call_method(fr_jeval *e, const fr_jnode *n, fr_jval *m, fr_jargs *a) {
    fr_jval *self = m->u.method.self;
    const char *name = m->u.method.name;
    switch ((fr_jtype)self->type) {
    case JV_STR:
        return str_method(e, n, self, name, a);
    case JV_DICT:
        if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values")) {
            if (a->npos || a->nkw)
                return fr_jeval_fail(e, n, FR_ERR_INVALID, "%s takes no arguments", name);
            fr_jval *l = fr_jv_list(e->a, self->u.dict.n, JL_VIEW);
            if (!l) return nomem(e, n);
            for (size_t i = 0; i < self->u.dict.n; i++) {
                if (name[0] == 'k') {
                    l->u.list.v[i] = self->u.dict.k[i];
                } else if (name[0] == 'v') {
                    l->u.list.v[i] = self->u.dict.v[i];
                } else {
                    fr_jval *t = fr_jv_list(e->a, 2, JL_TUPLE);
                    if (!t) return nomem(e, n);
                    t->u.list.v[0] = self->u.dict.k[i];
                    t->u.list.v[1] = self->u.dict.v[i];
                    l->u.list.v[i] = t;
                }
            }
            return l;
        }
        if (!strcmp(name, "get")) {
            if (a->npos < 1 || a->npos > 2 || a->nkw)
                return fr_jeval_fail(e, n, FR_ERR_INVALID, "get takes 1 or 2 positional arguments");
            fr_jval *k = a->pos[0];
            if (k->type == JV_LIST || k->type == JV_DICT)
                return fr_jeval_fail(e, n, FR_ERR_INVALID, "unhashable type: '%s'",
                                     fr_jv_type_name(k));
            fr_jval *v = fr_jv_dict_get(self, k);
            return v ? v : a->npos == 2 ? a->pos[1] : &fr_jv_none;
        }
        break;
    case JV_LIST:
        if (!strcmp(name, "index") || !strcmp(name, "count")) {
            if (a->npos != 1 || a->nkw)
                return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "%s: only one argument is supported",
                                     name);
            int64_t cnt = 0;
            for (size_t i = 0; i < self->u.list.n; i++) {
                if (!fr_jv_equal(self->u.list.v[i], a->pos[0])) continue;
                if (name[0] == 'i') return or_nomem(e, n, fr_jv_int(e->a, (int64_t)i));
                cnt++;
            }
            if (name[0] == 'i') return fr_jeval_fail(e, n, FR_ERR_INVALID, "value is not in list");
            return or_nomem(e, n, fr_jv_int(e->a, cnt));
        }
        break;
    case JV_LOOP:
        if (!strcmp(name, "cycle")) {
            if (!a->npos || a->nkw)
                return fr_jeval_fail(e, n, FR_ERR_INVALID, "no items for cycling given");
            return a->pos[self->u.loop->index0 % a->npos];
        }
        break;
    default:
        break;
    }
    static const char *const UNSAFE[] = {"append", "extend",     "insert",  "pop",
                                         "remove", "reverse",    "sort",    "clear",
                                         "update", "setdefault", "popitem", NULL};
    for (const char *const *u = UNSAFE; *u; u++)
        if (!strcmp(name, *u))
            return fr_jeval_fail(e, n, FR_ERR_INVALID,
                                 "access to attribute '%s' of '%s' object is unsafe", name,
                                 fr_jv_type_name(self));
    return fr_jeval_fail(e, n, FR_ERR_UNSUPPORTED, "method '%s' of '%s' is not supported", name,
                         fr_jv_type_name(self));
}
