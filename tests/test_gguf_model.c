/* GGUF models through the model runner.
 *
 *  - Names: every GGUF tensor name maps to its Hugging Face name and back.
 *  - The llama Q/K permutation: fr_gguf_permute_qk agrees with llama.cpp's permute written here
 *    as the view it is (reshape to [heads, 2, D/2, rows...], swap axes 1 and 2), and its inverse
 *    undoes it.
 *  - Every fixture model (tests/data/fixtures: qwen3 tied, qwen3 bf16, llama3 f16 with llama3
 *    RoPE scaling, qwen2 with biases, mistral with a sliding window) written to GGUF by
 *    fr_model_quantize (F32; F16 for the f16 one, which is then bit-exact) and loaded back gives
 *    the config the Hugging Face path gives (same RoPE table) and logits within 1e-4 of the
 *    float64 Hugging Face references, like the safetensors path. For llama/mistral this goes
 *    through the permutation on writing and its inverse on loading.
 *  - Bad files: unknown architecture, a missing hyperparameter, a weight of a GGML type ferrum
 *    cannot compute (Q2_K) fail with messages naming the file and the key or tensor.
 *
 * Helper modes for tests/test_real_model.sh and tests/test_quantize.sh:
 *    test_gguf_model greedy MODEL N ID,ID,... [f32]  prints the greedy continuation (at most N
 *                                               ids, stopping after an end id) as a JSON array;
 *                                               f32: quantized matmuls on float activations.
 *    test_gguf_model tokcases TOKENIZER JSONL   checks every {"text", "ids", "ids_with_special"}
 *                                               line (Hugging Face's ids) against the tokenizer
 *                                               loaded from TOKENIZER (e.g. a GGUF file). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fixture.h"
#include "common/testutil.h"
#include "ferrum.h"
#include "kernels/backend.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/model.h"

#define TOL 1e-4

static char TMP[256];

/* ---------------------------------------------------------------- names and permutation */

