/* Fuzz target: loading a tokenizer.json. Input: tokenizer.json [NUL tokenizer_config.json]. A
 * tokenizer that loads encodes and decodes a few fixed texts; the streaming decoder must give
 * exactly what the one-shot decoder gives, and every id must be inside the vocabulary.
 * Seeds: the small tokenizers of tests/data/tokenizer_features.json (tests/fuzz/make_corpus.py). */
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

static void check_text(const fr_tokenizer *tok, const char *text, size_t len) {
    fr_error err = {0};
    const size_t vocab = fr_tokenizer_vocab_size(tok);
    for (int special = 0; special < 2; special++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (fr_tokenizer_encode(tok, text, len, special, &ids, &n, &err) != FR_OK) {
            FR_FUZZ_CHECK(ids == NULL, "failed encode returned ids");
            continue;
        }
        for (size_t i = 0; i < n; i++)
            FR_FUZZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < vocab, "id %d outside vocab %zu", ids[i],
                          vocab);
        char *whole = NULL;
        size_t whole_len = 0;
        if (fr_tokenizer_decode(tok, ids, n, false, &whole, &whole_len, &err) == FR_OK) {
            FR_FUZZ_CHECK(whole[whole_len] == 0, "decode not NUL-terminated");
            fr_detokenizer *d = NULL;
            if (fr_detokenizer_new(tok, false, &d, &err) == FR_OK) {
                size_t at = 0;
                bool same = true;
                const char *piece;
                size_t plen;
                for (size_t i = 0; i <= n && same; i++) {
                    fr_status st = i < n ? fr_detokenizer_push(d, ids[i], &piece, &plen, &err)
                                         : fr_detokenizer_finish(d, &piece, &plen, &err);
                    FR_FUZZ_CHECK(st == FR_OK, "streaming decode failed: %s", err.msg);
                    same = at + plen <= whole_len && (!plen || !memcmp(whole + at, piece, plen));
                    at += plen;
                }
                FR_FUZZ_CHECK(same && at == whole_len,
                              "streaming decode differs from decode (%zu of %zu bytes)", at,
                              whole_len);
                fr_detokenizer_free(d);
            }
            free(whole);
        }
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fr_fuzz_part parts[2];
    const size_t n = fr_fuzz_split(data, size, parts, 2);
    char json[512], config[512];
    fr_fuzz_write("tokenizer.json", parts[0].p, parts[0].n, json, sizeof json);
    if (n > 1)
        fr_fuzz_write("tokenizer_config.json", parts[1].p, parts[1].n, config, sizeof config);
    else
        fr_fuzz_remove("tokenizer_config.json");
    snprintf(config, sizeof config, "%s/tokenizer_config.json", fr_fuzz_dir());
    fr_tokenizer *tok = NULL;
    fr_error err = {0};
    if (fr_tokenizer_load_json(json, config, &tok, &err) != FR_OK) {
        FR_FUZZ_CHECK(tok == NULL && err.msg[0], "failed load: handle %p, message '%s'",
                      (void *)tok, err.msg);
        return 0;
    }
    static const char *const texts[] = {
        "",
        "Hello world! 12345 don't   stop\n\n\ttabs",
        "caf\xc3\xa9 \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80 A\xcc\x8a",
        "<s><|im_start|>user<|endoftext|></s> [INST] a",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        check_text(tok, texts[i], strlen(texts[i]));
    const size_t vocab = fr_tokenizer_vocab_size(tok);
    for (size_t id = 0; id < vocab && id < 300; id++) {
        size_t len = 0;
        const char *t = fr_tokenizer_token(tok, (int32_t)id, &len);
        if (t) {
            int32_t back = fr_tokenizer_find(tok, t, len);
            FR_FUZZ_CHECK(back >= 0 && (size_t)back < vocab, "token %zu not found again", id);
            (void)fr_tokenizer_is_special(tok, (int32_t)id);
        }
    }
    int32_t bos = fr_tokenizer_bos(tok), eos = fr_tokenizer_eos(tok);
    FR_FUZZ_CHECK(bos >= -1 && bos < (int32_t)vocab && eos >= -1 && eos < (int32_t)vocab,
                  "bos %d eos %d vocab %zu", bos, eos, vocab);
    fr_tokenizer_free(tok);
    return 0;
}
