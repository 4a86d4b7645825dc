/* Fuzz target: a conversation rendered with the real Qwen3 and Llama 3 chat templates (loaded once
 * from the tokenizer_config.json files under $FR_TEST_TOKENIZERS). Input: messages JSON
 * [NUL tools JSON [NUL extra variables JSON]] (an empty part is an absent one); the low bit of the
 * length picks add_generation_prompt. Whatever the JSON, a render succeeds or fails with a message,
 * never leaves output behind on failure, and renders the same twice. Seeds: the conversations of
 * tests/data/template_refs.json and the Qwen3 chat fixture. */
#include "fuzz_util.h"

typedef struct loaded {
    fr_chat_template *qwen, *llama;
} loaded;

static const loaded *templates(void) {
    static loaded l;
    if (l.qwen) return &l;
    char p[1024];
    fr_error err = {0};
    snprintf(p, sizeof p, "%s/qwen3/tokenizer_config.json", fr_fuzz_tokenizers());
    FR_FUZZ_CHECK(fr_chat_template_load(p, &l.qwen, &err) == FR_OK, "%s", err.msg);
    snprintf(p, sizeof p, "%s/llama3/tokenizer_config.json", fr_fuzz_tokenizers());
    FR_FUZZ_CHECK(fr_chat_template_load(p, &l.llama, &err) == FR_OK, "%s", err.msg);
    return &l;
}

static void render(const fr_chat_template *t, const char *msgs, const char *tools, const char *vars,
                   bool agp) {
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    fr_error ea = {0}, eb = {0};
    fr_status sa = fr_chat_template_render(t, msgs, tools, agp, vars, &a, &alen, &ea);
    if (sa != FR_OK) {
        FR_FUZZ_CHECK(a == NULL && ea.msg[0], "failed render: output %p, message '%s'", (void *)a,
                      ea.msg);
        return;
    }
    FR_FUZZ_CHECK(a && a[alen] == 0, "render not NUL-terminated");
    /* Llama 3's template prints the date through strftime_now when the caller gives none, which
     * may tick between two renders: compare only when the first render is repeatable at all. */
    fr_status sb = fr_chat_template_render(t, msgs, tools, agp, vars, &b, &blen, &eb);
    FR_FUZZ_CHECK(sb == FR_OK, "second render failed: %s", eb.msg);
    if (alen != blen || memcmp(a, b, alen)) {
        char *c = NULL;
        size_t clen = 0;
        fr_status sc = fr_chat_template_render(t, msgs, tools, agp, vars, &c, &clen, &eb);
        FR_FUZZ_CHECK(sc == FR_OK && clen == blen && !memcmp(b, c, blen),
                      "renders differ three times");
        free(c);
    }
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const loaded *l = templates();
    fr_fuzz_part parts[3];
    const size_t n = fr_fuzz_split(data, size, parts, 3);
    char *msgs = fr_fuzz_strdup(parts[0].p, parts[0].n);
    char *tools = n > 1 && parts[1].n ? fr_fuzz_strdup(parts[1].p, parts[1].n) : NULL;
    char *vars = n > 2 && parts[2].n ? fr_fuzz_strdup(parts[2].p, parts[2].n) : NULL;
    const bool agp = size & 1;
    render(l->qwen, msgs, tools, vars, agp);
    render(l->llama, msgs, tools, vars, agp);
    free(msgs);
    free(tools);
    free(vars);
    return 0;
}
