/* Jinja parser: tokens -> syntax tree, following jinja2's grammar and operator precedence
 * (filters and tests bind tighter than arithmetic, `**` is left-associative, comparisons chain).
 * Unknown tags are errors here; unknown filters and tests too, except where jinja2 defers that
 * error to run time (inside an {% if %} or a conditional expression of the same frame: see
 * check_unknown). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_parser.h"

fr_jnode *fr_jp_fail(fr_jparser *P, uint32_t pos, fr_status code, const char *fmt, const char *a,
                     const char *b) {
    if (!P->failed) {
        char msg[512];
        snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
        fr_jinja_error_at(P->err, code, P->t, pos, "%s", msg);
        P->failed = true;
        P->code = code;
    }
    return NULL;
}

fr_jnode *fr_jp_oom(fr_jparser *P) {
    if (!P->failed) {
        fr_error_set(P->err, FR_ERR_NOMEM, "%s: out of memory", P->t->name);
        P->failed = true;
        P->code = FR_ERR_NOMEM;
    }
    return NULL;
}

/* A short description of a token for "expected X, got Y" messages. */
const char *fr_jp_describe(const fr_jtok *t, char *buf, size_t n) {
    switch (t->kind) {
    case JT_EOF:
        return "end of template";
    case JT_VAR_END:
        return "end of print statement '}}'";
    case JT_BLOCK_END:
        return "end of statement block '%}'";
    case JT_NAME:
        snprintf(buf, n, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), t->s);
        return buf;
    case JT_STRING:
        return "string literal";
    case JT_INT:
    case JT_FLOAT:
        return "number";
    case JT_OP:
        return "operator";
    default:
        return "text";
    }
}

fr_jnode *fr_jp_node(fr_jparser *P, fr_jnode_kind kind, uint32_t pos) {
    fr_jnode *n = fr_jarena_alloc(&P->t->arena, sizeof *n);
    if (!n) return fr_jp_oom(P);
    n->kind = kind;
    n->pos = pos;
    return n;
}

bool fr_jp_vpush(fr_jparser *P, fr_jnvec *v, fr_jnode *n) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        fr_jnode **a = realloc(v->v, cap * sizeof *a);
        if (!a) {
            fr_jp_oom(P);
            return false;
        }
        v->v = a;
        v->cap = cap;
    }
    v->v[v->n++] = n;
    return true;
}

/* Moves a vector's contents into the node (arena) and frees it. */
bool fr_jp_vfinish(fr_jparser *P, fr_jnvec *v, fr_jnode *n) {
    if (v->n) {
        n->items = fr_jarena_alloc(&P->t->arena, v->n * sizeof *n->items);
        if (!n->items) {
            free(v->v);
            fr_jp_oom(P);
            return false;
        }
        memcpy(n->items, v->v, v->n * sizeof *n->items);
    }
    n->nitems = v->n;
    free(v->v);
    return true;
}

bool fr_jp_expect_op(fr_jparser *P, fr_jop op, const char *what) {
    if (is_op(cur(P), op)) {
        adv(P);
        return true;
    }
    char b[64];
    fr_jp_fail(P, cur(P)->pos, FR_ERR_FORMAT, "expected %s, got %s", what,
               fr_jp_describe(cur(P), b, sizeof b));
    return false;
}

bool fr_jp_expect_end(fr_jparser *P, fr_jtok_kind kind) {
    if (cur(P)->kind == kind) {
        adv(P);
        return true;
    }
    char b[64];
    fr_jp_fail(P, cur(P)->pos, FR_ERR_FORMAT, "expected %s, got %s",
               kind == JT_BLOCK_END ? "end of statement block '%}'" : "end of print statement '}}'",
               fr_jp_describe(cur(P), b, sizeof b));
    return false;
}

const char *fr_jp_name_dup(fr_jparser *P, const fr_jtok *t) {
    const char *s = fr_jarena_strdup(&P->t->arena, t->s, t->len);
    if (!s) fr_jp_oom(P);
    return s;
}

/* ---------------------------------------------------------------- expressions */

