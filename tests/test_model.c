/* Model runner against Hugging Face transformers (float64 references in tests/data/fixtures):
 * logits of every position via one prefill, chunked prefill, one-token chunks and the
 * single-token decode step; the hidden state after each layer; the greedy continuation. Plus: a
 * synthetic layer-scale model checked against a float64 forward written plainly below, sharded
 * loading, config parsing, sessions sharing a model, and context limits. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fixture.h"
#include "common/testutil.h"
#include "engine/session.h"
#include "ferrum.h"
#include "model/config.h"
#include "model/model.h"

#define TOL 1e-4

/* ---------------------------------------------------------------- reference data */

/* ---------------------------------------------------------------- hidden-state capture */

typedef struct {
    int n_index, T, C;
    float *h; /* [n_index, T, C], NaN until written */
} capture;

static void capture_hook(void *user, int index, int pos0, const fr_tensor *x) {
    capture *c = user;
    if (index < 0 || index >= c->n_index || pos0 + x->shape[0] > c->T) return;
    fr_error err;
    float *dst = c->h + ((size_t)index * c->T + (size_t)pos0) * c->C;
    fr_buffer_download(x->buf, x->offset, dst, (size_t)x->shape[0] * c->C * sizeof(float), &err);
}

static void check_hidden(const fr_test_fixture *f, const capture *cap, const char *how) {
    /* HF: hidden[0] embeddings, hidden[i] layer i output, the last one after the final norm */
    for (int k = 0; k <= f->n_layers; k++) {
        int index = k < f->n_layers ? k : f->n_layers + 1;
        double e = fr_test_max_row_err(cap->h + (size_t)index * f->T * f->C,
                                       f->hidden + (size_t)k * f->T * f->C, f->T, f->C);
        CHECK(e < TOL, "%s %s: hidden[%d] max row rel error %.3g", f->name, how, k, e);
    }
}

/* ---------------------------------------------------------------- fixture tests */

static double test_fixture(const char *name) {
    fr_test_fixture f;
    if (fr_test_fixture_load(name, true, &f)) return INFINITY;
    fr_model *m = fr_test_fixture_model(name, NULL);
    if (!m) {
        fr_test_fixture_free(&f);
        return INFINITY;
    }
    fr_error err = {0};
    fr_status s = FR_OK;
    CHECK(fr_model_vocab_size(m) == f.V, "%s: vocab", name);
    const size_t V = (size_t)f.V;
    float *logits = malloc((size_t)f.T * V * sizeof(float));
    capture cap = {f.n_layers + 2, f.T, f.C, malloc((size_t)(f.n_layers + 2) * f.T * f.C * 4)};
    double worst = 0;

    /* four ways through the same tokens: one prefill, chunks of 5, chunks of one token, and the
     * single-token decode step. The hidden-state hook needs the chunked forward (a session with a
     * hook never takes the decode step), so the decode mode runs without it and checks logits
     * only: it is the path generation takes, graph replay included where the backend records. */
    const char *how[] = {"prefill", "chunked", "incremental", "decode"};
    for (int mode = 0; mode < 4; mode++) {
        fr_session_params sp = fr_session_default_params();
        sp.n_ctx = f.T + f.n_greedy;
        sp.n_batch = mode == 1 ? 5 : 0;
        fr_session *ss = NULL;
        s = fr_session_create(m, &sp, &ss, &err);
        CHECK(s == FR_OK, "%s: session: %s", name, err.msg);
        if (s) break;
        for (size_t i = 0; i < (size_t)cap.n_index * f.T * f.C; i++)
            cap.h[i] = NAN;
        for (size_t i = 0; i < (size_t)f.T * V; i++)
            logits[i] = NAN;
        if (mode < 3) fr_session_set_hidden_hook(ss, capture_hook, &cap);
        if (mode < 2) {
            s = fr_session_eval(ss, f.prompt, f.T, logits, &err);
        } else {
            for (int t = 0; t < f.T && !s; t++)
                s = fr_session_eval(ss, &f.prompt[t], 1, logits + (size_t)t * V, &err);
        }
        CHECK(s == FR_OK, "%s %s: eval: %s", name, how[mode], err.msg);
        CHECK(fr_session_pos(ss) == f.T, "%s: pos %d", name, fr_session_pos(ss));
        double e = fr_test_max_row_err(logits, f.logits, f.T, f.V);
        CHECK(e < TOL, "%s %s: logits max row rel error %.3g", name, how[mode], e);
        if (!(e <= worst)) worst = e;
        if (mode < 3) check_hidden(&f, &cap, how[mode]);
        fr_session_free(ss);
    }

    /* greedy continuation from the last-row-only path */
    fr_session_params sp = fr_session_default_params();
    sp.n_ctx = f.T + f.n_greedy;
    fr_session *ss = NULL;
    s = fr_session_create(m, &sp, &ss, &err);
    CHECK(s == FR_OK, "%s: session: %s", name, err.msg);
    if (!s) {
        s = fr_session_eval_last(ss, f.prompt, f.T, logits, &err);
        CHECK(s == FR_OK, "%s: eval_last: %s", name, err.msg);
        double e = fr_test_rel_l2(logits, f.logits + (size_t)(f.T - 1) * V, V);
        CHECK(e < TOL, "%s: last-row logits rel error %.3g", name, e);
        int matched = 0;
        for (int g = 0; g < f.n_greedy && !s; g++) {
            int32_t best = 0;
            for (size_t v = 1; v < V; v++)
                if (logits[v] > logits[best]) best = (int32_t)v;
            if (best != f.greedy[g]) break;
            matched++;
            s = fr_session_eval_last(ss, &best, 1, logits, &err);
        }
        CHECK(matched == f.n_greedy, "%s: greedy continuation matches %d of %d tokens", name,
              matched, f.n_greedy);
        fr_session_free(ss);
    }
    fprintf(stderr, "%-18s max row rel error %.3g\n", name, worst);
    free(cap.h);
    free(logits);
    fr_model_free(m);
    fr_test_fixture_free(&f);
    return worst;
}

