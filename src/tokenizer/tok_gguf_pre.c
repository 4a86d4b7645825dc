/* GGUF tokenizer.ggml.pre names -> the pre-tokenizer of the Hugging Face tokenizer they were
 * converted from. Patterns are the HF ones (the regexes in each model's tokenizer.json), applied
 * as Isolated splits in order, then the byte-level step. */
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

/* GPT-2 / ByteLevel(use_regex) pattern. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
/* Llama 3: digits in groups of up to three. */
#define RE_LLAMA3                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                     \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* Qwen2 / Qwen3: single digits. */
#define RE_QWEN2                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                          \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* Digits(individual_digits) in front of a GPT-2 ByteLevel (SmolLM, StarCoder). */
#define RE_DIGIT "\\p{N}"

/* llama.cpp's "default" BPE splitting: punctuation runs, GPT-2, digit runs, digit triples. */
#define RE_PUNCT  "[\\p{P}\\$\\+<=>\\^~\\|]+"
#define RE_DIGITS "\\p{N}+"
#define RE_TRIPLE "[0-9][0-9][0-9]"

#define MAX_RE 4

typedef struct pre_entry {
    const char *names[6];
    const char *regex[MAX_RE];
    bool ignore_merges;
} pre_entry;

static const pre_entry table[] = {
    {{"llama3", "llama-v3", "llama-bpe", "falcon3", NULL}, {RE_LLAMA3, NULL}, true},
    {{"qwen2", "deepseek-r1-qwen", NULL}, {RE_QWEN2, NULL}, false},
    {{"smollm", "starcoder", "refact", NULL}, {RE_DIGIT, RE_GPT2}, false},
    {{"gpt-2", "gpt2", "phi-2", NULL}, {RE_GPT2, NULL}, false},
    {{"default", NULL}, {RE_PUNCT, RE_GPT2, RE_DIGITS, RE_TRIPLE}, false},
};

fr_status fr_tokenizer_gguf_pretok(const char *pre, fr_tok_pre_spec *steps, size_t cap,
                                   size_t *n_steps, bool *ignore_merges, fr_error *err) {
    if (!steps || !n_steps)
        return fr_error_set(err, FR_ERR_INVALID, "fr_tokenizer_gguf_pretok: NULL argument");
    if (!pre || !*pre) pre = "default";
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const pre_entry *e = &table[i];
        for (size_t j = 0; e->names[j]; j++) {
            if (strcmp(e->names[j], pre)) continue;
            size_t n = 0;
            for (size_t k = 0; k < MAX_RE && e->regex[k]; k++) {
                if (n == cap) goto small;
                memset(&steps[n], 0, sizeof steps[n]);
                steps[n].kind = FR_TOK_PRE_SPLIT;
                steps[n].pattern = e->regex[k];
                steps[n].is_regex = true;
                steps[n].behavior = FR_TOK_SPLIT_ISOLATED;
                n++;
            }
            if (n == cap) goto small;
            memset(&steps[n], 0, sizeof steps[n]);
            steps[n].kind = FR_TOK_PRE_BYTE_LEVEL;
            n++;
            *n_steps = n;
            if (ignore_merges) *ignore_merges = e->ignore_merges;
            return FR_OK;
        }
    }
    return fr_error_set(err, FR_ERR_UNSUPPORTED,
                        "tokenizer.ggml.pre \"%s\" is not supported "
                        "(known: llama-bpe, qwen2, smollm, gpt-2, default)",
                        pre);
small:
    return fr_error_set(err, FR_ERR_INVALID,
                        "fr_tokenizer_gguf_pretok: room for %zu steps is too "
                        "small",
                        cap);
}
