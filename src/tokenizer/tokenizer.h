/* Internal tokenizer interface: one description (fr_tokenizer_spec) that every source fills —
 * tokenizer.json (tok_json.c) and GGUF metadata (the GGUF loader) — and one builder that turns
 * it into the fr_tokenizer object used by encode/decode.
 *
 * The spec mirrors the Hugging Face `tokenizers` pipeline: added tokens are cut out first, the
 * rest is normalized, pre-tokenized (regex splits, byte-level mapping), run through BPE, and the
 * post-processor adds BOS/EOS-style tokens when the caller asks for special tokens. Everything the
 * spec points to is only borrowed during fr_tokenizer_build; the tokenizer keeps its own copies.
 *
 * A GGUF ("gpt2" model) loader fills it like this:
 *   vocab/n_vocab      <- tokenizer.ggml.tokens (id = index)
 *   token_types        <- tokenizer.ggml.token_type (CONTROL tokens become special added tokens,
 *                         USER_DEFINED tokens non-special added tokens, as llama.cpp treats them)
 *   merges (joined)    <- tokenizer.ggml.merges ("a b" strings, merge_b = NULL)
 *   pretok/n_pretok    <- fr_tokenizer_gguf_pretok(tokenizer.ggml.pre, ...)
 *   ignore_merges      <- the ignore_merges that fr_tokenizer_gguf_pretok reports
 *   bos_id/eos_id      <- tokenizer.ggml.bos_token_id / eos_token_id (-1 when absent)
 *   prefix/suffix ids  <- {bos} when tokenizer.ggml.add_bos_token, {eos} when add_eos_token
 *   decoder            <- FR_TOK_DEC_BYTE_LEVEL
 * A "llama" (SentencePiece BPE) GGUF instead: no merges and no pre-tokenizer; scores <-
 * tokenizer.ggml.scores; byte_fallback (the <0xXX> tokens); unk_id <- unknown_token_id (also a
 * special added token, as llama.cpp matches it in text); normalizers Prepend("▁") (when
 * tokenizer.ggml.add_space_prefix, default true) and Replace(" ", "▁"); decoder FR_TOK_DEC_SPM
 * (▁ -> space, byte fallback, one leading space stripped when add_space_prefix).
 */
#ifndef FR_TOKENIZER_TOKENIZER_H
#define FR_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferrum.h"

/* GGUF token_type values (tokenizer.ggml.token_type). */
typedef enum fr_tok_type {
    FR_TOK_TYPE_UNDEFINED = 0,
    FR_TOK_TYPE_NORMAL = 1,
    FR_TOK_TYPE_UNKNOWN = 2,
    FR_TOK_TYPE_CONTROL = 3,
    FR_TOK_TYPE_USER_DEFINED = 4,
    FR_TOK_TYPE_UNUSED = 5,
    FR_TOK_TYPE_BYTE = 6,
} fr_tok_type;

/* A token matched in the raw text before anything else (HF "added_tokens"). */
typedef struct fr_tok_added_spec {
    int32_t id;
    const char *content; /* UTF-8, not empty */
    size_t len;          /* 0 = strlen(content) */
    bool special;        /* skipped by decode(skip_special) */
    bool lstrip;         /* swallows whitespace on its left */
    bool rstrip;         /* swallows whitespace on its right */
    bool single_word;    /* only matches when not inside a word */
    bool normalized;     /* matched against the normalized text instead of the raw text */
} fr_tok_added_spec;

typedef enum fr_tok_norm_kind {
    FR_TOK_NORM_NFC,
    FR_TOK_NORM_NFD,
    FR_TOK_NORM_NFKC,
    FR_TOK_NORM_NFKD,
    FR_TOK_NORM_STRIP,   /* strip_left / strip_right: Unicode White_Space */
    FR_TOK_NORM_PREPEND, /* text: prepended when the string is not empty */
    FR_TOK_NORM_REPLACE, /* every match of pattern (regex when is_regex) -> content */
} fr_tok_norm_kind;

typedef struct fr_tok_norm_spec {
    fr_tok_norm_kind kind;
    bool strip_left, strip_right;
    const char *text;    /* PREPEND text; REPLACE pattern */
    bool is_regex;       /* REPLACE: pattern is a regex (else a literal string) */
    const char *content; /* REPLACE replacement */
} fr_tok_norm_spec;

/* HF SplitDelimiterBehavior. */
typedef enum fr_tok_split_behavior {
    FR_TOK_SPLIT_REMOVED,
    FR_TOK_SPLIT_ISOLATED,
    FR_TOK_SPLIT_MERGED_WITH_PREVIOUS,
    FR_TOK_SPLIT_MERGED_WITH_NEXT,
    FR_TOK_SPLIT_CONTIGUOUS,
} fr_tok_split_behavior;

typedef enum fr_tok_pre_kind {
    FR_TOK_PRE_SPLIT,      /* pattern (regex or literal), behavior, invert */
    FR_TOK_PRE_BYTE_LEVEL, /* add_prefix_space, use_regex (GPT-2 regex); must be the last step */
    FR_TOK_PRE_DIGITS,     /* individual_digits */
    FR_TOK_PRE_METASPACE,  /* replacement, prepend_scheme, split (SentencePiece spaces) */
} fr_tok_pre_kind;

