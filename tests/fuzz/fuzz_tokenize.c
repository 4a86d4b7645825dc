/* Fuzz target: encoding arbitrary bytes with the real Qwen3 and Llama 3 tokenizers (loaded once
 * from $FR_TEST_TOKENIZERS). Checked: invalid UTF-8 is refused and valid UTF-8 accepted; ids lie in
 * the vocabulary; byte-level BPE is lossless, so decoding gives the input back (Llama 3, which has
 * no normalizer) or its NFC form (Qwen3, when the text holds no '<' that could start a special
 * token, which would be matched before normalisation); the streaming decoder agrees with decode.
 * Seeds: the tokenizer fixture texts and a few hand-picked scripts. */
#include <utf8proc.h>

#include "fuzz_util.h"

typedef struct loaded {
    fr_tokenizer *qwen, *llama;
} loaded;

static const loaded *tokenizers(void) {
    static loaded l;
    if (l.qwen) return &l;
    char p[1024];
    fr_error err = {0};
    snprintf(p, sizeof p, "%s/qwen3", fr_fuzz_tokenizers());
    FR_FUZZ_CHECK(fr_tokenizer_load(p, &l.qwen, &err) == FR_OK, "%s", err.msg);
    snprintf(p, sizeof p, "%s/llama3", fr_fuzz_tokenizers());
    FR_FUZZ_CHECK(fr_tokenizer_load(p, &l.llama, &err) == FR_OK, "%s", err.msg);
    return &l;
}

static void check_stream(const fr_tokenizer *tok, const int32_t *ids, size_t n, const char *whole,
                         size_t whole_len, bool skip) {
    fr_error err = {0};
    fr_detokenizer *d = NULL;
    FR_FUZZ_CHECK(fr_detokenizer_new(tok, skip, &d, &err) == FR_OK, "%s", err.msg);
    size_t at = 0;
    for (size_t i = 0; i <= n; i++) {
        const char *piece;
        size_t plen;
        fr_status st = i < n ? fr_detokenizer_push(d, ids[i], &piece, &plen, &err)
                             : fr_detokenizer_finish(d, &piece, &plen, &err);
        FR_FUZZ_CHECK(st == FR_OK, "streaming decode: %s", err.msg);
        FR_FUZZ_CHECK(at + plen <= whole_len && (!plen || !memcmp(whole + at, piece, plen)),
                      "streaming decode differs from decode at byte %zu", at);
        at += plen;
    }
    FR_FUZZ_CHECK(at == whole_len, "streaming decode gave %zu of %zu bytes", at, whole_len);
    fr_detokenizer_free(d);
}

static void check(const fr_tokenizer *tok, const uint8_t *data, size_t size, bool nfc, bool valid) {
    fr_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    fr_status st = fr_tokenizer_encode(tok, (const char *)data, size, false, &ids, &n, &err);
    if (!valid) {
        FR_FUZZ_CHECK(st == FR_ERR_INVALID, "invalid UTF-8 not refused (status %d)", (int)st);
        return;
    }
    FR_FUZZ_CHECK(st == FR_OK, "valid UTF-8 refused: %s", err.msg);
    const size_t vocab = fr_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < n; i++)
        FR_FUZZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < vocab, "id %d outside vocab %zu", ids[i],
                      vocab);
    char *text = NULL;
    size_t len = 0;
    FR_FUZZ_CHECK(fr_tokenizer_decode(tok, ids, n, false, &text, &len, &err) == FR_OK, "%s",
                  err.msg);
    if (!nfc) {
        FR_FUZZ_CHECK(len == size && (!size || !memcmp(text, data, size)),
                      "decode(encode(x)) != x (%zu vs %zu bytes)", len, size);
    } else if (!memchr(data, '<', size)) {
        char *in = fr_fuzz_strdup(data, size);
        utf8proc_uint8_t *want = utf8proc_NFC((const utf8proc_uint8_t *)in);
        /* utf8proc stops at a NUL byte; then only the prefix could be compared: skip it */
        if (want && !memchr(data, 0, size))
            FR_FUZZ_CHECK(len == strlen((char *)want) && !memcmp(text, want, len),
                          "decode(encode(x)) != NFC(x)");
        free(want);
        free(in);
    }
    check_stream(tok, ids, n, text, len, false);
    free(text);
    /* with special tokens dropped, and with the post-processor's BOS */
    if (fr_tokenizer_decode(tok, ids, n, true, &text, &len, &err) == FR_OK) {
        check_stream(tok, ids, n, text, len, true);
        free(text);
    }
    free(ids);
    FR_FUZZ_CHECK(fr_tokenizer_encode(tok, (const char *)data, size, true, &ids, &n, &err) == FR_OK,
                  "%s", err.msg);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const loaded *l = tokenizers();
    const bool valid = fr_fuzz_utf8_valid(data, size);
    check(l->llama, data, size, false, valid);
    check(l->qwen, data, size, true, valid);
    return 0;
}