/* Two sessions over one model, decoding interleaved, both reproduce the reference; a small
 * cache refuses what does not fit without changing the session. */
static void test_sessions(void) {
    fr_test_fixture f;
    if (fr_test_fixture_load("qwen3-tiny", true, &f)) return;
    char path[1024];
    fr_test_data_path("fixtures/models/qwen3-tiny", path, sizeof path);
    fr_error err = {0};
    fr_model *m = NULL;
    fr_status s = fr_model_load(path, NULL, &m, &err);
    CHECK(s == FR_OK, "load: %s", err.msg);
    if (s) {
        fr_test_fixture_free(&f);
        return;
    }
    const size_t V = (size_t)f.V;
    fr_session *a = NULL, *b = NULL;
    CHECK(fr_session_create(m, NULL, &a, &err) == FR_OK, "session a: %s", err.msg);
    CHECK(fr_session_create(m, NULL, &b, &err) == FR_OK, "session b: %s", err.msg);
    if (a && b) {
        /* the default cache: min(4096, max_position_embeddings = 256) */
        CHECK(fr_session_n_ctx(a) == 256, "default n_ctx %d", fr_session_n_ctx(a));
        float *la = malloc((size_t)f.T * V * 4), *lb = malloc((size_t)f.T * V * 4);
        /* b starts with garbage to show a's cache is its own */
        int32_t junk[3] = {7, 8, 9};
        CHECK(fr_session_eval(b, junk, 3, NULL, &err) == FR_OK, "junk: %s", err.msg);
        fr_session_reset(b);
        for (int t = 0; t < f.T; t++) {
            CHECK(fr_session_eval(a, &f.prompt[t], 1, la + t * V, &err) == FR_OK, "a: %s", err.msg);
            CHECK(fr_session_eval(b, &f.prompt[t], 1, lb + t * V, &err) == FR_OK, "b: %s", err.msg);
        }
        double ea = fr_test_max_row_err(la, f.logits, f.T, f.V),
               eb = fr_test_max_row_err(lb, f.logits, f.T, f.V);
        CHECK(ea < TOL && eb < TOL, "interleaved sessions: %.3g %.3g", ea, eb);
        /* truncate and redo the tail: same logits */
        CHECK(fr_session_truncate(a, 10, &err) == FR_OK, "truncate: %s", err.msg);
        CHECK(fr_session_eval(a, &f.prompt[10], f.T - 10, la, &err) == FR_OK, "redo: %s", err.msg);
        double et = fr_test_max_row_err(la, f.logits + 10 * V, f.T - 10, f.V);
        CHECK(et < TOL, "after truncate: %.3g", et);
        free(la);
        free(lb);
    }
    fr_session_free(a);
    fr_session_free(b);

    fr_session_params sp = fr_session_default_params();
    sp.n_ctx = 8;
    fr_session *c = NULL;
    CHECK(fr_session_create(m, &sp, &c, &err) == FR_OK, "small session: %s", err.msg);
    if (c) {
        s = fr_session_eval(c, f.prompt, 9, NULL, &err);
        CHECK(s == FR_ERR_RANGE && strstr(err.msg, "n_ctx"), "9 tokens in 8: %d %s", s, err.msg);
        CHECK(fr_session_pos(c) == 0, "failed eval moved pos to %d", fr_session_pos(c));
        CHECK(fr_session_eval(c, f.prompt, 8, NULL, &err) == FR_OK, "8 in 8: %s", err.msg);
        s = fr_session_eval(c, f.prompt, 1, NULL, &err);
        CHECK(s == FR_ERR_RANGE, "9th token: %d %s", s, err.msg);
        fr_session_reset(c);
        int32_t bad = f.V;
        s = fr_session_eval(c, &bad, 1, NULL, &err);
        CHECK(s == FR_ERR_INVALID && strstr(err.msg, "512"), "id = vocab: %d %s", s, err.msg);
        fr_session_free(c);
    }
    sp.n_ctx = 257;
    c = NULL;
    s = fr_session_create(m, &sp, &c, &err);
    CHECK(s == FR_ERR_RANGE && strstr(err.msg, "max_position_embeddings"), "n_ctx 257: %d %s", s,
          err.msg);
    fr_session_free(c);

    /* compute types: names round-trip; an explicit f32 session is the default one, bit for bit;
     * the CPU backend refuses 16-bit activations up front (FR_ERR_UNSUPPORTED naming the
     * backend), and a value outside the enum is invalid */
    const fr_compute_type cts[] = {FR_COMPUTE_F32, FR_COMPUTE_BF16, FR_COMPUTE_F16};
    for (int i = 0; i < 3; i++) {
        fr_compute_type back = (fr_compute_type)-1;
        CHECK(fr_compute_type_parse(fr_compute_type_name(cts[i]), &back) && back == cts[i],
              "compute type %s does not round-trip", fr_compute_type_name(cts[i]));
    }
    fr_compute_type ct = FR_COMPUTE_F16;
    CHECK(fr_compute_type_parse("BF16", &ct) && ct == FR_COMPUTE_BF16, "BF16 (any case)");
    CHECK(!fr_compute_type_parse("fp8", &ct) && ct == FR_COMPUTE_BF16, "fp8 accepted");
    CHECK(!fr_compute_type_parse(NULL, &ct), "NULL name accepted");
    CHECK(fr_session_default_params().compute == FR_COMPUTE_F32, "default compute type");
    sp = fr_session_default_params();
    sp.n_ctx = f.T;
    fr_session *d = NULL;
    c = NULL;
    CHECK(fr_session_create(m, &sp, &d, &err) == FR_OK, "default session: %s", err.msg);
    sp.compute = FR_COMPUTE_F32;
    CHECK(fr_session_create(m, &sp, &c, &err) == FR_OK, "f32 session: %s", err.msg);
    if (c && d) {
        CHECK(fr_session_compute(c) == FR_COMPUTE_F32 && fr_session_compute(d) == FR_COMPUTE_F32,
              "session compute type");
        float *la = malloc((size_t)f.T * V * 4), *lb = malloc((size_t)f.T * V * 4);
        CHECK(fr_session_eval(d, f.prompt, f.T, la, &err) == FR_OK, "default: %s", err.msg);
        CHECK(fr_session_eval(c, f.prompt, f.T, lb, &err) == FR_OK, "f32: %s", err.msg);
        CHECK(!memcmp(la, lb, (size_t)f.T * V * 4), "explicit f32 differs from the default");
        CHECK(fr_session_decode_bytes(c, 10) == fr_model_decode_bytes(m, 10),
              "f32 session decode bytes");
        free(la);
        free(lb);
    }
    fr_session_free(c);
    fr_session_free(d);
    for (int i = 1; i < 3; i++) {
        sp.compute = cts[i];
        c = NULL;
        s = fr_session_create(m, &sp, &c, &err);
        CHECK(s == FR_ERR_UNSUPPORTED && c == NULL && strstr(err.msg, "cpu") &&
                  strstr(err.msg, fr_compute_type_name(cts[i])),
              "%s compute on cpu: %d %s", fr_compute_type_name(cts[i]), s, err.msg);
        fr_session_free(c);
    }
    sp.compute = (fr_compute_type)7;
    c = NULL;
    s = fr_session_create(m, &sp, &c, &err);
    CHECK(s == FR_ERR_INVALID && c == NULL && strstr(err.msg, "compute"), "compute type 7: %d %s",
          s, err.msg);
    fr_session_free(c);

    /* info: parameter count from the config by plain arithmetic (tied head counted once) */
    fr_model_info in;
    fr_model_get_info(m, &in);
    const int64_t C = 64, F = 160, D = 32, H = 4, Hkv = 2, L = 2, V_ = 512;
    int64_t per = H * D * C + 2 * Hkv * D * C + C * H * D + 3 * F * C + 2 * C + 2 * D;
    CHECK(in.n_params == V_ * C + L * per + C, "n_params %lld", (long long)in.n_params);
    CHECK(in.weight_bytes == (size_t)in.n_params * 4, "weight bytes %zu", in.weight_bytes);
    CHECK(!strcmp(in.weight_dtypes, "f32") && in.tied_embeddings && in.qk_norm, "info flags %s",
          in.weight_dtypes);
    CHECK(in.head_dim == 32 && in.n_kv_heads == 2 && in.max_context == 256, "info sizes");
    CHECK(fr_model_eos_ids(m, NULL) == 0, "qwen3-tiny has no eos ids");
    fr_model_free(m);
    fr_test_fixture_free(&f);

    /* eos from generation_config.json, dtype summary of half-precision weights */
    fr_test_data_path("fixtures/models/llama3-tiny-f16", path, sizeof path);
    s = fr_model_load(path, NULL, &m, &err);
    CHECK(s == FR_OK, "llama load: %s", err.msg);
    if (!s) {
        fr_model_get_info(m, &in);
        CHECK(!strcmp(in.weight_dtypes, "f16"), "llama dtypes %s", in.weight_dtypes);
        CHECK(fr_model_is_eos(m, 2) && !fr_model_is_eos(m, 1), "llama eos");
        fr_model_free(m);
    }
}

