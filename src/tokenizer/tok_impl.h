/* The tokenizer object's layout, shared by the tokenizer's own .c files only. */
#ifndef FR_TOKENIZER_TOK_IMPL_H
#define FR_TOKENIZER_TOK_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdatomic.h>

#include "tokenizer/tok_map.h"
#include "tokenizer/tokenizer.h"

enum {
    FR_TOK_ID_PRESENT = 1,
    FR_TOK_ID_SPECIAL = 2,
    FR_TOK_ID_ADDED = 4,
    FR_TOK_ID_BYTE = 8,       /* FR_TOK_DEC_SPM with byte fallback: a <0xXX> token, one byte */
    FR_TOK_ID_MERGEABLE = 16, /* score merging: a concatenation may become this token */
};

typedef struct fr_tok_regex {
    pcre2_code *code; /* NULL = unused */
    bool jit;         /* JIT-compiled: matched with pcre2_jit_match (no per-call checks) */
} fr_tok_regex;

typedef struct fr_tok_norm {
    fr_tok_norm_kind kind;
    bool strip_left, strip_right;
    char *text; /* PREPEND text */
    size_t text_len;
    fr_tok_regex re; /* REPLACE pattern */
    char *content;   /* REPLACE replacement */
    size_t content_len;
    uint8_t *inert; /* Unicode forms: bitmap of code points < FR_TOK_INERT_LIMIT that the form
                       leaves alone whatever their neighbours */
} fr_tok_norm;

#define FR_TOK_INERT_LIMIT 0x30000

typedef struct fr_tok_pre {
    fr_tok_pre_kind kind;
    fr_tok_regex re; /* SPLIT pattern, DIGITS \p{N}, BYTE_LEVEL GPT-2 regex when use_regex */
    fr_tok_split_behavior behavior;
    bool invert;
    bool add_prefix_space;
    bool use_regex;
    char replacement[8]; /* METASPACE: UTF-8, NUL-terminated */
    size_t replacement_len;
    fr_tok_prepend_scheme prepend_scheme;
    bool split;
} fr_tok_pre;

typedef struct fr_tok_added {
    int32_t id;
    uint32_t off, len; /* content in added_blob */
    bool special, lstrip, rstrip, single_word, normalized;
} fr_tok_added;

/* Byte trie over added-token contents for leftmost-longest matching. */
typedef struct fr_tok_trie_node {
    int32_t child;   /* first child, -1 none */
    int32_t sibling; /* next sibling, -1 none */
    int32_t added;   /* index into added[] of the token ending here, -1 none */
    uint8_t byte;
} fr_tok_trie_node;

typedef struct fr_tok_trie {
    fr_tok_trie_node *nodes;
    size_t n, cap;
    int32_t root[256]; /* child node of the root for each first byte, -1 none */
    bool any;
} fr_tok_trie;

struct fr_tokenizer {
    /* id table: every id < n_ids, with its HF token string and its decoded bytes */
    int32_t n_ids;
    uint8_t *id_flags;
    char *tok_blob;
    uint32_t *tok_off, *tok_len;
    char *dec_blob;
    uint32_t *dec_off, *dec_len;
    fr_tok_strmap token_ids; /* token string -> id (added tokens take precedence) */

    /* BPE model. In byte mode (a ByteLevel pre-tokenizer), vocabulary keys are the raw bytes
     * behind the byte-level characters, so the text never needs mapping. */
    bool byte_mode;
    fr_tok_strmap vocab;
    fr_tok_pairmap merges;
    int32_t byte_sym[256]; /* byte mode: id of each single byte, -1 none */
    int32_t fallback[256]; /* byte_fallback: id of <0xXX>, -1 none */
    bool ignore_merges, byte_fallback, fuse_unk;
    int32_t unk_id;
    float *scores; /* SentencePiece merging by score (NULL: by the merges list) */

    fr_tok_added *added;
    size_t n_added;
    char *added_blob;
    fr_tok_trie trie_raw;  /* tokens matched in the raw text */
    fr_tok_trie trie_norm; /* tokens matched in the normalized text (contents normalized) */
    char *norm_blob;       /* normalized contents for trie_norm */