static fr_jnode *parse_unary(fr_jparser *P, bool with_filter);

bool fr_jp_enter(fr_jparser *P) {
    if (++P->nesting > FR_JP_MAX_NESTING) {
        fr_jp_fail(P, cur(P)->pos, FR_ERR_UNSUPPORTED, "expression nested too deep", NULL, NULL);
        return false;
    }
    return true;
}

/* Call arguments after '(' up to ')': positional, then name=value. */
static bool parse_call_args(fr_jparser *P, fr_jnode *call) {
    fr_jnvec v = {0};
    adv(P); /* ( */
    bool kw_seen = false;
    while (!is_op(cur(P), JOP_RPAREN)) {
        if (v.n && !fr_jp_expect_op(P, JOP_COMMA, "','")) goto fail;
        if (is_op(cur(P), JOP_RPAREN)) break;
        if (is_op(cur(P), JOP_MUL) || is_op(cur(P), JOP_POW)) {
            fr_jp_fail(P, cur(P)->pos, FR_ERR_UNSUPPORTED, "*args / **kwargs are not supported",
                       NULL, NULL);
            goto fail;
        }
        fr_jnode *arg;
        if (cur(P)->kind == JT_NAME && is_op(peek(P, 1), JOP_ASSIGN)) {
            arg = fr_jp_node(P, JN_KWARG, cur(P)->pos);
            if (!arg || !(arg->str = fr_jp_name_dup(P, cur(P)))) goto fail;
            arg->len = cur(P)->len;
            adv(P);
            adv(P);
            if (!(arg->a = fr_jp_expression(P, true))) goto fail;
            kw_seen = true;
        } else {
            if (kw_seen) {
                fr_jp_fail(P, cur(P)->pos, FR_ERR_FORMAT,
                           "positional argument after keyword argument", NULL, NULL);
                goto fail;
            }
            if (!(arg = fr_jp_expression(P, true))) goto fail;
        }
        if (!fr_jp_vpush(P, &v, arg)) goto fail;
    }
    adv(P); /* ) */
    return fr_jp_vfinish(P, &v, call);
fail:
    free(v.v);
    return false;
}

fr_jnode *fr_jp_filter(fr_jparser *P, fr_jnode *value, bool start_inline) {
    uint32_t pos = cur(P)->pos;
    if (!start_inline) adv(P); /* | */
    if (cur(P)->kind != JT_NAME) {
        char b[64];
        return fr_jp_fail(P, cur(P)->pos, FR_ERR_FORMAT, "expected a filter name, got %s",
                          fr_jp_describe(cur(P), b, sizeof b), NULL);
    }
    fr_jnode *f = fr_jp_node(P, JN_FILTER, pos);
    if (!f || !(f->str = fr_jp_name_dup(P, cur(P)))) return NULL;
    f->pos = cur(P)->pos;
    adv(P);
    f->a = value;
    f->deferred_unknown = !fr_jinja_filter_known(f->str);
    if (is_op(cur(P), JOP_LPAREN) && !parse_call_args(P, f)) return NULL;
    return f;
}

static fr_jnode *parse_postfix(fr_jparser *P, fr_jnode *n);

