/* Jinja statements: {% if %}, {% for %}, {% set %}, {% macro %}, {% filter %}, {% with %},
 * {% generation %}, break/continue, and the check of unknown filter/test names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/jinja_parser.h"

/* ---------------------------------------------------------------- statements */

static fr_jnode *parse_body(fr_jparser *P, const char *const *ends, const char *opener,
                            uint32_t open_pos);

static bool at_end_tag(fr_jparser *P, const char *const *ends) {
    if (cur(P)->kind != JT_BLOCK_BEGIN || !ends) return false;
    for (const char *const *e = ends; *e; e++)
        if (is_name(peek(P, 1), *e)) return true;
    return false;
}

/* Assignment target: a name, `ns.attr` (when with_ns), or a tuple of names. */
static fr_jnode *parse_target(fr_jparser *P, bool with_ns, bool in_ends) {
    const fr_jtok *t = cur(P);
    if (with_ns && t->kind == JT_NAME && is_op(peek(P, 1), JOP_DOT) &&
        peek(P, 2)->kind == JT_NAME) {
        fr_jnode *obj = fr_jp_node(P, JN_NAME, t->pos),
                 *n = fr_jp_node(P, JN_GETATTR, peek(P, 2)->pos);
        if (!obj || !n || !(obj->str = fr_jp_name_dup(P, t)) ||
            !(n->str = fr_jp_name_dup(P, peek(P, 2))))
            return NULL;
        obj->len = t->len;
        n->len = peek(P, 2)->len;
        n->a = obj;
        adv(P);
        adv(P);
        adv(P);
        return n;
    }
    fr_jnode *n = fr_jp_tuple(P, true, false, false, in_ends);
    if (!n) return NULL;
    if (n->kind == JN_NAME) return n;
    if (n->kind == JN_TUPLE) {
        for (size_t i = 0; i < n->nitems; i++)
            if (n->items[i]->kind != JN_NAME)
                return fr_jp_fail(P, n->items[i]->pos, FR_ERR_FORMAT,
                                  "cannot assign to this expression (a tuple target holds only "
                                  "names)",
                                  NULL, NULL);
        return n;
    }
    return fr_jp_fail(P, t->pos, FR_ERR_FORMAT, "cannot assign to this expression", NULL, NULL);
}

static fr_jnode *parse_if(fr_jparser *P, uint32_t pos) {
    static const char *const ENDS[] = {"elif", "else", "endif", NULL};
    fr_jnode *n = fr_jp_node(P, JN_IF, pos);
    if (!n) return NULL;
    if (!(n->a = fr_jp_tuple(P, false, false, false, false)) ||
        !fr_jp_expect_end(P, JT_BLOCK_END) || !(n->b = parse_body(P, ENDS, "if", pos)))
        return NULL;
    /* now at {% elif / else / endif */
    adv(P);
    const fr_jtok *t = cur(P);
    adv(P);
    fr_jnode *res = n;
    if (is_name(t, "elif")) {
        res = (n->c = parse_if(P, t->pos)) ? n : NULL;
    } else if (is_name(t, "else")) {
        static const char *const END[] = {"endif", NULL};
        if (!fr_jp_expect_end(P, JT_BLOCK_END) || !(n->c = parse_body(P, END, "if", pos))) {
            res = NULL;
        } else {
            adv(P);
            adv(P);
            if (!fr_jp_expect_end(P, JT_BLOCK_END)) res = NULL;
        }
    } else if (!fr_jp_expect_end(P, JT_BLOCK_END)) {
        res = NULL;
    }
    return res;
}

static fr_jnode *parse_for(fr_jparser *P, uint32_t pos) {
    static const char *const ENDS[] = {"endfor", "else", NULL};
    static const char *const END[] = {"endfor", NULL};
    fr_jnode *n = fr_jp_node(P, JN_FOR, pos);
    if (!n || !(n->a = parse_target(P, false, true))) return NULL;
    if (!is_name(cur(P), "in")) {
        char b[64];
        return fr_jp_fail(P, cur(P)->pos, FR_ERR_FORMAT, "expected 'in', got %s",
                          fr_jp_describe(cur(P), b, sizeof b), NULL);
    }
    adv(P);
    if (!(n->b = fr_jp_tuple(P, false, false, false, false))) return NULL;
    if (is_name(cur(P), "if")) {
        adv(P);
        if (!(n->e = fr_jp_expression(P, true))) return NULL;
    }
    if (is_name(cur(P), "recursive"))
        return fr_jp_fail(P, cur(P)->pos, FR_ERR_UNSUPPORTED, "recursive loops are not supported",
                          NULL, NULL);
    if (!fr_jp_expect_end(P, JT_BLOCK_END)) return NULL;
    int loops = P->loops;
    P->loops = loops + 1;
    n->c = parse_body(P, ENDS, "for", pos);
    P->loops = loops;
    if (!n->c) return NULL;
    adv(P);
    bool has_else = is_name(cur(P), "else");
    adv(P);
    if (!fr_jp_expect_end(P, JT_BLOCK_END)) return NULL;
    if (has_else) {
        if (!(n->d = parse_body(P, END, "for", pos))) return NULL;
        adv(P);
        adv(P);
        if (!fr_jp_expect_end(P, JT_BLOCK_END)) return NULL;
    }
    return n;
}

