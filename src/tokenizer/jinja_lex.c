/* Jinja lexer with jinja2's whitespace rules as transformers configures them:
 *   trim_blocks:   the first newline after a block or comment tag (`%}`, `#}`) is removed;
 *   lstrip_blocks: spaces and tabs from the start of a line up to a block or comment tag are
 *                  removed (not before `{{`);
 *   `{%-` `{{-` `{#-` strip all whitespace before the tag, `-%}` `-}}` `-#}` all after it;
 *   `{%+` turns lstrip_blocks off for that tag, `+%}` trim_blocks.
 * The source was newline-normalised and lost one trailing newline before lexing
 * (keep_trailing_newline=False), as jinja2 does. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_internal.h"

#define MAX_BRACKETS 256

typedef struct lexer {
    fr_jinja_template *t;
    const char *s;
    size_t n;
    fr_jtoks *out;
    fr_error *err;
} lexer;

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
static bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
static bool is_name_char(char c) {
    return is_name_start(c) || is_digit(c);
}

static fr_jtok *push(lexer *L, fr_jtok_kind kind, size_t pos) {
    fr_jtoks *o = L->out;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        fr_jtok *v = realloc(o->v, cap * sizeof *v);
        if (!v) return NULL;
        o->v = v;
        o->cap = cap;
    }
    fr_jtok *tk = &o->v[o->n++];
    memset(tk, 0, sizeof *tk);
    tk->kind = kind;
    tk->pos = (uint32_t)pos;
    return tk;
}

static fr_status oom(lexer *L) {
    return fr_error_set(L->err, FR_ERR_NOMEM, "%s: out of memory", L->t->name);
}

/* Emits source text [b, e) as a TEXT (or RAW) token after the whitespace rule of the tag that
 * follows it: mod is that tag's '-' / '+' / 0, lstrip whether lstrip_blocks applies to it. */
static fr_status emit_text(lexer *L, size_t b, size_t e, char mod, bool lstrip, bool line_starting,
                           fr_jtok_kind kind) {
    if (mod == '-') {
        while (e > b && is_space(L->s[e - 1]))
            e--;
    } else if (mod != '+' && lstrip) {
        size_t l = e;
        while (l > b && L->s[l - 1] != '\n')
            l--;
        bool only_blank = true;
        for (size_t k = l; k < e; k++)
            if (L->s[k] != ' ' && L->s[k] != '\t') only_blank = false;
        if (only_blank && (l > b || line_starting)) e = l;
    }
    if (e == b) return FR_OK;
    fr_jtok *tk = push(L, kind, b);
    if (!tk) return oom(L);
    tk->s = L->s + b;
    tk->len = e - b;
    return FR_OK;
}

/* Position right after a tag's closing delimiter at `p` (just past `%}`/`#}`) given its
 * modifier: '-' eats all whitespace, '+' nothing, otherwise trim_blocks eats one newline. */