/* ---------------------------------------------------------------- config parsing */

static void test_config(void) {
    fr_config c;
    fr_error err = {0};
    /* older rope_scaling form, llama3 type, top-level rope_theta, head_dim != hidden/heads */
    const char *a = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":96,"
                    "\"num_hidden_layers\":3,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                    "\"head_dim\":40,\"intermediate_size\":100,\"vocab_size\":300,"
                    "\"rope_theta\":500000.0,\"rope_scaling\":{\"rope_type\":\"llama3\","
                    "\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
                    "\"original_max_position_embeddings\":8192},\"eos_token_id\":[5,7],"
                    "\"attention_bias\":true,\"tie_word_embeddings\":true}";
    fr_status s = fr_config_parse_hf(a, "a.json", &c, &err);
    CHECK(s == FR_OK, "config a: %s", err.msg);
    CHECK(c.arch == FR_ARCH_LLAMA && c.head_dim == 40 && c.rope.head_dim == 40, "a dims");
    CHECK(c.rope.theta == 500000.0 && c.rope.factor == 8.0 && c.rope.original_max_pos == 8192,
          "a rope");
    CHECK(c.n_eos == 2 && c.eos[0] == 5 && c.eos[1] == 7, "a eos list");
    CHECK(c.qkv_bias && c.o_bias && c.tie_embeddings && !c.qk_norm, "a flags");
    CHECK(c.max_pos == 2048 && c.norm_eps == 1e-6, "a defaults");
    /* generation_config.json's eos replaces the config's, int form */
    s = fr_config_parse_generation("{\"eos_token_id\": 9}", "g.json", &c, &err);
    CHECK(s == FR_OK && c.n_eos == 1 && c.eos[0] == 9, "generation eos: %s", err.msg);

    /* newer rope_parameters form with theta inside; Qwen3 defaults head_dim to 128 */
    const char *b = "{\"architectures\":[\"Qwen3ForCausalLM\"],\"hidden_size\":64,"
                    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"intermediate_size\":8,"
                    "\"vocab_size\":10,\"rope_parameters\":{\"rope_type\":\"default\","
                    "\"rope_theta\":1000000.0},\"eos_token_id\":null}";
    s = fr_config_parse_hf(b, "b.json", &c, &err);
    CHECK(s == FR_OK, "config b: %s", err.msg);
    CHECK(c.head_dim == 128 && c.n_kv_heads == 4 && c.rope.theta == 1e6 && c.qk_norm &&
              c.n_eos == 0 && c.rope.factor == 0,
          "b fields");

    /* Qwen2: biases by architecture; sliding window only from max_window_layers on */
    const char *q2 = "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":64,"
                     "\"num_hidden_layers\":4,\"num_attention_heads\":4,\"intermediate_size\":8,"
                     "\"vocab_size\":10,\"use_sliding_window\":true,\"sliding_window\":16,"
                     "\"max_window_layers\":2}";
    s = fr_config_parse_hf(q2, "q2.json", &c, &err);
    CHECK(s == FR_OK && c.qkv_bias && !c.o_bias, "qwen2: %s", err.msg);
    CHECK(!c.layer_window[1] && c.layer_window[2] && c.sliding_window == 16, "qwen2 windows");

    /* refusals name the file and the field */
    struct {
        const char *json, *want;
    } bad[] = {
        {"{\"architectures\":[\"GPT2LMHeadModel\"],\"hidden_size\":64}", "GPT2LMHeadModel"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"intermediate_size\":8,\"vocab_size\":10}",
         "hidden_size"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"num_key_value_heads\":3,\"intermediate_size\":8,"
         "\"vocab_size\":10}",
         "num_key_value_heads"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"intermediate_size\":8,\"vocab_size\":10,"
         "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4}}",
         "rope_scaling.type"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64.5,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"intermediate_size\":8,\"vocab_size\":10}",
         "hidden_size"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_hidden_layers\":2,"
         "\"num_attention_heads\":4,\"intermediate_size\":8,\"vocab_size\":10,"
         "\"hidden_act\":\"gelu\"}",
         "hidden_act"},
        {"{\"architectures\":", "malformed"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = fr_config_parse_hf(bad[i].json, "cfg.json", &c, &err);
        CHECK(s != FR_OK && strstr(err.msg, "cfg.json") && strstr(err.msg, bad[i].want),
              "bad config %zu: %s", i, err.msg);
    }
}

/* ---------------------------------------------------------------- synthetic layer-scale model */

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[2];
    float *data;
} stensor;