    fr_tok_norm *norm;
    size_t n_norm;
    fr_tok_pre *pre;
    size_t n_pre;

    /* Lead bytes of the code points in tok_unicode_compat's table (quick rejection). */
    uint8_t ucompat_lead[256];

    int32_t *prefix, *suffix;
    size_t n_prefix, n_suffix;
    fr_tok_decoder_kind decoder;
    uint32_t dec_strip_char; /* FR_TOK_DEC_SPM */
    size_t dec_strip;
    int32_t bos, eos;

    /* Word cache: BPE results of recent pieces. Guarded by a flag taken with test-and-set so
     * that concurrent encoders never wait: a busy cache is simply skipped. */
    atomic_flag cache_busy;
    fr_tok_strmap cache;
    fr_tok_ids cache_ids;
    uint64_t *cache_spans; /* off << 32 | count, indexed by the cache value */
    size_t cache_nspans, cache_capspans;
};

/* tok_regex.c */
fr_status fr_tok_regex_compile(fr_tok_regex *re, const char *pattern, size_t len, bool literal,
                               const char *what, fr_error *err);
void fr_tok_regex_free(fr_tok_regex *re);

/* One match iterator over a subject, with HF/onig semantics for empty matches. */
typedef struct fr_tok_matcher {
    const fr_tok_regex *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
} fr_tok_matcher;

fr_status fr_tok_matcher_init(fr_tok_matcher *m, const fr_tok_regex *re, fr_error *err);
void fr_tok_matcher_free(fr_tok_matcher *m);
/* Finds the next match in s[0..n) at or after *pos; false when none. Handles empty matches by
 * never returning an empty match right where the previous match ended (*last_end). */
fr_status fr_tok_matcher_next(fr_tok_matcher *m, const char *s, size_t n, size_t *pos,
                              size_t *last_end, size_t *mstart, size_t *mend, bool *found,
                              fr_error *err);

/* tok_normalize.c: prepares a Unicode-form step (the inert bitmap); applies the normalizer chain
 * to s[0..n), result in out (cleared first). */
bool fr_tok_norm_prepare(fr_tok_norm *nm);
fr_status fr_tok_normalize(const fr_tokenizer *t, const char *s, size_t n, fr_tok_buf *out,
                           fr_error *err);

/* tok_bpe.c: appends the BPE ids of one pre-tokenized piece. */
typedef struct fr_tok_bpe_scratch {
    void *syms;
    size_t cap_syms;
    uint64_t *heap;
    size_t cap_heap;
    fr_tok_ids word;
    fr_tok_buf cat; /* score merging: two tokens' texts joined */
} fr_tok_bpe_scratch;

fr_status fr_tok_bpe_piece(fr_tokenizer *t, fr_tok_bpe_scratch *sc, const char *s, size_t n,
                           fr_tok_ids *out, fr_error *err);
void fr_tok_bpe_scratch_free(fr_tok_bpe_scratch *sc);
void fr_tok_cache_free(fr_tokenizer *t);

/* tok_spm.c: the Metaspace step's settings; an SPM decoder token's text (is_byte: a byte
 * fallback token, out holds its byte); score merging set up from spec->scores; the heap rank of a
 * score (higher score, lower rank). */
fr_status fr_tok_spm_metaspace(fr_tok_pre *p, const fr_tok_pre_spec *ps, const char *src, size_t i,
                               fr_error *err);
bool fr_tok_spm_token_bytes(const fr_tokenizer_spec *spec, const char *s, size_t n, fr_tok_buf *out,
                            bool *is_byte);
fr_status fr_tok_spm_scores(fr_tokenizer *t, const fr_tokenizer_spec *spec, fr_error *err);
uint32_t fr_tok_spm_rank(float score);

/* tok_trie.c */
bool fr_tok_trie_add(fr_tok_trie *tr, const char *s, size_t n, int32_t added_index);
/* Longest token starting at s[0..n); returns its byte length (0 = none) and index. */
size_t fr_tok_trie_longest(const fr_tok_trie *tr, const char *s, size_t n, int32_t *added_index);
void fr_tok_trie_free(fr_tok_trie *tr);

#endif
