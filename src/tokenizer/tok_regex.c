/* PCRE2 wrapper (UTF + UCP, JIT when available) and the added-token trie. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tok_impl.h"

fr_status fr_tok_regex_compile(fr_tok_regex *re, const char *pattern, size_t len, bool literal,
                               const char *what, fr_error *err) {
    int ec;
    PCRE2_SIZE eoff;
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    re->code = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &ec, &eoff, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return fr_error_set(err, FR_ERR_FORMAT, "%s: regex does not compile at offset %zu: %s",
                            what, (size_t)eoff, (const char *)msg);
    }
    /* JIT is a speed-up only; the interpreter gives the same answers. */
    re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    return FR_OK;
}

void fr_tok_regex_free(fr_tok_regex *re) {
    if (re->code) pcre2_code_free(re->code);
    re->code = NULL;
}

fr_status fr_tok_matcher_init(fr_tok_matcher *m, const fr_tok_regex *re, fr_error *err) {
    memset(m, 0, sizeof *m);
    m->re = re;
    m->md = pcre2_match_data_create_from_pattern(re->code, NULL);
    m->mctx = pcre2_match_context_create(NULL);
    /* Long runs of one class (e.g. 100k spaces) need more than the default 32 KiB JIT stack. */
    m->jstack = pcre2_jit_stack_create(64 * 1024, 16 * 1024 * 1024, NULL);
    if (!m->md || !m->mctx || !m->jstack) {
        fr_tok_matcher_free(m);
        return fr_error_set(err, FR_ERR_NOMEM, "tokenizer: out of memory for regex matching");
    }
    pcre2_jit_stack_assign(m->mctx, NULL, m->jstack);
    return FR_OK;
}

void fr_tok_matcher_free(fr_tok_matcher *m) {
    if (m->md) pcre2_match_data_free(m->md);
    if (m->mctx) pcre2_match_context_free(m->mctx);
    if (m->jstack) pcre2_jit_stack_free(m->jstack);
    memset(m, 0, sizeof *m);
}

fr_status fr_tok_matcher_next(fr_tok_matcher *m, const char *s, size_t n, size_t *pos,
                              size_t *last_end, size_t *mstart, size_t *mend, bool *found,
                              fr_error *err) {
    *found = false;
    while (*pos <= n) {
        int rc = m->re->jit
                     ? pcre2_jit_match(m->re->code, (PCRE2_SPTR)s, n, *pos, 0, m->md, m->mctx)
                     : pcre2_match(m->re->code, (PCRE2_SPTR)s, n, *pos, PCRE2_NO_UTF_CHECK, m->md,
                                   m->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) return FR_OK;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return fr_error_set(err, FR_ERR_RANGE,
                                "tokenizer: regex matching failed at byte %zu: %s", *pos,
                                (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
        size_t a = ov[0], b = ov[1];
        if (b < a) b = a; /* \K tricks; never produced by tokenizer patterns */
        if (a == b && b == *last_end) {
            /* An empty match right after the previous match: step over one character. */
            if (a >= n) return FR_OK;
            *pos = a + fr_utf8_len((uint8_t)s[a]);
            continue;
        }
        *mstart = a;
        *mend = b;
        *pos = b;
        *last_end = b;
        *found = true;
        return FR_OK;
    }
    return FR_OK;
}

bool fr_tok_trie_add(fr_tok_trie *tr, const char *s, size_t n, int32_t added_index) {
    if (!tr->any) {
        for (int i = 0; i < 256; i++)
            tr->root[i] = -1;
        tr->any = true;
    }
    int32_t parent = -1; /* -1: the root, whose children are indexed by byte */
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        int32_t head = parent < 0 ? tr->root[c] : tr->nodes[parent].child;
        int32_t cur = head;
        if (parent >= 0)
            while (cur >= 0 && tr->nodes[cur].byte != c)
                cur = tr->nodes[cur].sibling;
        if (cur < 0) {
            if (tr->n == tr->cap) {
                size_t ncap = tr->cap ? tr->cap * 2 : 64;
                fr_tok_trie_node *nn = realloc(tr->nodes, ncap * sizeof *nn);
                if (!nn) return false;
                tr->nodes = nn;
                tr->cap = ncap;
            }
            cur = (int32_t)tr->n++;
            tr->nodes[cur] = (fr_tok_trie_node){-1, parent < 0 ? -1 : head, -1, c};
            if (parent < 0)
                tr->root[c] = cur;
            else
                tr->nodes[parent].child = cur;
        }
        parent = cur;
    }
    /* The first token with a given content wins. */
    if (parent >= 0 && tr->nodes[parent].added < 0) tr->nodes[parent].added = added_index;
    return true;
}

size_t fr_tok_trie_longest(const fr_tok_trie *tr, const char *s, size_t n, int32_t *added_index) {
    if (!tr->any || n == 0) return 0;
    int32_t cur = tr->root[(uint8_t)s[0]];
    size_t best = 0;
    for (size_t i = 0; cur >= 0;) {
        const fr_tok_trie_node *nd = &tr->nodes[cur];
        if (nd->added >= 0) {
            best = i + 1;
            *added_index = nd->added;
        }
        if (++i >= n) break;
        uint8_t c = (uint8_t)s[i];
        cur = nd->child;
        while (cur >= 0 && tr->nodes[cur].byte != c)
            cur = tr->nodes[cur].sibling;
    }
    return best;
}

void fr_tok_trie_free(fr_tok_trie *tr) {
    free(tr->nodes);
    memset(tr, 0, sizeof *tr);
}