static fr_jnode *parse_test(fr_jparser *P, fr_jnode *value) {
    adv(P); /* is */
    fr_jnode *t = fr_jp_node(P, JN_TEST, cur(P)->pos);
    if (!t) return NULL;
    t->a = value;
    if (is_name(cur(P), "not")) {
        t->op = 1;
        adv(P);
    }
    if (cur(P)->kind != JT_NAME) {
        char b[64];
        return fr_jp_fail(P, cur(P)->pos, FR_ERR_FORMAT, "expected a test name, got %s",
                          fr_jp_describe(cur(P), b, sizeof b), NULL);
    }
    t->pos = cur(P)->pos;
    if (!(t->str = fr_jp_name_dup(P, cur(P)))) return NULL;
    adv(P);
    t->deferred_unknown = !fr_jinja_test_known(t->str);
    const fr_jtok *c = cur(P);
    if (is_op(c, JOP_LPAREN)) {
        if (!parse_call_args(P, t)) return NULL;
    } else if ((c->kind == JT_NAME || c->kind == JT_STRING || c->kind == JT_INT ||
                c->kind == JT_FLOAT || is_op(c, JOP_LBRACKET) || is_op(c, JOP_LBRACE)) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        /* jinja2 takes one bare argument: `x is divisibleby 3`, `x is sameas false` */
        if (is_name(c, "is"))
            return fr_jp_fail(P, c->pos, FR_ERR_FORMAT, "cannot chain multiple tests with 'is'",
                              NULL, NULL);
        fr_jnode *arg = fr_jp_primary(P);
        if (!arg || !(arg = parse_postfix(P, arg))) return NULL;
        t->items = fr_jarena_alloc(&P->t->arena, sizeof *t->items);
        if (!t->items) return fr_jp_oom(P);
        t->items[0] = arg;
        t->nitems = 1;
    }
    return t;
}

static fr_jnode *parse_subscript(fr_jparser *P, fr_jnode *obj) {
    const fr_jtok *t = cur(P);
    if (is_op(t, JOP_DOT)) {
        adv(P);
        t = cur(P);
        if (t->kind == JT_NAME) {
            fr_jnode *n = fr_jp_node(P, JN_GETATTR, t->pos);
            if (!n || !(n->str = fr_jp_name_dup(P, t))) return NULL;
            n->len = t->len;
            n->a = obj;
            adv(P);
            return n;
        }
        if (t->kind == JT_INT) {
            fr_jnode *n = fr_jp_node(P, JN_GETITEM, t->pos), *k = fr_jp_node(P, JN_LITERAL, t->pos);
            if (!n || !k || !(k->lit = fr_jv_int(&P->t->arena, t->i))) return fr_jp_oom(P);
            n->a = obj;
            n->b = k;
            adv(P);
            return n;
        }
        char b[64];
        return fr_jp_fail(P, t->pos, FR_ERR_FORMAT, "expected an attribute name after '.', got %s",
                          fr_jp_describe(t, b, sizeof b), NULL);
    }
    /* [ */
    uint32_t pos = t->pos;
    adv(P);
    fr_jnode *parts[3] = {NULL, NULL, NULL};
    int colons = 0;
    if (!is_op(cur(P), JOP_COLON) && !(parts[0] = fr_jp_expression(P, true))) return NULL;
    while (is_op(cur(P), JOP_COLON) && colons < 2) {
        adv(P);
        colons++;
        if (!is_op(cur(P), JOP_RBRACKET) && !is_op(cur(P), JOP_COLON) &&
            !(parts[colons] = fr_jp_expression(P, true)))
            return NULL;
    }
    if (is_op(cur(P), JOP_COMMA))
        return fr_jp_fail(P, cur(P)->pos, FR_ERR_UNSUPPORTED, "tuple subscripts are not supported",
                          NULL, NULL);
    if (!fr_jp_expect_op(P, JOP_RBRACKET, "']'")) return NULL;
    fr_jnode *n = fr_jp_node(P, colons ? JN_SLICE : JN_GETITEM, pos);
    if (!n) return NULL;
    n->a = obj;
    if (colons) {
        n->b = parts[0];
        n->c = parts[1];
        n->d = parts[2];
    } else {
        n->b = parts[0];
    }
    return n;
}

static fr_jnode *parse_postfix(fr_jparser *P, fr_jnode *n) {
    while (n) {
        const fr_jtok *t = cur(P);
        if (is_op(t, JOP_DOT) || is_op(t, JOP_LBRACKET)) {
            n = parse_subscript(P, n);
        } else if (is_op(t, JOP_LPAREN)) {
            fr_jnode *c = fr_jp_node(P, JN_CALL, t->pos);
            if (!c) return NULL;
            c->a = n;
            if (!parse_call_args(P, c)) return NULL;
            n = c;
        } else {
            break;
        }
    }
    return n;
}