static size_t after_close(lexer *L, size_t p, char mod, bool trim) {
    if (mod == '-') {
        while (p < L->n && is_space(L->s[p]))
            p++;
    } else if (mod != '+' && trim && p < L->n && L->s[p] == '\n') {
        p++;
    }
    return p;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void put_cp(fr_jbuf *b, uint32_t cp) {
    char t[4];
    size_t k;
    if (cp < 0x80) {
        t[0] = (char)cp;
        k = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    fr_jbuf_put(b, t, k);
}

/* A string literal's body [b, e) decoded as Python's unicode-escape codec does (jinja2 decodes
 * literals that way): known escapes are replaced, unknown ones keep their backslash. */
static fr_status decode_string(lexer *L, size_t b, size_t e, fr_jtok *tk) {
    fr_jbuf out = {0};
    fr_status st = FR_OK;
    size_t i = b;
    while (i < e && st == FR_OK) {
        char c = L->s[i];
        if (c != '\\') {
            size_t j = i;
            while (j < e && L->s[j] != '\\')
                j++;
            fr_jbuf_put(&out, L->s + i, j - i);
            i = j;
            continue;
        }
        char x = L->s[i + 1]; /* a body never ends in a lone backslash */
        i += 2;
        switch (x) {
        case '\n':
            break;
        case '\\':
            fr_jbuf_putc(&out, '\\');
            break;
        case '\'':
            fr_jbuf_putc(&out, '\'');
            break;
        case '"':
            fr_jbuf_putc(&out, '"');
            break;
        case 'a':
            fr_jbuf_putc(&out, '\a');
            break;
        case 'b':
            fr_jbuf_putc(&out, '\b');
            break;
        case 'f':
            fr_jbuf_putc(&out, '\f');
            break;
        case 'n':
            fr_jbuf_putc(&out, '\n');
            break;
        case 'r':
            fr_jbuf_putc(&out, '\r');
            break;
        case 't':
            fr_jbuf_putc(&out, '\t');
            break;
        case 'v':
            fr_jbuf_putc(&out, '\v');
            break;
        case 'x':
        case 'u':
        case 'U': {
            int nd = x == 'x' ? 2 : x == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < nd; k++) {
                int h = i + (size_t)k < e ? hexval(L->s[i + (size_t)k]) : -1;
                if (h < 0) {
                    st = fr_jinja_error_at(L->err, FR_ERR_FORMAT, L->t, (uint32_t)(i - 2),
                                           "truncated \\%c escape in string literal", x);
                    break;
                }
                cp = cp * 16 + (uint32_t)h;
            }
            if (st) break;
            i += (size_t)nd;
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                st = fr_jinja_error_at(L->err, FR_ERR_FORMAT, L->t, (uint32_t)(i - 2),
                                       "escape is not a valid character");
                break;
            }
            put_cp(&out, cp);
            break;
        }
        default:
            if (x >= '0' && x <= '7') {
                uint32_t cp = (uint32_t)(x - '0');
                for (int k = 0; k < 2 && i < e && L->s[i] >= '0' && L->s[i] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(L->s[i++] - '0');
                put_cp(&out, cp);
            } else if (x == 'N' || (unsigned char)x >= 0x80) {
                st = fr_jinja_error_at(L->err, FR_ERR_UNSUPPORTED, L->t, (uint32_t)(i - 2),
                                       "unsupported escape in string literal");
            } else {
                fr_jbuf_putc(&out, '\\');
                fr_jbuf_putc(&out, x);
            }
        }
    }
    if (st == FR_OK && out.oom) st = oom(L);
    if (st == FR_OK) {
        tk->len = out.len;
        tk->s = fr_jarena_strdup(&L->t->arena, out.data ? out.data : "", out.len);
        if (!tk->s) st = oom(L);
    }
    fr_jbuf_free(&out);
    return st;
}

static const struct {
    const char *s;
    fr_jop op;
} OPS[] = {
    {"//", JOP_FLOORDIV}, {"**", JOP_POW},      {"==", JOP_EQ},    {"!=", JOP_NE},
    {">=", JOP_GE},       {"<=", JOP_LE},       {"+", JOP_ADD},    {"-", JOP_SUB},
    {"*", JOP_MUL},       {"/", JOP_DIV},       {"%", JOP_MOD},    {"~", JOP_TILDE},
    {"[", JOP_LBRACKET},  {"]", JOP_RBRACKET},  {"(", JOP_LPAREN}, {")", JOP_RPAREN},
    {"{", JOP_LBRACE},    {"}", JOP_RBRACE},    {">", JOP_GT},     {"<", JOP_LT},
    {"=", JOP_ASSIGN},    {".", JOP_DOT},       {":", JOP_COLON},  {"|", JOP_PIPE},
    {",", JOP_COMMA},     {";", JOP_SEMICOLON},
};

static fr_status lex_number(lexer *L, size_t *pp) {
    size_t p = *pp, st = p;
    char tmp[128];
    size_t k = 0;
    bool is_float = false;
    bool after_dot = st > 0 && L->s[st - 1] == '.'; /* `a.0.1` is two lookups, not a float */
    while (p < L->n &&
           (is_digit(L->s[p]) || (L->s[p] == '_' && p + 1 < L->n && is_digit(L->s[p + 1])))) {
        if (L->s[p] != '_' && k < sizeof tmp - 1) tmp[k++] = L->s[p];
        p++;
    }
    if (!after_dot && p + 1 < L->n && L->s[p] == '.' && is_digit(L->s[p + 1])) {
        is_float = true;
        tmp[k++] = '.';
        p++;
        while (p < L->n &&
               (is_digit(L->s[p]) || (L->s[p] == '_' && p + 1 < L->n && is_digit(L->s[p + 1])))) {
            if (L->s[p] != '_' && k < sizeof tmp - 1) tmp[k++] = L->s[p];
            p++;
        }
    }
    if (!after_dot && p < L->n && (L->s[p] == 'e' || L->s[p] == 'E')) {
        size_t q = p + 1;
        if (q < L->n && (L->s[q] == '+' || L->s[q] == '-')) q++;
        if (q < L->n && is_digit(L->s[q])) {
            is_float = true;
            while (p < q && k < sizeof tmp - 1)
                tmp[k++] = L->s[p++];
            while (p < L->n && (is_digit(L->s[p]) || L->s[p] == '_')) {
                if (L->s[p] != '_' && k < sizeof tmp - 1) tmp[k++] = L->s[p];
                p++;
            }
        }
    }
    if (k >= sizeof tmp - 1)
        return fr_jinja_error_at(L->err, FR_ERR_UNSUPPORTED, L->t, (uint32_t)st,
                                 "number literal too long");
    tmp[k] = '\0';
    fr_jtok *tk = push(L, is_float ? JT_FLOAT : JT_INT, st);
    if (!tk) return oom(L);
    if (is_float) {
        tk->f = strtod(tmp, NULL);
    } else {
        if (k > 1 && tmp[0] == '0') {
            for (size_t j = 0; j < k; j++)
                if (tmp[j] != '0')
                    return fr_jinja_error_at(L->err, FR_ERR_FORMAT, L->t, (uint32_t)st,
                                             "leading zeros in an integer literal");
        }
        char *end;
        unsigned long long v = strtoull(tmp, &end, 10);
        if (k > 18 && (v > (unsigned long long)INT64_MAX || k > 19))
            return fr_jinja_error_at(L->err, FR_ERR_UNSUPPORTED, L->t, (uint32_t)st,
                                     "integer literal beyond 64 bits");
        tk->i = (int64_t)v;
    }
    *pp = p;
    return FR_OK;
}

/* Lexes the inside of a `{{ }}` or `{% %}` tag starting at p; *pp ends past the closing
 * delimiter and its whitespace handling. */
static fr_status lex_tag(lexer *L, size_t open, size_t *pp, bool block, bool *line_starting) {
    char stack[MAX_BRACKETS];
    int depth = 0;
    size_t p = *pp;
    const char *s = L->s;
    while (1) {
        while (p < L->n && is_space(s[p]))
            p++;
        if (p >= L->n)
            return fr_jinja_error_at(L->err, FR_ERR_FORMAT, L->t, (uint32_t)open,
                                     "unexpected end of template: tag is not closed with '%s'",
                                     block ? "%}" : "}}");
        if (depth == 0) {
            char mod = 0;
            size_t q = p;
            if (s[q] == '-' || (block && s[q] == '+')) mod = s[q++];
            if (q + 1 < L->n && s[q] == (block ? '%' : '}') && s[q + 1] == '}') {
                fr_jtok *tk = push(L, block ? JT_BLOCK_END : JT_VAR_END, p);
                if (!tk) return oom(L);
                size_t after = after_close(L, q + 2, mod, block);
                *line_starting = after > 0 && s[after - 1] == '\n';
                *pp = after;
                return FR_OK;
            }
        }
        char c = s[p];
        if (is_digit(c)) {
            fr_status st = lex_number(L, &p);
            if (st) return st;
            continue;
        }
        if (is_name_start(c)) {
            size_t b = p;
            while (p < L->n && is_name_char(s[p]))
                p++;
            fr_jtok *tk = push(L, JT_NAME, b);
            if (!tk) return oom(L);
            tk->s = s + b;
            tk->len = p - b;
            continue;
        }
        if (c == '\'' || c == '"') {
            size_t b = p++;
            while (p < L->n && s[p] != c)
                p += s[p] == '\\' ? 2 : 1;
            if (p >= L->n)
                return fr_jinja_error_at(L->err, FR_ERR_FORMAT, L->t, (uint32_t)b,
                                         "unterminated string literal");
            fr_jtok *tk = push(L, JT_STRING, b);
            if (!tk) return oom(L);
            fr_status st = decode_string(L, b + 1, p, tk);
            if (st) return st;
            p++;
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof OPS / sizeof OPS[0]; k++) {
            size_t ol = strlen(OPS[k].s);
            if (p + ol <= L->n && !memcmp(s + p, OPS[k].s, ol)) break;
        }
        if (k == sizeof OPS / sizeof OPS[0]) {
            int clen = 1; /* the whole UTF-8 character, so the message stays valid UTF-8 */
            while (p + (size_t)clen < L->n && ((unsigned char)s[p + (size_t)clen] & 0xC0) == 0x80)
                clen++;
            return fr_jinja_error_at(L->err, FR_ERR_FORMAT, L->t, (uint32_t)p,
                                     "unexpected character '%.*s' in tag", clen, s + p);
        }
        fr_jop op = OPS[k].op;
        if (op == JOP_LPAREN || op == JOP_LBRACKET || op == JOP_LBRACE) {
            if (depth == MAX_BRACKETS)
                return fr_jinja_error_at(L->err, FR_ERR_UNSUPPORTED, L->t, (uint32_t)p,
                                         "brackets nested too deep");
            stack[depth++] = op == JOP_LPAREN ? ')' : op == JOP_LBRACKET ? ']' : '}';
        } else if (op == JOP_RPAREN || op == JOP_RBRACKET || op == JOP_RBRACE) {
            if (depth == 0)
                return fr_jinja_error_at(L->err, FR_ERR_FORMAT, L->t, (uint32_t)p,
                                         "unexpected '%c'", c);
            if (stack[depth - 1] != c)
                return fr_jinja_error_at(L->err, FR_ERR_FORMAT, L->t, (uint32_t)p,
                                         "unexpected '%c', expected '%c'", c, stack[depth - 1]);
            depth--;
        }
        fr_jtok *tk = push(L, JT_OP, p);
        if (!tk) return oom(L);
        tk->op = op;
        p += strlen(OPS[k].s);
    }
}

/* `{% raw %}...{% endraw %}`: returns true when the block tag at `open` is a raw opener, and
 * then lexes through the matching endraw. */
static bool match_word(const char *s, size_t n, size_t *p, const char *w) {
    size_t l = strlen(w);
    if (*p + l > n || memcmp(s + *p, w, l) || (*p + l < n && is_name_char(s[*p + l]))) return false;
    *p += l;
    return true;
}

static size_t skip_ws(const char *s, size_t n, size_t p) {
    while (p < n && is_space(s[p]))
        p++;
    return p;
}

/* Matches `WS* (-%} | +%} | %})` at p; returns the closing modifier or -1. *p goes past `%}`. */
static int match_close(const char *s, size_t n, size_t *p) {
    size_t q = skip_ws(s, n, *p);
    int mod = 0;
    if (q < n && (s[q] == '-' || s[q] == '+')) mod = s[q++];
    if (q + 1 < n && s[q] == '%' && s[q + 1] == '}') {
        *p = q + 2;
        return mod;
    }
    return -1;
}

static fr_status try_raw(lexer *L, size_t open, size_t p, size_t *pp, bool *is_raw,
                         bool *line_starting) {
    const char *s = L->s;
    *is_raw = false;
    size_t q = skip_ws(s, L->n, p);
    if (!match_word(s, L->n, &q, "raw")) return FR_OK;
    int mod = match_close(s, L->n, &q);
    if (mod < 0 || mod == '+') return FR_OK; /* jinja2's raw opener accepts only - and none */
    *is_raw = true;
    size_t body = mod == '-' ? skip_ws(s, L->n, q) : q;
    for (size_t k = body; k + 1 < L->n; k++) {
        if (s[k] != '{' || s[k + 1] != '%') continue;
        size_t r = k + 2;
        char emod = 0;
        if (r < L->n && (s[r] == '-' || s[r] == '+')) emod = s[r++];
        r = skip_ws(s, L->n, r);
        if (!match_word(s, L->n, &r, "endraw")) continue;
        int cmod = match_close(s, L->n, &r);
        if (cmod < 0) continue;
        bool ls = body > 0 && s[body - 1] == '\n';
        fr_status st = emit_text(L, body, k, emod, true, ls, JT_RAW);
        if (st) return st;
        size_t after = after_close(L, r, (char)cmod, true);
        *line_starting = after > 0 && s[after - 1] == '\n';
        *pp = after;
        return FR_OK;
    }
    return fr_jinja_error_at(L->err, FR_ERR_FORMAT, L->t, (uint32_t)open,
                             "missing end of raw directive ({%% endraw %%})");
}

fr_status fr_jinja_lex(fr_jinja_template *t, fr_jtoks *out, fr_error *err) {
    lexer L = {.t = t, .s = t->src, .n = t->len, .out = out, .err = err};
    const char *s = L.s;
    size_t pos = 0;
    bool line_starting = true;
    while (pos < L.n) {
        size_t k = pos;
        while (k + 1 < L.n &&
               !(s[k] == '{' && (s[k + 1] == '{' || s[k + 1] == '%' || s[k + 1] == '#')))
            k++;
        if (k + 1 >= L.n) {
            fr_status st = emit_text(&L, pos, L.n, 0, false, false, JT_TEXT);
            if (st) return st;
            break;
        }
        char kind = s[k + 1];
        size_t p = k + 2;
        char mod = 0;
        if (p < L.n && (s[p] == '-' || s[p] == '+')) mod = s[p++];
        fr_status st = emit_text(&L, pos, k, mod, kind != '{', line_starting, JT_TEXT);
        if (st) return st;
        if (kind == '#') {
            size_t e = p;
            while (e + 1 < L.n && !(s[e] == '#' && s[e + 1] == '}'))
                e++;
            if (e + 1 >= L.n)
                return fr_jinja_error_at(err, FR_ERR_FORMAT, t, (uint32_t)k,
                                         "missing end of comment tag '#}'");
            char cmod = e > p && (s[e - 1] == '-' || s[e - 1] == '+') ? s[e - 1] : 0;
            pos = after_close(&L, e + 2, cmod, true);
            line_starting = pos > 0 && s[pos - 1] == '\n';
            continue;
        }
        if (kind == '%') {
            bool is_raw;
            st = try_raw(&L, k, p, &pos, &is_raw, &line_starting);
            if (st) return st;
            if (is_raw) continue;
        }
        fr_jtok *tk = push(&L, kind == '%' ? JT_BLOCK_BEGIN : JT_VAR_BEGIN, k);
        if (!tk) return oom(&L);
        st = lex_tag(&L, k, &p, kind == '%', &line_starting);
        if (st) return st;
        pos = p;
    }
    fr_jtok *tk = push(&L, JT_EOF, L.n);
    return tk ? FR_OK : oom(&L);
}