static int64_t st_nelem(const stensor *t) {
    return t->ndim == 1 ? t->shape[0] : t->shape[0] * t->shape[1];
}

/* A plain f32 safetensors file with tensors [from, to). */
static int write_safetensors(const char *path, const stensor *t, int from, int to) {
    cJSON *root = cJSON_CreateObject();
    size_t off = 0;
    for (int i = from; i < to; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name);
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t[i].ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t[i].shape[d]));
        size_t bytes = (size_t)st_nelem(&t[i]) * 4;
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *h = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    FILE *f = fopen(path, "wb");
    if (!f || !h) return -1;
    uint64_t hl = strlen(h);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(hl >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(h, 1, hl, f);
    for (int i = from; i < to; i++)
        fwrite(t[i].data, 4, (size_t)st_nelem(&t[i]), f);
    fclose(f);
    free(h);
    return 0;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

enum { SC = 48, SH = 4, SKV = 2, SD = 16, SF = 72, SV = 97, SL = 2, ST = 11 };
#define S_EPS   1e-5
#define S_THETA 10000.0

typedef struct {
    float *embed, *lm_head, *final_norm;
    float *attn_norm[SL], *mlp_norm[SL], *wq[SL], *wk[SL], *wv[SL], *wo[SL];
    float *wg[SL], *wu[SL], *wd[SL], *as[SL], *ms[SL];
} synth;

static void rmsnorm64(const double *x, const float *w, double *out, int n) {
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + S_EPS);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * r * w[i];
}