static fr_jnode *parse_set(fr_jparser *P, uint32_t pos) {
    fr_jnode *target = parse_target(P, true, false);
    if (!target) return NULL;
    if (is_op(cur(P), JOP_ASSIGN)) {
        adv(P);
        fr_jnode *n = fr_jp_node(P, JN_SET, pos);
        if (!n) return NULL;
        n->a = target;
        if (!(n->b = fr_jp_tuple(P, false, true, false, false)) ||
            !fr_jp_expect_end(P, JT_BLOCK_END))
            return NULL;
        return n;
    }
    if (target->kind != JN_NAME && target->kind != JN_GETATTR)
        return fr_jp_fail(P, target->pos, FR_ERR_FORMAT, "a block assignment needs a single target",
                          NULL, NULL);
    static const char *const END[] = {"endset", NULL};
    fr_jnode *n = fr_jp_node(P, JN_SETBLOCK, pos);
    if (!n) return NULL;
    n->a = target;
    fr_jnvec v = {0};
    while (is_op(cur(P), JOP_PIPE)) {
        fr_jnode *f = fr_jp_filter(P, NULL, false);
        if (!f || !fr_jp_vpush(P, &v, f)) {
            free(v.v);
            return NULL;
        }
    }
    if (!fr_jp_vfinish(P, &v, n) || !fr_jp_expect_end(P, JT_BLOCK_END) ||
        !(n->c = parse_body(P, END, "set", pos)))
        return NULL;
    adv(P);
    adv(P);
    return fr_jp_expect_end(P, JT_BLOCK_END) ? n : NULL;
}

static fr_jnode *parse_macro(fr_jparser *P, uint32_t pos) {
    static const char *const END[] = {"endmacro", NULL};
    if (cur(P)->kind != JT_NAME)
        return fr_jp_fail(P, cur(P)->pos, FR_ERR_FORMAT, "expected a macro name", NULL, NULL);
    fr_jnode *n = fr_jp_node(P, JN_MACRO, pos);
    if (!n || !(n->str = fr_jp_name_dup(P, cur(P)))) return NULL;
    adv(P);
    if (!is_op(cur(P), JOP_LPAREN))
        return fr_jp_fail(P, cur(P)->pos, FR_ERR_FORMAT, "expected '(' after the macro name", NULL,
                          NULL);
    adv(P);
    fr_jnvec v = {0};
    while (!is_op(cur(P), JOP_RPAREN)) {
        if (v.n && !fr_jp_expect_op(P, JOP_COMMA, "','")) goto fail;
        if (cur(P)->kind != JT_NAME) {
            fr_jp_fail(P, cur(P)->pos, FR_ERR_FORMAT, "expected a parameter name", NULL, NULL);
            goto fail;
        }
        fr_jnode *p = fr_jp_node(P, JN_PARAM, cur(P)->pos);
        if (!p || !(p->str = fr_jp_name_dup(P, cur(P))) || !fr_jp_vpush(P, &v, p)) goto fail;
        adv(P);
        if (is_op(cur(P), JOP_ASSIGN)) {
            adv(P);
            if (!(p->a = fr_jp_expression(P, true))) goto fail;
        } else if (v.n > 1 && v.v[v.n - 2]->a) {
            fr_jp_fail(P, p->pos, FR_ERR_FORMAT,
                       "parameter without a default follows one with a default", NULL, NULL);
            goto fail;
        }
    }
    adv(P);
    if (!fr_jp_vfinish(P, &v, n) || !fr_jp_expect_end(P, JT_BLOCK_END)) return NULL;
    int loops = P->loops;
    P->loops = 0;
    n->c = parse_body(P, END, "macro", pos);
    P->loops = loops;
    if (!n->c) return NULL;
    adv(P);
    adv(P);
    return fr_jp_expect_end(P, JT_BLOCK_END) ? n : NULL;
fail:
    free(v.v);
    return NULL;
}

/* {% filter name(args) | name2 %} ... {% endfilter %} and {% generation %} (transformers'
 * assistant-mask tag, which renders its body unchanged). */