static fr_jnode *parse_filter_expr(fr_jparser *P, fr_jnode *n) {
    while (n) {
        const fr_jtok *t = cur(P);
        if (is_op(t, JOP_PIPE)) {
            n = fr_jp_filter(P, n, false);
        } else if (is_name(t, "is")) {
            n = parse_test(P, n);
        } else if (is_op(t, JOP_LPAREN)) {
            fr_jnode *c = fr_jp_node(P, JN_CALL, t->pos);
            if (!c) return NULL;
            c->a = n;
            if (!parse_call_args(P, c)) return NULL;
            n = c;
        } else {
            break;
        }
    }
    return n;
}

static fr_jnode *literal(fr_jparser *P, uint32_t pos, fr_jval *v) {
    fr_jnode *n = fr_jp_node(P, JN_LITERAL, pos);
    if (!n) return NULL;
    if (!v) return fr_jp_oom(P);
    n->lit = v;
    return n;
}

static fr_jnode *parse_list_or_dict(fr_jparser *P, bool dict) {
    fr_jnode *n = fr_jp_node(P, dict ? JN_DICT : JN_LIST, cur(P)->pos);
    if (!n) return NULL;
    adv(P);
    fr_jnvec v = {0};
    fr_jop close = dict ? JOP_RBRACE : JOP_RBRACKET;
    while (!is_op(cur(P), close)) {
        if (v.n && !fr_jp_expect_op(P, JOP_COMMA, "','")) goto fail;
        if (is_op(cur(P), close)) break;
        fr_jnode *item = fr_jp_expression(P, true);
        if (!item) goto fail;
        if (dict) {
            fr_jnode *pair = fr_jp_node(P, JN_PAIR, item->pos);
            if (!pair) goto fail;
            pair->a = item;
            if (!fr_jp_expect_op(P, JOP_COLON, "':'") || !(pair->b = fr_jp_expression(P, true)))
                goto fail;
            item = pair;
        }
        if (!fr_jp_vpush(P, &v, item)) goto fail;
    }
    adv(P);
    return fr_jp_vfinish(P, &v, n) ? n : NULL;
fail:
    free(v.v);
    return NULL;
}

fr_jnode *fr_jp_primary(fr_jparser *P) {
    const fr_jtok *t = cur(P);
    fr_jarena *a = &P->t->arena;
    switch (t->kind) {
    case JT_NAME: {
        if (is_name(t, "true") || is_name(t, "True")) {
            adv(P);
            return literal(P, t->pos, &fr_jv_true);
        }
        if (is_name(t, "false") || is_name(t, "False")) {
            adv(P);
            return literal(P, t->pos, &fr_jv_false);
        }
        if (is_name(t, "none") || is_name(t, "None")) {
            adv(P);
            return literal(P, t->pos, &fr_jv_none);
        }
        fr_jnode *n = fr_jp_node(P, JN_NAME, t->pos);
        if (!n || !(n->str = fr_jp_name_dup(P, t))) return NULL;
        n->len = t->len;
        adv(P);
        return n;
    }
    case JT_STRING: {
        /* adjacent literals concatenate: "a" "b" == "ab" */
        uint32_t pos = t->pos;
        fr_jbuf b = {0};
        while (cur(P)->kind == JT_STRING) {
            fr_jbuf_put(&b, cur(P)->s, cur(P)->len);
            adv(P);
        }
        fr_jval *v = b.oom ? NULL : fr_jv_str(a, b.data ? b.data : "", b.len);
        fr_jbuf_free(&b);
        return literal(P, pos, v);
    }
    case JT_INT:
        adv(P);
        return literal(P, t->pos, fr_jv_int(a, t->i));
    case JT_FLOAT:
        adv(P);
        return literal(P, t->pos, fr_jv_float(a, t->f));
    case JT_OP:
        if (t->op == JOP_LPAREN) {
            adv(P);
            fr_jnode *n = fr_jp_tuple(P, false, true, true, false);
            if (!n || !fr_jp_expect_op(P, JOP_RPAREN, "')'")) return NULL;
            return n;
        }
        if (t->op == JOP_LBRACKET) return parse_list_or_dict(P, false);
        if (t->op == JOP_LBRACE) return parse_list_or_dict(P, true);
        break;
    default:
        break;
    }
    char b[64];
    return fr_jp_fail(P, t->pos, FR_ERR_FORMAT, "expected an expression, got %s",
                      fr_jp_describe(t, b, sizeof b), NULL);
}

