/* Regex class differences between Oniguruma (what HF tokenizers uses) and the linked PCRE2,
 * mostly code points of newer Unicode versions. A regex subject that holds any of them is matched
 * on a copy where each is swapped for a stand-in that PCRE2 classes as Oniguruma classes the
 * original; stand-ins have the same UTF-8 length, so match offsets are unchanged. */
#ifndef FR_TOKENIZER_TOK_UNICODE_COMPAT_H
#define FR_TOKENIZER_TOK_UNICODE_COMPAT_H

#include <stddef.h>
#include <stdint.h>

typedef struct fr_tok_ucompat {
    uint32_t lo, hi; /* inclusive range */
    uint32_t standin;
} fr_tok_ucompat;

extern const fr_tok_ucompat fr_tok_ucompat_table[]; /* sorted, disjoint */
extern const size_t fr_tok_ucompat_count;

#endif