static fr_jnode *parse_wrapped(fr_jparser *P, uint32_t pos, bool is_filter) {
    static const char *const FEND[] = {"endfilter", NULL};
    static const char *const GEND[] = {"endgeneration", NULL};
    fr_jnode *n = fr_jp_node(P, JN_FILTERBLOCK, pos);
    if (!n) return NULL;
    if (is_filter) {
        fr_jnvec v = {0};
        bool first = true;
        do {
            fr_jnode *f = fr_jp_filter(P, NULL, first);
            first = false;
            if (!f || !fr_jp_vpush(P, &v, f)) {
                free(v.v);
                return NULL;
            }
        } while (is_op(cur(P), JOP_PIPE));
        if (!fr_jp_vfinish(P, &v, n)) return NULL;
    }
    if (!fr_jp_expect_end(P, JT_BLOCK_END) ||
        !(n->c = parse_body(P, is_filter ? FEND : GEND, is_filter ? "filter" : "generation", pos)))
        return NULL;
    adv(P);
    adv(P);
    return fr_jp_expect_end(P, JT_BLOCK_END) ? n : NULL;
}

static fr_jnode *parse_with(fr_jparser *P, uint32_t pos) {
    static const char *const END[] = {"endwith", NULL};
    fr_jnode *n = fr_jp_node(P, JN_WITH, pos);
    if (!n) return NULL;
    fr_jnvec v = {0};
    while (cur(P)->kind != JT_BLOCK_END) {
        if (v.n && !fr_jp_expect_op(P, JOP_COMMA, "','")) goto fail;
        fr_jnode *s = fr_jp_node(P, JN_SET, cur(P)->pos);
        if (!s || !(s->a = parse_target(P, false, false)) ||
            !fr_jp_expect_op(P, JOP_ASSIGN, "'='") || !(s->b = fr_jp_expression(P, true)) ||
            !fr_jp_vpush(P, &v, s))
            goto fail;
    }
    if (!fr_jp_vfinish(P, &v, n)) return NULL;
    adv(P);
    if (!(n->c = parse_body(P, END, "with", pos))) return NULL;
    adv(P);
    adv(P);
    return fr_jp_expect_end(P, JT_BLOCK_END) ? n : NULL;
fail:
    free(v.v);
    return NULL;
}

static fr_jnode *parse_statement(fr_jparser *P) {
    uint32_t open = cur(P)->pos;
    adv(P); /* {% */
    const fr_jtok *t = cur(P);
    if (t->kind != JT_NAME) {
        char b[64];
        return fr_jp_fail(P, t->pos, FR_ERR_FORMAT, "expected a tag name, got %s",
                          fr_jp_describe(t, b, sizeof b), NULL);
    }
    adv(P);
    if (is_name(t, "if")) return parse_if(P, open);
    if (is_name(t, "for")) return parse_for(P, open);
    if (is_name(t, "set")) return parse_set(P, open);
    if (is_name(t, "macro")) return parse_macro(P, open);
    if (is_name(t, "filter")) return parse_wrapped(P, open, true);
    if (is_name(t, "generation")) return parse_wrapped(P, open, false);
    if (is_name(t, "with")) return parse_with(P, open);
    if (is_name(t, "break") || is_name(t, "continue")) {
        if (!P->loops)
            return fr_jp_fail(P, t->pos, FR_ERR_FORMAT, "'%s' outside a loop",
                              is_name(t, "break") ? "break" : "continue", NULL);
        fr_jnode *n = fr_jp_node(P, is_name(t, "break") ? JN_BREAK : JN_CONTINUE, open);
        return n && fr_jp_expect_end(P, JT_BLOCK_END) ? n : NULL;
    }
    static const char *const ENDS[] = {
        "endif",         "endfor", "endset", "endmacro", "endfilter", "endwith",
        "endgeneration", "else",   "elif",   "endraw",   NULL};
    for (const char *const *e = ENDS; *e; e++)
        if (is_name(t, *e))
            return fr_jp_fail(P, t->pos, FR_ERR_FORMAT, "unexpected '%s' tag", *e, NULL);
    char name[48];
    snprintf(name, sizeof name, "%.*s", (int)(t->len > 40 ? 40 : t->len), t->s);
    return fr_jp_fail(P, t->pos, FR_ERR_UNSUPPORTED, "unknown or unsupported tag '%s'", name, NULL);
}

/* Statements until EOF (ends == NULL) or a block tag named in ends, where it stops with the
 * cursor on that tag's '{%'. */