static void test_names(void) {
    static const char *const pairs[][2] = {
        {"token_embd.weight", "model.embed_tokens.weight"},
        {"output_norm.weight", "model.norm.weight"},
        {"output.weight", "lm_head.weight"},
        {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
        {"blk.17.ffn_norm.weight", "model.layers.17.post_attention_layernorm.weight"},
        {"blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight"},
        {"blk.3.attn_k.bias", "model.layers.3.self_attn.k_proj.bias"},
        {"blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight"},
        {"blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"},
        {"blk.3.attn_q_norm.weight", "model.layers.3.self_attn.q_norm.weight"},
        {"blk.3.attn_k_norm.weight", "model.layers.3.self_attn.k_norm.weight"},
        {"blk.120.ffn_gate.weight", "model.layers.120.mlp.gate_proj.weight"},
        {"blk.9.ffn_up.weight", "model.layers.9.mlp.up_proj.weight"},
        {"blk.9.ffn_down.weight", "model.layers.9.mlp.down_proj.weight"},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        CHECK(fr_gguf_name_to_hf(pairs[i][0], buf, sizeof buf) && !strcmp(buf, pairs[i][1]),
              "%s -> %s", pairs[i][0], buf);
        CHECK(fr_gguf_name_from_hf(pairs[i][1], buf, sizeof buf) && !strcmp(buf, pairs[i][0]),
              "%s -> %s", pairs[i][1], buf);
    }
    static const char *const none[] = {"rope_freqs.weight",    "blk.x.attn_q.weight",
                                       "blk.01.attn_q.weight", "blk.3.attn_qq.weight",
                                       "blk.3attn_q.weight",   "model.layers.2.self_attn.rotary"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        CHECK(!fr_gguf_name_to_hf(none[i], buf, sizeof buf) &&
                  !fr_gguf_name_from_hf(none[i], buf, sizeof buf),
              "%s should have no counterpart", none[i]);
    CHECK(!fr_gguf_name_to_hf("blk.3.attn_q.weight", buf, 10), "truncation must fail");
}

static void test_permutation(void) {
    const int64_t heads = 3, D = 8, rb = 5; /* row bytes: any size, rows move whole */
    const int64_t rows = heads * D;
    unsigned char src[24 * 5], dst[24 * 5], back[24 * 5], want[24 * 5];
    for (int64_t i = 0; i < rows * rb; i++)
        src[i] = (unsigned char)(i * 7 + 3);
    /* llama.cpp: w.reshape(heads, 2, D/2, rb).swapaxes(1, 2).reshape(rows, rb): the output is
     * the view [heads][D/2][2][rb] of the input laid out as [heads][2][D/2][rb] */
    int64_t k = 0;
    for (int64_t h = 0; h < heads; h++)
        for (int64_t i = 0; i < D / 2; i++)
            for (int64_t s = 0; s < 2; s++)
                for (int64_t b = 0; b < rb; b++)
                    want[k++] = src[((h * 2 + s) * (D / 2) + i) * rb + b];
    fr_gguf_permute_qk(src, dst, heads, D, (size_t)rb, true);
    CHECK(!memcmp(dst, want, sizeof dst), "to_gguf differs from llama.cpp's permute");
    fr_gguf_permute_qk(dst, back, heads, D, (size_t)rb, false);
    CHECK(!memcmp(back, src, sizeof src), "from_gguf does not undo to_gguf");
}

/* ---------------------------------------------------------------- fixtures round trip */

static bool close_rel(double a, double b, double tol) {
    return fabs(a - b) <= tol * fabs(b);
}

static void compare_configs(const char *name, const fr_config *a, const fr_config *b) {
    CHECK(a->arch == b->arch, "%s: arch %d vs %d", name, a->arch, b->arch);
    CHECK(!strcmp(a->arch_name, b->arch_name), "%s: %s vs %s", name, a->arch_name, b->arch_name);
    CHECK(a->n_layers == b->n_layers && a->hidden == b->hidden && a->n_heads == b->n_heads &&
              a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
              a->intermediate == b->intermediate && a->vocab == b->vocab &&
              a->max_pos == b->max_pos,
          "%s: sizes differ", name);
    /* GGUF stores eps and theta as f32 */
    CHECK(close_rel(a->norm_eps, b->norm_eps, 1e-7), "%s: eps %g vs %g", name, a->norm_eps,
          b->norm_eps);
    CHECK(close_rel(a->rope.theta, b->rope.theta, 1e-7), "%s: theta", name);
    CHECK(a->qk_norm == b->qk_norm && a->qkv_bias == b->qkv_bias && a->o_bias == b->o_bias &&
              a->mlp_bias == b->mlp_bias && a->tie_embeddings == b->tie_embeddings &&
              a->layer_scale == b->layer_scale,
          "%s: flags differ", name);
    CHECK(a->sliding_window == b->sliding_window &&
              !memcmp(a->layer_window, b->layer_window, sizeof a->layer_window),
          "%s: windows differ (%d vs %d)", name, a->sliding_window, b->sliding_window);
    CHECK(a->n_eos == b->n_eos && !memcmp(a->eos, b->eos, sizeof(int32_t) * (size_t)a->n_eos),
          "%s: eos differ", name);
    CHECK(a->bos == b->bos, "%s: bos %d vs %d", name, a->bos, b->bos);
    /* llama3 scaling comes back as other parameters with the same frequencies: compare tables */
    const int P = a->max_pos < 4096 ? a->max_pos : 4096, D = a->head_dim;
    float *ta = malloc(sizeof(float) * (size_t)P * D), *tb = malloc(sizeof(float) * (size_t)P * D);
    fr_rope_table_fill(&a->rope, P, ta);
    fr_rope_table_fill(&b->rope, P, tb);
    double worst = 0;
    for (size_t i = 0; i < (size_t)P * D; i++)
        worst = fmax(worst, fabs((double)ta[i] - tb[i]));
    CHECK(worst < 2e-6, "%s: RoPE tables differ by %g", name, worst);
    free(ta);
    free(tb);
}

static void test_fixture(const char *name, const char *type) {
    char rel[256], dir[1024], out[512];
    snprintf(rel, sizeof rel, "fixtures/models/%s", name);
    fr_test_data_path(rel, dir, sizeof dir);
    snprintf(out, sizeof out, "%s/%s-%s.gguf", TMP, name, type);
    fr_error err = {0};
    fr_status st = fr_model_quantize(dir, out, type, 1, false, &err);
    CHECK(st == FR_OK, "%s: quantize %s: %s", name, type, err.msg);
    if (st) return;
    fr_config hf, gg;
    CHECK(fr_config_load_hf(dir, &hf, &err) == FR_OK, "%s: %s", name, err.msg);
    fr_gguf *g = NULL;
    CHECK(fr_gguf_open(out, &g, &err) == FR_OK, "%s: %s", out, err.msg);
    if (g) {
        st = fr_gguf_read_config(g, &gg, &err);
        CHECK(st == FR_OK, "%s: config: %s", out, err.msg);
        if (!st) compare_configs(name, &gg, &hf);
        fr_gguf_close(g);
    }
    fr_test_fixture r;
    if (fr_test_fixture_load(name, false, &r)) return;
    fr_model *m = NULL;
    st = fr_model_load(out, NULL, &m, &err);
    CHECK(st == FR_OK, "%s: load: %s", out, err.msg);
    if (!st) {
        fr_session *s = NULL;
        fr_session_params sp = fr_session_default_params();
        float *logits = malloc(sizeof(float) * (size_t)r.T * r.V);
        st = fr_session_create(m, &sp, &s, &err);
        if (!st) st = fr_session_eval(s, r.prompt, r.T, logits, &err);
        CHECK(st == FR_OK, "%s: eval: %s", out, err.msg);
        double worst = 0;
        for (int t = 0; !st && t < r.T; t++)
            worst = fmax(worst, fr_test_rel_l2(logits + (size_t)t * r.V, r.logits + (size_t)t * r.V,
                                               (size_t)r.V));
        CHECK(!st && worst < TOL, "%s (%s GGUF): logits rel err %.3g (tol %g)", name, type, worst,
              TOL);
        printf("  %-16s %-4s GGUF: worst row rel err %.2e\n", name, type, worst);
        free(logits);
        fr_session_free(s);
        fr_model_free(m);
    }
    fr_test_fixture_free(&r);
    unlink(out);
}

/* ---------------------------------------------------------------- bad files */

/* Rewrites src into dst with one key replaced or dropped (value NULL) and, when retype_tensor
 * is set, that tensor's stored type id patched to GGML type 10 (Q2_K) over bytes of the same
 * size (an f32 [rows, 21] is exactly [rows, 256] of Q2_K). */
static int rewrite(const char *src, const char *dst, const char *key, const fr_gguf_value *value,
                   const char *retype_tensor) {
    fr_error err = {0};
    fr_gguf *g = NULL;
    fr_gguf_writer *w = NULL;
    if (fr_gguf_open(src, &g, &err) || fr_gguf_writer_create(&w, &err)) return -1;
    for (size_t i = 0; i < fr_gguf_kv_count(g); i++) {
        const fr_gguf_kv *kv = fr_gguf_kv_at(g, i);
        if (key && !strcmp(kv->key.s, key)) {
            if (value) fr_gguf_writer_set(w, key, value, &err);
            continue;
        }
        fr_gguf_writer_set(w, kv->key.s, &kv->value, &err);
    }
    float *fake = NULL;
    for (size_t i = 0; i < fr_gguf_tensor_count(g); i++) {
        const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
        if (retype_tensor && !strcmp(t->name, retype_tensor)) {
            int64_t shape[2] = {t->shape[0], 21};
            fake = calloc((size_t)t->shape[0] * 21, sizeof(float));
            fr_gguf_writer_add_tensor(w, t->name, FR_DTYPE_F32, 2, shape, fake, &err);
        } else {
            fr_gguf_writer_add_tensor(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err);
        }
    }
    fr_status st = fr_gguf_writer_write(w, dst, &err);
    fr_gguf_writer_free(w);
    fr_gguf_close(g);
    free(fake);
    if (st || !retype_tensor) return st ? -1 : 0;
    /* patch the tensor info: name, n_dims u32, ne[0] u64, ne[1] u64, type u32 */
    size_t len = 0;
    unsigned char *b = fr_test_read_file(dst, &len);
    size_t nl = strlen(retype_tensor);
    int rc = -1;
    for (size_t i = 8; b && i + nl + 28 <= len; i++) {
        if (memcmp(b + i, retype_tensor, nl) || b[i - 8] != nl) continue;
        unsigned char *p = b + i + nl + 4;
        const uint64_t ne0 = 256;
        const uint32_t type = 10;
        memcpy(p, &ne0, 8);
        memcpy(p + 16, &type, 4);
        FILE *f = fopen(dst, "wb");
        rc = f && fwrite(b, 1, len, f) == len ? 0 : -1;
        if (f) fclose(f);
        break;
    }
    free(b);
    return rc;
}

static void expect_load_error(const char *path, fr_status code, const char *const *words) {
    fr_error err = {0};
    fr_model *m = NULL;
    fr_status st = fr_model_load(path, NULL, &m, &err);
    CHECK(st == code, "%s: status %d, expected %d (%s)", path, st, code, err.msg);
    CHECK(m == NULL, "%s: a model came back", path);
    for (const char *const *w = words; *w; w++)
        CHECK(strstr(err.msg, *w) != NULL, "message lacks '%s': %s", *w, err.msg);
    fr_model_free(m);
}

static void test_bad_files(void) {
    char dir[1024], good[512], bad[512];
    fr_test_data_path("fixtures/models/qwen3-tiny", dir, sizeof dir);
    snprintf(good, sizeof good, "%s/good.gguf", TMP);
    snprintf(bad, sizeof bad, "%s/bad.gguf", TMP);
    fr_error err = {0};
    fr_status st = fr_model_quantize(dir, good, "F32", 1, false, &err);
    CHECK(st == FR_OK, "quantize: %s", err.msg);
    if (st) return;

    fr_gguf_value v = {.type = FR_GGUF_STRING, .v.str = {"gpt2", 4}};
    CHECK(rewrite(good, bad, "general.architecture", &v, NULL) == 0, "rewrite");
    expect_load_error(bad, FR_ERR_UNSUPPORTED,
                      (const char *[]){bad, "general.architecture", "gpt2", NULL});

    CHECK(rewrite(good, bad, "qwen3.block_count", NULL, NULL) == 0, "rewrite");
    expect_load_error(bad, FR_ERR_NOT_FOUND, (const char *[]){bad, "qwen3.block_count", NULL});

    fr_gguf_value big = {.type = FR_GGUF_U32, .v.u = 100000};
    CHECK(rewrite(good, bad, "qwen3.attention.head_count", &big, NULL) == 0, "rewrite");
    expect_load_error(bad, FR_ERR_FORMAT, (const char *[]){bad, "head_count", NULL});

    CHECK(rewrite(good, bad, NULL, NULL, "blk.1.attn_q.weight") == 0, "rewrite");
    expect_load_error(bad, FR_ERR_UNSUPPORTED,
                      (const char *[]){bad, "blk.1.attn_q.weight", "Q2_K", NULL});

    /* a token list shorter than the embedding: the binder names the tensor */
    fr_gguf *g = NULL;
    if (fr_gguf_open(good, &g, &err) == FR_OK) {
        const fr_gguf_value *toks = fr_gguf_find(g, "tokenizer.ggml.tokens");
        CHECK(toks == NULL, "fixture GGUF unexpectedly has a tokenizer");
        fr_gguf_close(g);
    }
    fr_gguf_value vs = {.type = FR_GGUF_U32, .v.u = 500};
    CHECK(rewrite(good, bad, "qwen3.vocab_size", &vs, NULL) == 0, "rewrite");
    expect_load_error(bad, FR_ERR_FORMAT, (const char *[]){bad, "embed_tokens", NULL});
    unlink(good);
    unlink(bad);
}

/* ---------------------------------------------------------------- helper mode */

static int greedy(const char *model, int n, const char *list, fr_quant_act qa) {
    int32_t ids[8192];
    int k = 0;
    for (const char *p = list; *p && k < 8192;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) return 2;
        ids[k++] = (int32_t)v;
        p = *end == ',' ? end + 1 : end;
    }
    fr_error err = {0};
    fr_model *m = NULL;
    fr_session *s = NULL;
    fr_session_params sp = fr_session_default_params();
    sp.n_ctx = k + n + 1;
    fr_model_params mp = fr_model_default_params();
    mp.quant_act = qa;
    if (fr_model_load(model, &mp, &m, &err) || fr_session_create(m, &sp, &s, &err)) {
        fprintf(stderr, "greedy: %s\n", err.msg);
        fr_model_free(m);
        return 1;
    }
    const int V = fr_model_vocab_size(m);
    float *row = malloc(sizeof(float) * (size_t)V);
    fr_status st = fr_session_eval_last(s, ids, k, row, &err);
    printf("[");
    for (int i = 0; i < n && !st; i++) {
        int32_t best = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        printf(i ? ", %d" : "%d", best);
        if (fr_model_is_eos(m, best)) break;
        st = fr_session_eval_last(s, &best, 1, row, &err);
    }
    printf("]\n");
    if (st) fprintf(stderr, "greedy: %s\n", err.msg);
    free(row);
    fr_session_free(s);
    fr_model_free(m);
    return st ? 1 : 0;
}

static int tokcases(const char *path, const char *jsonl) {
    fr_error err = {0};
    fr_tokenizer *tok = NULL;
    if (fr_tokenizer_load(path, &tok, &err)) {
        fprintf(stderr, "tokcases: %s\n", err.msg);
        return 1;
    }
    size_t len = 0;
    char *text = fr_test_read_file(jsonl, &len);
    CHECK(text != NULL, "cannot read %s", jsonl);
    int n = 0, bad = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        cJSON *c = cJSON_Parse(line);
        const cJSON *t = cJSON_GetObjectItem(c, "text");
        for (int special = 0; special < 2 && cJSON_IsString(t); special++) {
            const cJSON *want = cJSON_GetObjectItem(c, special ? "ids_with_special" : "ids");
            int32_t *ids = NULL;
            size_t k = 0;
            fr_status st = fr_tokenizer_encode(tok, t->valuestring, strlen(t->valuestring), special,
                                               &ids, &k, &err);
            bool same = !st && (size_t)cJSON_GetArraySize(want) == k;
            for (size_t i = 0; same && i < k; i++)
                same = (int32_t)cJSON_GetArrayItem(want, (int)i)->valuedouble == ids[i];
            n++;
            if (!same && bad++ < 5)
                fprintf(stderr, "tokcases: differs on \"%.60s\"\n", t->valuestring);
            free(ids);
        }
        cJSON_Delete(c);
    }
    CHECK(n > 0 && bad == 0, "%s: %d of %d cases differ from Hugging Face", path, bad, n);
    printf("  %s: %d cases, %d differ\n", jsonl, n, bad);
    free(text);
    fr_tokenizer_free(tok);
    return fr_test_finish("test_gguf_model tokcases");
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "tokcases")) return tokcases(argv[2], argv[3]);
    if ((argc == 5 || argc == 6) && !strcmp(argv[1], "greedy"))
        return greedy(argv[2], atoi(argv[3]), argv[4],
                      argc == 6 && !strcmp(argv[5], "f32") ? FR_QUANT_ACT_F32 : FR_QUANT_ACT_Q8);
    fr_log_set_level(FR_LOG_ERROR); /* the fixtures have no tokenizer: quantize warns */
    snprintf(TMP, sizeof TMP, "/tmp/fr_gguf_model_XXXXXX");
    if (!mkdtemp(TMP)) {
        fprintf(stderr, "cannot create a temporary folder\n");
        return 1;
    }
    test_names();
    test_permutation();
    static const char *const fixtures[][2] = {
        {"qwen3-tiny", "F32"},      {"qwen3-tiny-bf16", "F32"}, {"llama3-tiny-f16", "F32"},
        {"llama3-tiny-f16", "F16"}, {"qwen2-tiny", "F32"},      {"mistral-tiny-swa", "F32"},
    };
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++)
        test_fixture(fixtures[i][0], fixtures[i][1]);
    test_bad_files();
    rmdir(TMP);
    return fr_test_finish("test_gguf_model");
}