/* y[n] = sum_k x[k] W[n, k] */
static void linear64(const double *x, const float *w, double *y, int N, int K) {
    for (int n = 0; n < N; n++) {
        double acc = 0;
        for (int k = 0; k < K; k++)
            acc += x[k] * w[(size_t)n * K + k];
        y[n] = acc;
    }
}

static void rope64(double *v, int pos) {
    for (int i = 0; i < SD / 2; i++) {
        double a = pos * pow(S_THETA, -2.0 * i / SD);
        double x1 = v[i], x2 = v[i + SD / 2];
        v[i] = x1 * cos(a) - x2 * sin(a);
        v[i + SD / 2] = x2 * cos(a) + x1 * sin(a);
    }
}

/* The decoder with layer scales, written out in float64 (scales = 0 turns them off). */
static void synth_reference(const synth *w, const int32_t *ids, bool scales, double *logits) {
    static double x[ST][SC], n[ST][SC], q[ST][SH * SD], k[ST][SKV * SD], v[ST][SKV * SD];
    static double att[ST][SH * SD], o[ST][SC], g[SF], u[SF];
    for (int t = 0; t < ST; t++)
        for (int c = 0; c < SC; c++)
            x[t][c] = w->embed[ids[t] * SC + c];
    for (int l = 0; l < SL; l++) {
        for (int t = 0; t < ST; t++) {
            rmsnorm64(x[t], w->attn_norm[l], n[t], SC);
            linear64(n[t], w->wq[l], q[t], SH * SD, SC);
            linear64(n[t], w->wk[l], k[t], SKV * SD, SC);
            linear64(n[t], w->wv[l], v[t], SKV * SD, SC);
            for (int h = 0; h < SH; h++)
                rope64(&q[t][h * SD], t);
            for (int h = 0; h < SKV; h++)
                rope64(&k[t][h * SD], t);
        }
        for (int t = 0; t < ST; t++)
            for (int h = 0; h < SH; h++) {
                const int kh = h / (SH / SKV);
                double sc[ST], mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    double d = 0;
                    for (int i = 0; i < SD; i++)
                        d += q[t][h * SD + i] * k[j][kh * SD + i];
                    sc[j] = d / sqrt((double)SD);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j <= t; j++)
                    sum += (sc[j] = exp(sc[j] - mx));
                for (int i = 0; i < SD; i++) {
                    double acc = 0;
                    for (int j = 0; j <= t; j++)
                        acc += sc[j] / sum * v[j][kh * SD + i];
                    att[t][h * SD + i] = acc;
                }
            }
        for (int t = 0; t < ST; t++) {
            linear64(att[t], w->wo[l], o[t], SC, SH * SD);
            for (int c = 0; c < SC; c++)
                x[t][c] += o[t][c] * (scales ? w->as[l][c] : 1.0);
            rmsnorm64(x[t], w->mlp_norm[l], n[t], SC);
            linear64(n[t], w->wg[l], g, SF, SC);
            linear64(n[t], w->wu[l], u, SF, SC);
            for (int f = 0; f < SF; f++)
                g[f] = g[f] / (1.0 + exp(-g[f])) * u[f];
            linear64(g, w->wd[l], o[t], SC, SF);
            for (int c = 0; c < SC; c++)
                x[t][c] += o[t][c] * (scales ? w->ms[l][c] : 1.0);
        }
    }
    for (int t = 0; t < ST; t++) {
        rmsnorm64(x[t], w->final_norm, n[t], SC);
        linear64(n[t], w->lm_head, logits + (size_t)t * SV, SV, SC);
    }
}

