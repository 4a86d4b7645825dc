/* Fuzz target: a GGUF file. The validating reader (from memory), every metadata value and tensor
 * it accepts, the decoder config, tokenizer and chat template read from the metadata, and the
 * whole model load + a forward pass through fr_model_load on the same bytes written to a file.
 * Seeds: tiny valid GGUF models (tests/fuzz/make_corpus.py). */
#include "fuzz_util.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "tokenizer/tok_gguf.h"

/* Reads every value the reader accepted, so that a wrong length or pointer shows under ASan. */
static void touch_value(const fr_gguf_value *v, const void *base, size_t size) {
    volatile unsigned sink = 0;
    if (v->type == FR_GGUF_STRING) {
        FR_FUZZ_CHECK(v->v.str.s && v->v.str.s[v->v.str.len] == 0, "string not NUL-terminated");
        for (uint64_t i = 0; i < v->v.str.len; i++)
            sink += (unsigned char)v->v.str.s[i];
    } else if (v->type == FR_GGUF_ARRAY) {
        const fr_gguf_array *a = &v->v.arr;
        for (uint64_t i = 0; i < a->n; i++) {
            if (a->type == FR_GGUF_STRING) {
                fr_gguf_str s = fr_gguf_arr_str(a, i);
                if (s.len) sink += (unsigned char)s.s[s.len - 1];
            } else if (a->type == FR_GGUF_ARRAY) {
                touch_value(&a->items[i], base, size);
            } else {
                sink += (unsigned)fr_gguf_arr_i64(a, i);
                /* the bits, not (unsigned)d: converting a negative or huge double is UB */
                double d = fr_gguf_arr_f64(a, i);
                uint64_t bits;
                memcpy(&bits, &d, sizeof bits);
                sink += (unsigned)bits;
            }
        }
    }
    (void)sink;
}

static void exercise_reader(const uint8_t *data, size_t size) {
    fr_gguf *g = NULL;
    fr_error err = {0};
    if (fr_gguf_open_memory(data, size, "fuzz.gguf", &g, &err) != FR_OK) {
        FR_FUZZ_CHECK(g == NULL && err.msg[0], "failed open: handle %p, message '%s'", (void *)g,
                      err.msg);
        return;
    }
    FR_FUZZ_CHECK(fr_gguf_size(g) == size, "size %zu vs %zu", fr_gguf_size(g), size);
    /* (a file without tensors may end before its aligned, empty data section) */
    FR_FUZZ_CHECK(!fr_gguf_tensor_count(g) || fr_gguf_data_offset(g) <= size,
                  "data offset past the end");
    for (size_t i = 0; i < fr_gguf_kv_count(g); i++) {
        const fr_gguf_kv *kv = fr_gguf_kv_at(g, i);
        FR_FUZZ_CHECK(fr_gguf_find(g, kv->key.s) != NULL || strlen(kv->key.s) != kv->key.len,
                      "key '%s' not found again", kv->key.s);
        touch_value(&kv->value, data, size);
    }
    const uint64_t align = fr_gguf_alignment(g);
    for (size_t i = 0; i < fr_gguf_tensor_count(g); i++) {
        const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
        /* the reader's documented guarantees: in bounds, aligned, byte size matching the type */
        FR_FUZZ_CHECK(t->offset >= fr_gguf_data_offset(g) && t->offset <= size &&
                          t->nbytes <= size - t->offset,
                      "tensor %s [%llu, +%zu) outside %zu bytes", t->name,
                      (unsigned long long)t->offset, t->nbytes, size);
        FR_FUZZ_CHECK(align && (t->offset - fr_gguf_data_offset(g)) % align == 0,
                      "tensor %s unaligned", t->name);
        /* (an empty tensor points at the start of the file instead) */
        FR_FUZZ_CHECK(!t->nbytes || (const uint8_t *)t->data == data + t->offset,
                      "tensor %s data pointer", t->name);
        FR_FUZZ_CHECK(t->ndim >= 0 && t->ndim <= FR_GGUF_MAX_DIMS, "tensor %s ndim %d", t->name,
                      t->ndim);
        FR_FUZZ_CHECK(fr_gguf_find_tensor(g, t->name) == t, "tensor %s not found again", t->name);
        if (t->nbytes) {
            volatile uint8_t last = ((const uint8_t *)t->data)[t->nbytes - 1];
            (void)last;
        }
    }
    fr_config cfg;
    if (fr_gguf_read_config(g, &cfg, &err) == FR_OK) (void)fr_config_validate(&cfg, "fuzz", &err);

    fr_tokenizer *tok = NULL;
    if (fr_tokenizer_from_gguf(g, &tok, &err) == FR_OK) {
        static const char text[] = "Hello world, 123 <|im_end|> caf\xc3\xa9";
        int32_t *ids = NULL;
        size_t n = 0;
        if (fr_tokenizer_encode(tok, text, sizeof text - 1, true, &ids, &n, &err) == FR_OK) {
            char *back = NULL;
            (void)fr_tokenizer_decode(tok, ids, n, false, &back, NULL, &err);
            free(back);
        }
        free(ids);
        fr_tokenizer_free(tok);
    }
    fr_chat_template *tpl = NULL;
    if (fr_chat_template_from_gguf(g, &tpl, &err) == FR_OK) {
        char *out = NULL;
        (void)fr_chat_template_render(
            tpl, "[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"hi\"}]",
            NULL, true, NULL, &out, NULL, &err);
        free(out);
        fr_chat_template_free(tpl);
    }
    fr_gguf_close(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    exercise_reader(data, size);
    char path[512];
    fr_fuzz_write("model.gguf", data, size, path, sizeof path);
    fr_fuzz_load_and_run(path);
    return 0;
}