static fr_jnode *parse_unary(fr_jparser *P, bool with_filter) {
    if (!fr_jp_enter(P)) return NULL;
    const fr_jtok *t = cur(P);
    fr_jnode *n;
    if (is_op(t, JOP_SUB) || is_op(t, JOP_ADD)) {
        adv(P);
        n = fr_jp_node(P, JN_UNARY, t->pos);
        if (n) {
            n->op = t->op;
            if (!(n->a = parse_unary(P, false))) n = NULL;
        }
    } else {
        n = fr_jp_primary(P);
    }
    n = parse_postfix(P, n);
    if (with_filter) n = parse_filter_expr(P, n);
    P->nesting--;
    return n;
}

static fr_jnode *binary(fr_jparser *P, fr_jnode_kind kind, int op, uint32_t pos, fr_jnode *l,
                        fr_jnode *r) {
    if (!l || !r) return NULL;
    fr_jnode *n = fr_jp_node(P, kind, pos);
    if (!n) return NULL;
    n->op = op;
    n->a = l;
    n->b = r;
    return n;
}

static fr_jnode *parse_pow(fr_jparser *P) {
    fr_jnode *l = parse_unary(P, true);
    while (l && is_op(cur(P), JOP_POW)) {
        uint32_t pos = cur(P)->pos;
        adv(P);
        l = binary(P, JN_BINARY, JOP_POW, pos, l, parse_unary(P, true));
    }
    return l;
}

static fr_jnode *parse_math2(fr_jparser *P) {
    fr_jnode *l = parse_pow(P);
    while (l) {
        const fr_jtok *t = cur(P);
        if (!(is_op(t, JOP_MUL) || is_op(t, JOP_DIV) || is_op(t, JOP_FLOORDIV) ||
              is_op(t, JOP_MOD)))
            break;
        adv(P);
        l = binary(P, JN_BINARY, t->op, t->pos, l, parse_pow(P));
    }
    return l;
}

static fr_jnode *parse_concat(fr_jparser *P) {
    fr_jnode *l = parse_math2(P);
    while (l && is_op(cur(P), JOP_TILDE)) {
        uint32_t pos = cur(P)->pos;
        adv(P);
        l = binary(P, JN_BINARY, JOP_TILDE, pos, l, parse_math2(P));
    }
    return l;
}

static fr_jnode *parse_math1(fr_jparser *P) {
    fr_jnode *l = parse_concat(P);
    while (l && (is_op(cur(P), JOP_ADD) || is_op(cur(P), JOP_SUB))) {
        const fr_jtok *t = cur(P);
        adv(P);
        l = binary(P, JN_BINARY, t->op, t->pos, l, parse_concat(P));
    }
    return l;
}

static fr_jnode *parse_compare(fr_jparser *P) {
    fr_jnode *first = parse_math1(P);
    if (!first) return NULL;
    fr_jnvec v = {0};
    while (1) {
        const fr_jtok *t = cur(P);
        int op = 0;
        if (t->kind == JT_OP && (t->op == JOP_EQ || t->op == JOP_NE || t->op == JOP_LT ||
                                 t->op == JOP_LE || t->op == JOP_GT || t->op == JOP_GE)) {
            op = t->op;
            adv(P);
        } else if (is_name(t, "in")) {
            op = JOP_IN;
            adv(P);
        } else if (is_name(t, "not") && is_name(peek(P, 1), "in")) {
            op = JOP_NOTIN;
            adv(P);
            adv(P);
        } else {
            break;
        }
        fr_jnode *c = fr_jp_node(P, JN_CMPOP, t->pos);
        if (!c || !(c->a = parse_math1(P)) || !fr_jp_vpush(P, &v, c)) {
            free(v.v);
            return NULL;
        }
        c->op = op;
    }
    if (!v.n) return first;
    fr_jnode *n = fr_jp_node(P, JN_COMPARE, first->pos);
    if (!n) {
        free(v.v);
        return NULL;
    }
    n->a = first;
    return fr_jp_vfinish(P, &v, n) ? n : NULL;
}