static float *rand_vec(fr_test_rng *r, size_t n, float base, float spread) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = base + spread * fr_test_rng_sym(r);
    return p;
}

static void eval_logits(const char *dir, const int32_t *ids, bool incremental, float *out,
                        const char *what) {
    fr_error err = {0};
    fr_model *m = NULL;
    fr_status s = fr_model_load(dir, NULL, &m, &err);
    CHECK(s == FR_OK, "%s: load: %s", what, err.msg);
    if (s) return;
    fr_session *ss = NULL;
    s = fr_session_create(m, NULL, &ss, &err);
    CHECK(s == FR_OK, "%s: session: %s", what, err.msg);
    if (!s && !incremental) s = fr_session_eval(ss, ids, ST, out, &err);
    for (int t = 0; !s && incremental && t < ST; t++)
        s = fr_session_eval(ss, &ids[t], 1, out + (size_t)t * SV, &err);
    CHECK(s == FR_OK, "%s: eval: %s", what, err.msg);
    fr_session_free(ss);
    fr_model_free(m);
}

static void test_synthetic(void) {
    fr_test_rng r = {12345};
    synth w;
    enum { NT = 3 + SL * 11 };
    stensor t[NT];
    char names[NT][96];
    int k = 0;
#define ADD(ptr, nm, d0, d1, base, spread)                                                         \
    do {                                                                                           \
        snprintf(names[k], sizeof names[k], "%s", nm);                                             \
        (ptr) = rand_vec(&r, (size_t)(d0) * ((d1) ? (d1) : 1), base, spread);                      \
        t[k] = (stensor){names[k], (d1) ? 2 : 1, {d0, d1}, (ptr)};                                 \
        k++;                                                                                       \
    } while (0)
    ADD(w.embed, "model.embed_tokens.weight", SV, SC, 0.0f, 1.0f);
    char nm[96];
    for (int l = 0; l < SL; l++) {
#define LN(s) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, s), nm)
        ADD(w.attn_norm[l], LN("input_layernorm.weight"), SC, 0, 1.0f, 0.2f);
        ADD(w.wq[l], LN("self_attn.q_proj.weight"), SH * SD, SC, 0.0f, 0.3f);
        ADD(w.wk[l], LN("self_attn.k_proj.weight"), SKV * SD, SC, 0.0f, 0.3f);
        ADD(w.wv[l], LN("self_attn.v_proj.weight"), SKV * SD, SC, 0.0f, 0.3f);
        ADD(w.wo[l], LN("self_attn.o_proj.weight"), SC, SH * SD, 0.0f, 0.2f);
        ADD(w.as[l], LN("self_attn_layer_scale.scale"), SC, 0, 0.5f, 0.4f);
        ADD(w.mlp_norm[l], LN("post_attention_layernorm.weight"), SC, 0, 1.0f, 0.2f);
        ADD(w.wg[l], LN("mlp.gate_proj.weight"), SF, SC, 0.0f, 0.3f);
        ADD(w.wu[l], LN("mlp.up_proj.weight"), SF, SC, 0.0f, 0.3f);
        ADD(w.wd[l], LN("mlp.down_proj.weight"), SC, SF, 0.0f, 0.2f);
        ADD(w.ms[l], LN("mlp_layer_scale.scale"), SC, 0, 0.5f, 0.4f);
#undef LN
    }
    ADD(w.final_norm, "model.norm.weight", SC, 0, 1.0f, 0.2f);
    ADD(w.lm_head, "lm_head.weight", SV, SC, 0.0f, 0.5f);
#undef ADD
    int32_t ids[ST];
    for (int i = 0; i < ST; i++)
        ids[i] = (int32_t)(fr_test_rng_u64(&r) % SV);

    char dir[] = "/tmp/fr_test_model_XXXXXX", path[512];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":%d,"
             "\"num_hidden_layers\":%d,\"num_attention_heads\":%d,\"num_key_value_heads\":%d,"
             "\"head_dim\":%d,\"intermediate_size\":%d,\"vocab_size\":%d,"
             "\"max_position_embeddings\":64,\"rms_norm_eps\":%g,\"rope_theta\":%g,"
             "\"use_layer_scale\":true,\"tie_word_embeddings\":false}",
             SC, SL, SH, SKV, SD, SF, SV, S_EPS, S_THETA);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, cfg);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_safetensors(path, t, 0, NT);

    double *ref = malloc(sizeof(double) * ST * SV), *plain = malloc(sizeof(double) * ST * SV);
    synth_reference(&w, ids, true, ref);
    synth_reference(&w, ids, false, plain);
    float *reff = malloc(sizeof(float) * ST * SV), *got = malloc(sizeof(float) * ST * SV);
    for (int i = 0; i < ST * SV; i++)
        reff[i] = (float)ref[i];
    /* the scales must matter, or this test would prove nothing about them */
    float *plainf = malloc(sizeof(float) * ST * SV);
    for (int i = 0; i < ST * SV; i++)
        plainf[i] = (float)plain[i];
    double sens = fr_test_max_row_err(plainf, reff, ST, SV);
    CHECK(sens > 1e-2, "layer scales barely change the reference (%.3g)", sens);

    for (int inc = 0; inc < 2; inc++) {
        for (int i = 0; i < ST * SV; i++)
            got[i] = NAN;
        eval_logits(dir, ids, inc, got, inc ? "layer-scale incremental" : "layer-scale prefill");
        double e = fr_test_max_row_err(got, reff, ST, SV);
        CHECK(e < TOL, "layer-scale %s: max row rel error %.3g", inc ? "incremental" : "prefill",
              e);
        fprintf(stderr, "%-18s max row rel error %.3g (%s)\n", "synthetic-lscale", e,
                inc ? "incremental" : "prefill");
    }

    /* the same tensors split over two shards with an index: identical logits */
    float *single = malloc(sizeof(float) * ST * SV);
    memcpy(single, got, sizeof(float) * ST * SV);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    const int cut = NT / 2;
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    write_safetensors(path, t, 0, cut);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    write_safetensors(path, t, cut, NT);
    cJSON *idx = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(idx, "weight_map");
    for (int i = 0; i < NT; i++)
        cJSON_AddStringToObject(map, t[i].name,
                                i < cut ? "model-00001-of-00002.safetensors"
                                        : "model-00002-of-00002.safetensors");
    char *idx_text = cJSON_Print(idx);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_text(path, idx_text);
    for (int i = 0; i < ST * SV; i++)
        got[i] = NAN;
    eval_logits(dir, ids, true, got, "sharded");
    CHECK(!memcmp(got, single, sizeof(float) * ST * SV), "sharded logits differ from single file");

    /* an index naming a shard outside the folder, and one promising a tensor no shard has */
    cJSON_ReplaceItemInObject(map, t[0].name, cJSON_CreateString("../evil.safetensors"));
    free(idx_text);
    idx_text = cJSON_Print(idx);
    write_text(path, idx_text);
    fr_error err = {0};
    fr_model *m = NULL;
    fr_status s = fr_model_load(dir, NULL, &m, &err);
    CHECK(s != FR_OK && strstr(err.msg, "model.safetensors.index.json") &&
              strstr(err.msg, t[0].name),
          "index with ../: %s", err.msg);
    fr_model_free(m);
    cJSON_ReplaceItemInObject(map, t[0].name,
                              cJSON_CreateString("model-00001-of-00002.safetensors"));
    cJSON_AddStringToObject(map, "model.layers.0.extra.weight", "model-00002-of-00002.safetensors");
    free(idx_text);
    idx_text = cJSON_Print(idx);
    write_text(path, idx_text);
    m = NULL;
    s = fr_model_load(dir, NULL, &m, &err);
    CHECK(s != FR_OK && strstr(err.msg, "model-00002-of-00002.safetensors") &&
              strstr(err.msg, "model.layers.0.extra.weight"),
          "index with absent tensor: %s", err.msg);
    fr_model_free(m);

    free(idx_text);
    cJSON_Delete(idx);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    for (int i = 0; i < NT; i++)
        free(t[i].data);
    free(ref);
    free(plain);
    free(reff);
    free(plainf);
    free(got);
    free(single);
}

int main(void) {
    test_config();
    const char *names[] = {"qwen3-tiny", "qwen3-tiny-bf16", "llama3-tiny-f16", "qwen2-tiny",
                           "mistral-tiny-swa"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        test_fixture(names[i]);
    test_sessions();
    test_synthetic();
    return fr_test_finish("test_model");
}