static fr_jnode *parse_body(fr_jparser *P, const char *const *ends, const char *opener,
                            uint32_t open_pos) {
    if (!fr_jp_enter(P)) return NULL;
    fr_jnode *body = fr_jp_node(P, JN_BODY, cur(P)->pos);
    fr_jnvec v = {0};
    while (body) {
        const fr_jtok *t = cur(P);
        fr_jnode *s = NULL;
        if (t->kind == JT_EOF) {
            if (ends) {
                char want[128] = "";
                for (const char *const *e = ends; *e; e++)
                    snprintf(want + strlen(want), sizeof want - strlen(want), "%s'%s'",
                             e == ends ? "" : " or ", *e);
                fr_jp_fail(P, open_pos, FR_ERR_FORMAT,
                           "unclosed '%s' block: expected %s before the end of the template",
                           opener, want);
                goto fail;
            }
            break;
        }
        if (at_end_tag(P, ends)) break;
        if (t->kind == JT_TEXT || t->kind == JT_RAW) {
            s = fr_jp_node(P, JN_TEXT, t->pos);
            if (s) {
                s->str = t->s;
                s->len = t->len;
            }
            adv(P);
        } else if (t->kind == JT_VAR_BEGIN) {
            adv(P);
            s = fr_jp_node(P, JN_OUTPUT, t->pos);
            if (s && (!(s->a = fr_jp_tuple(P, false, true, false, false)) ||
                      !fr_jp_expect_end(P, JT_VAR_END)))
                s = NULL;
        } else if (t->kind == JT_BLOCK_BEGIN) {
            s = parse_statement(P);
        } else {
            char b[64];
            fr_jp_fail(P, t->pos, FR_ERR_FORMAT, "unexpected %s", fr_jp_describe(t, b, sizeof b),
                       NULL);
        }
        if (!s || !fr_jp_vpush(P, &v, s)) goto fail;
    }
    P->nesting--;
    return body && fr_jp_vfinish(P, &v, body) ? body : NULL;
fail:
    free(v.v);
    P->nesting--;
    return NULL;
}

/* jinja2 reports an unknown filter or test at compile time unless it sits in a "soft" frame: an
 * {% if %} (test and branches) or a conditional expression, not crossing into the new frame of a
 * loop body, macro or block; there the error waits until the filter is actually applied. */
static bool check_unknown(fr_jparser *P, const fr_jnode *n, bool soft, int depth) {
    if (!n) return true;
    if (depth > 2000) { /* long operator chains nest without recursion in the parser */
        fr_jp_fail(P, n->pos, FR_ERR_UNSUPPORTED, "expression nested too deep", NULL, NULL);
        return false;
    }
    if ((n->kind == JN_FILTER || n->kind == JN_TEST) && n->deferred_unknown && !soft) {
        fr_jp_fail(P, n->pos, FR_ERR_UNSUPPORTED,
                   n->kind == JN_FILTER ? "unknown filter '%s'" : "unknown test '%s'", n->str,
                   NULL);
        return false;
    }
    bool child_soft = soft || n->kind == JN_IF || n->kind == JN_COND;
    bool ok = true;
    switch (n->kind) {
    case JN_FOR:
        ok = check_unknown(P, n->a, soft, depth + 1) && check_unknown(P, n->b, soft, depth + 1) &&
             check_unknown(P, n->c, false, depth + 1) && check_unknown(P, n->d, false, depth + 1) &&
             check_unknown(P, n->e, false, depth + 1);
        break;
    case JN_MACRO:
    case JN_SETBLOCK:
    case JN_FILTERBLOCK:
    case JN_WITH:
        ok = check_unknown(P, n->a, soft, depth + 1) && check_unknown(P, n->c, false, depth + 1);
        for (size_t i = 0; ok && i < n->nitems; i++)
            ok = check_unknown(P, n->items[i], soft, depth + 1);
        break;
    default:
        ok = check_unknown(P, n->a, child_soft, depth + 1) &&
             check_unknown(P, n->b, child_soft, depth + 1) &&
             check_unknown(P, n->c, child_soft, depth + 1) &&
             check_unknown(P, n->d, child_soft, depth + 1) &&
             check_unknown(P, n->e, child_soft, depth + 1);
        for (size_t i = 0; ok && i < n->nitems; i++)
            ok = check_unknown(P, n->items[i], child_soft, depth + 1);
    }
    return ok;
}

fr_status fr_jinja_parse(fr_jinja_template *t, const fr_jtoks *toks, fr_error *err) {
    fr_jparser P = {.t = t, .tk = toks->v, .n = toks->n, .err = err};
    t->root = parse_body(&P, NULL, NULL, 0);
    if (t->root && check_unknown(&P, t->root, false, 0)) return FR_OK;
    t->root = NULL;
    if (!P.failed) fr_jp_fail(&P, cur(&P)->pos, FR_ERR_FORMAT, "syntax error", NULL, NULL);
    return P.code;
}