static fr_jnode *parse_not(fr_jparser *P) {
    if (is_name(cur(P), "not")) {
        uint32_t pos = cur(P)->pos;
        adv(P);
        if (!fr_jp_enter(P)) return NULL;
        fr_jnode *n = fr_jp_node(P, JN_NOT, pos);
        if (n && !(n->a = parse_not(P))) n = NULL;
        P->nesting--;
        return n;
    }
    return parse_compare(P);
}

static fr_jnode *parse_and(fr_jparser *P) {
    fr_jnode *l = parse_not(P);
    while (l && is_name(cur(P), "and")) {
        uint32_t pos = cur(P)->pos;
        adv(P);
        l = binary(P, JN_AND, 0, pos, l, parse_not(P));
    }
    return l;
}

static fr_jnode *parse_or(fr_jparser *P) {
    fr_jnode *l = parse_and(P);
    while (l && is_name(cur(P), "or")) {
        uint32_t pos = cur(P)->pos;
        adv(P);
        l = binary(P, JN_OR, 0, pos, l, parse_and(P));
    }
    return l;
}

static fr_jnode *parse_condexpr(fr_jparser *P) {
    fr_jnode *e1 = parse_or(P);
    while (e1 && is_name(cur(P), "if")) {
        uint32_t pos = cur(P)->pos;
        adv(P);
        fr_jnode *n = fr_jp_node(P, JN_COND, pos);
        if (!n || !(n->a = parse_or(P))) {
            e1 = NULL;
            break;
        }
        n->b = e1;
        if (is_name(cur(P), "else")) {
            adv(P);
            if (!fr_jp_enter(P) || !(n->c = parse_condexpr(P))) {
                e1 = NULL;
                break;
            }
            P->nesting--;
        }
        e1 = n;
    }
    return e1;
}

fr_jnode *fr_jp_expression(fr_jparser *P, bool with_condexpr) {
    if (!fr_jp_enter(P)) return NULL;
    fr_jnode *n = with_condexpr ? parse_condexpr(P) : parse_or(P);
    P->nesting--;
    return n;
}

static bool tuple_end(fr_jparser *P, bool in_ends) {
    const fr_jtok *t = cur(P);
    if (t->kind == JT_VAR_END || t->kind == JT_BLOCK_END || is_op(t, JOP_RPAREN) ||
        t->kind == JT_EOF)
        return true;
    return in_ends && is_name(t, "in");
}

fr_jnode *fr_jp_tuple(fr_jparser *P, bool simplified, bool with_condexpr, bool explicit_parens,
                      bool in_ends) {
    uint32_t pos = cur(P)->pos;
    fr_jnvec v = {0};
    bool is_tuple = false;
    while (1) {
        if (v.n && !fr_jp_expect_op(P, JOP_COMMA, "','")) goto fail;
        if (tuple_end(P, in_ends)) break;
        fr_jnode *e = simplified ? fr_jp_primary(P) : fr_jp_expression(P, with_condexpr);
        if (!e || !fr_jp_vpush(P, &v, e)) goto fail;
        if (is_op(cur(P), JOP_COMMA))
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple) {
        if (v.n) {
            fr_jnode *e = v.v[0];
            free(v.v);
            return e;
        }
        if (!explicit_parens) {
            char b[64];
            fr_jp_fail(P, cur(P)->pos, FR_ERR_FORMAT, "expected an expression, got %s",
                       fr_jp_describe(cur(P), b, sizeof b), NULL);
            goto fail;
        }
    }
    fr_jnode *n = fr_jp_node(P, JN_TUPLE, pos);
    if (!n) goto fail;
    return fr_jp_vfinish(P, &v, n) ? n : NULL;
fail:
    free(v.v);
    return NULL;
}