/* HF Metaspace prepend_scheme: when the replacement is put in front of a piece that does not
 * start with it already. FIRST: only the piece that starts the original text. */
typedef enum fr_tok_prepend_scheme {
    FR_TOK_PREPEND_ALWAYS,
    FR_TOK_PREPEND_FIRST,
    FR_TOK_PREPEND_NEVER,
} fr_tok_prepend_scheme;

typedef struct fr_tok_pre_spec {
    fr_tok_pre_kind kind;
    const char *pattern; /* SPLIT: compiled by PCRE2 in UTF+UCP mode, verbatim */
    bool is_regex;       /* SPLIT: pattern is a regex (else a literal string) */
    fr_tok_split_behavior behavior;
    bool invert;
    bool add_prefix_space;                /* BYTE_LEVEL */
    bool use_regex;                       /* BYTE_LEVEL */
    bool individual_digits;               /* DIGITS */
    const char *replacement;              /* METASPACE: one character, replaces every ' ' */
    fr_tok_prepend_scheme prepend_scheme; /* METASPACE */
    bool split;                           /* METASPACE: pieces start at each replacement */
} fr_tok_pre_spec;

typedef enum fr_tok_decoder_kind {
    FR_TOK_DEC_NONE,       /* no decoder: tokens joined with single spaces (HF behaviour) */
    FR_TOK_DEC_BYTE_LEVEL, /* byte-level chars -> bytes, then lossy UTF-8 */
    FR_TOK_DEC_SPM,        /* SentencePiece style, HF Sequence[Replace, ByteFallback, Fuse, Strip]:
                              dec_replace -> dec_replace_with in every token; <0xXX> tokens are
                              bytes (dec_byte_fallback), a run of them that is not valid UTF-8
                              gives one U+FFFD per byte; up to dec_strip leading dec_strip_char
                              removed from the whole text */
} fr_tok_decoder_kind;

typedef struct fr_tokenizer_spec {
    /* BPE model vocabulary: vocab[id] is the token string or NULL for an unused id. */
    size_t n_vocab;
    const char *const *vocab;
    const size_t *vocab_lens;   /* optional; NULL = strlen */
    const int32_t *token_types; /* optional (GGUF); n_vocab entries of fr_tok_type */

    /* Merges in priority order. Pair form: merge_a[i], merge_b[i]. Joined form (merge_b NULL):
     * merge_a[i] is "a b" with exactly one space. */
    size_t n_merges;
    const char *const *merge_a;
    const char *const *merge_b;

    bool ignore_merges; /* a word already in the vocabulary is emitted whole */
    bool byte_fallback; /* unknown chars become <0xXX> tokens */
    bool fuse_unk;      /* consecutive unknown chars share one unk token */
    int32_t unk_id;     /* -1: unknown chars are dropped (HF behaviour without unk_token) */

    size_t n_added;
    const fr_tok_added_spec *added;

    size_t n_norm; /* applied in order (a flattened Sequence) */
    const fr_tok_norm_spec *norm;

    size_t n_pretok; /* applied in order (a flattened Sequence) */
    const fr_tok_pre_spec *pretok;

    /* Post-processor for a single sequence when add_special is requested. */
    size_t n_prefix, n_suffix;
    const int32_t *prefix_ids;
    const int32_t *suffix_ids;

    fr_tok_decoder_kind decoder;
    const char *dec_replace, *dec_replace_with; /* FR_TOK_DEC_SPM; NULL = no replacement */
    bool dec_byte_fallback;                     /* FR_TOK_DEC_SPM */
    uint32_t dec_strip_char;                    /* FR_TOK_DEC_SPM: a code point */
    size_t dec_strip;                           /* FR_TOK_DEC_SPM: how many at most */

    /* SentencePiece BPE (GGUF "llama" model): instead of a merge list, any two adjacent symbols
     * merge when their concatenation is a mergeable token (normal, user-defined or undefined
     * type), the highest score first, the leftmost on ties. */
    const float *scores; /* n_vocab entries; NULL = merge by the merges list */

    int32_t bos_id; /* -1 when none */
    int32_t eos_id; /* -1 when none */

    const char *source; /* file name for messages */
} fr_tokenizer_spec;

/* Zeroes a spec and sets the "none" ids to -1. */
void fr_tokenizer_spec_init(fr_tokenizer_spec *spec);

/* Validates the spec (ids in range, merges known, regexes compile, ...) and builds the tokenizer.
 * Errors name spec->source and the field at fault. */
fr_status fr_tokenizer_build(const fr_tokenizer_spec *spec, fr_tokenizer **out, fr_error *err);

/* The pre-tokenizer of a GGUF tokenizer.ggml.pre name: fills up to `cap` steps (regex splits then
 * the byte-level step; 5 is always enough) and tells whether that pre-tokenizer ignores merges
 * (Llama 3). Unknown names fail with FR_ERR_UNSUPPORTED. Patterns are static strings. */
fr_status fr_tokenizer_gguf_pretok(const char *pre, fr_tok_pre_spec *steps, size_t cap,
                                   size_t *n_steps, bool *ignore_merges, fr_error *err);

/* Loads tokenizer.json at `path` into a tokenizer; `config_path` (tokenizer_config.json, may be
 * NULL or missing) supplies the bos/eos tokens. */
fr_status fr_tokenizer_load_json(const char *path, const char *config_path, fr_tokenizer **out,
                                 fr_error *err);

#endif
