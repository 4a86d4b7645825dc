/* Parser state shared by jinja_parse.c (helpers, expressions) and jinja_parse_stmt.c
 * (statements). Internal to the Jinja interpreter. */
#ifndef FR_TOKENIZER_JINJA_PARSER_H
#define FR_TOKENIZER_JINJA_PARSER_H

#include <string.h>

#include "tokenizer/jinja_internal.h"

#define FR_JP_MAX_NESTING 200

typedef struct fr_jparser {
    fr_jinja_template *t;
    const fr_jtok *tk;
    size_t n, i;
    fr_error *err;
    bool failed;
    fr_status code; /* of the first failure, kept here too: err may be NULL */
    int loops;      /* enclosing for loops of the current frame (for break/continue) */
    int nesting;    /* recursion depth, bounded against hostile input */
} fr_jparser;

typedef struct fr_jnvec {
    fr_jnode **v;
    size_t n, cap;
} fr_jnvec;

static inline const fr_jtok *cur(fr_jparser *P) {
    return &P->tk[P->i];
}
static inline const fr_jtok *peek(fr_jparser *P, size_t k) {
    return P->i + k < P->n ? &P->tk[P->i + k] : &P->tk[P->n - 1];
}
static inline void adv(fr_jparser *P) {
    if (P->i + 1 < P->n) P->i++;
}

static inline bool is_name(const fr_jtok *t, const char *w) {
    return t->kind == JT_NAME && t->len == strlen(w) && !memcmp(t->s, w, t->len);
}
static inline bool is_op(const fr_jtok *t, fr_jop op) {
    return t->kind == JT_OP && t->op == op;
}

/* Records the first error (message formatted with up to two string arguments); returns NULL. */
fr_jnode *fr_jp_fail(fr_jparser *P, uint32_t pos, fr_status code, const char *fmt, const char *a,
                     const char *b);
fr_jnode *fr_jp_oom(fr_jparser *P);
const char *fr_jp_describe(const fr_jtok *t, char *buf, size_t n);
fr_jnode *fr_jp_node(fr_jparser *P, fr_jnode_kind kind, uint32_t pos);
bool fr_jp_vpush(fr_jparser *P, fr_jnvec *v, fr_jnode *n);
bool fr_jp_vfinish(fr_jparser *P, fr_jnvec *v, fr_jnode *n); /* moves v into n->items, frees v */
bool fr_jp_expect_op(fr_jparser *P, fr_jop op, const char *what);
bool fr_jp_expect_end(fr_jparser *P, fr_jtok_kind kind);
const char *fr_jp_name_dup(fr_jparser *P, const fr_jtok *t);
bool fr_jp_enter(fr_jparser *P); /* bounds recursion; the caller decrements P->nesting */

fr_jnode *fr_jp_expression(fr_jparser *P, bool with_condexpr);
/* jinja2's parse_tuple: one expression, or a tuple when commas follow. */
fr_jnode *fr_jp_tuple(fr_jparser *P, bool simplified, bool with_condexpr, bool explicit_parens,
                      bool in_ends);
/* `| name(args)` after `value` (NULL in filter blocks); start_inline: no leading '|'. */
fr_jnode *fr_jp_filter(fr_jparser *P, fr_jnode *value, bool start_inline);
fr_jnode *fr_jp_primary(fr_jparser *P);

#endif
