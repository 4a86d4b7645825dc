/* GGUF model files -> fr_config + fr_weight_source (see gguf_model.h). */
#include "model/gguf_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"

/* ---------------------------------------------------------------- names */

typedef struct {
    const char *gguf; /* after "blk.N." */
    const char *hf;   /* after "model.layers.N." */
} layer_name;

static const layer_name layer_names[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
    {"ffn_gate.bias", "mlp.gate_proj.bias"},
    {"ffn_up.bias", "mlp.up_proj.bias"},
    {"ffn_down.bias", "mlp.down_proj.bias"},
};

static const struct {
    const char *gguf, *hf;
} global_names[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

#define N_LAYER_NAMES  (sizeof layer_names / sizeof layer_names[0])
#define N_GLOBAL_NAMES (sizeof global_names / sizeof global_names[0])

/* "PREFIX<digits>." at the start of s: the layer number and the rest of the name. */
static bool split_layer(const char *s, const char *prefix, long *layer, const char **rest) {
    size_t k = strlen(prefix);
    if (strncmp(s, prefix, k)) return false;
    const char *p = s + k;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9')) return false;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v >= FR_MAX_LAYERS) return false;
        p++;
    }
    if (*p != '.') return false;
    *layer = v;
    *rest = p + 1;
    return true;
}

static bool map_name(const char *name, bool to_hf, char *out, size_t cap) {
    for (size_t i = 0; i < N_GLOBAL_NAMES; i++) {
        const char *from = to_hf ? global_names[i].gguf : global_names[i].hf;
        const char *to = to_hf ? global_names[i].hf : global_names[i].gguf;
        if (!strcmp(name, from)) return (size_t)snprintf(out, cap, "%s", to) < cap;
    }
    long layer;
    const char *rest;
    if (!split_layer(name, to_hf ? "blk." : "model.layers.", &layer, &rest)) return false;
    for (size_t i = 0; i < N_LAYER_NAMES; i++) {
        const char *from = to_hf ? layer_names[i].gguf : layer_names[i].hf;
        const char *to = to_hf ? layer_names[i].hf : layer_names[i].gguf;
        if (strcmp(rest, from)) continue;
        int n = snprintf(out, cap, to_hf ? "model.layers.%ld.%s" : "blk.%ld.%s", layer, to);
        return n > 0 && (size_t)n < cap;
    }
    return false;
}

bool fr_gguf_name_to_hf(const char *gguf_name, char *out, size_t cap) {
    return map_name(gguf_name, true, out, cap);
}

bool fr_gguf_name_from_hf(const char *hf_name, char *out, size_t cap) {
    return map_name(hf_name, false, out, cap);
}

const char *fr_gguf_arch_name(fr_arch arch) {
    switch (arch) {
    case FR_ARCH_LLAMA:
    case FR_ARCH_MISTRAL:
        return "llama";
    case FR_ARCH_QWEN2:
        return "qwen2";
    case FR_ARCH_QWEN3:
        return "qwen3";
    default:
        return NULL;
    }
}

/* ---------------------------------------------------------------- q/k permutation */

void fr_gguf_permute_qk(const void *src, void *dst, int64_t n_head, int64_t head_dim,
                        size_t row_bytes, bool to_gguf) {
    const char *s = src;
    char *d = dst;
    const int64_t half = head_dim / 2;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t i = 0; i < half; i++)
            for (int64_t k = 0; k < 2; k++) {
                const int64_t hf = h * head_dim + k * half + i, gg = h * head_dim + 2 * i + k;
                const int64_t from = to_gguf ? hf : gg, to = to_gguf ? gg : hf;
                memcpy(d + (size_t)to * row_bytes, s + (size_t)from * row_bytes, row_bytes);
            }
}

/* ---------------------------------------------------------------- llama3 RoPE factors */

static double base_inv_freq(double theta, int D, int i) {
    return 1.0 / pow(theta, (double)(2 * i) / (double)D);
}

/* Hugging Face's llama3 frequency (as fr_rope_table_fill computes it). */
static double llama3_inv_freq(const fr_rope_config *c, int i) {
    double inv = base_inv_freq(c->theta, c->head_dim, i);
    const double old = c->original_max_pos > 0 ? c->original_max_pos : 8192;
    const double low_wl = old / c->low_freq_factor, high_wl = old / c->high_freq_factor;
    const double wl = 2.0 * M_PI / inv;
    if (wl > low_wl) return inv / c->factor;
    if (wl >= high_wl) {
        const double s =
            (old / wl - c->low_freq_factor) / (c->high_freq_factor - c->low_freq_factor);
        return (1.0 - s) * inv / c->factor + s * inv;
    }
    return inv;
}

bool fr_gguf_rope_freq_factors(const fr_rope_config *rope, float *factors) {
    if (!(rope->factor > 0)) return false;
    for (int i = 0; i < rope->head_dim / 2; i++)
        factors[i] =
            (float)(base_inv_freq(rope->theta, rope->head_dim, i) / llama3_inv_freq(rope, i));
    return true;
}

#define MAX_ROPE_HALF 4096

static bool close_rel(double a, double b, double tol) {
    return fabs(a - b) <= tol * fabs(b);
}

/* Finds llama3 parameters (factor, low/high_freq_factor, original_max_pos) that reproduce the
 * per-frequency divisors llama.cpp stores, then checks every frequency. Only the wavelength
 * boundaries matter (the formula depends on original_max_pos / low_freq_factor and
 * original_max_pos / high_freq_factor), so original_max_pos is set to the context length. */
static fr_status rope_from_factors(const char *file, const float *f, int ctx, fr_rope_config *r,
                                   fr_error *err) {
    const int D = r->head_dim, half = D / 2;
    double fmax = 0;
    bool all_one = true;
    for (int i = 0; i < half; i++) {
        if (!(f[i] >= 0.999999f && f[i] < 1e9f))
            return fr_error_set(err, FR_ERR_UNSUPPORTED,
                                "%s: tensor rope_freqs.weight[%d] = %g: only llama3-style factors "
                                ">= 1 are supported",
                                file, i, (double)f[i]);
        if (!close_rel(f[i], 1.0, 1e-6)) all_one = false;
        if (f[i] > fmax) fmax = f[i];
    }
    if (all_one) return FR_OK;
    /* classify: 0 = unscaled (high frequency), 1 = blended, 2 = fully scaled; must not go back */
    int last_hi = -1, first_lo = half, first_mid = -1, last_mid = -1, prev = 0;
    for (int i = 0; i < half; i++) {
        int cls = close_rel(f[i], 1.0, 1e-6) ? 0 : close_rel(f[i], fmax, 1e-6) ? 2 : 1;
        if (cls < prev)
            return fr_error_set(err, FR_ERR_UNSUPPORTED,
                                "%s: tensor rope_freqs.weight is not a llama3 RoPE scaling "
                                "(factors not monotone at %d)",
                                file, i);
        prev = cls;
        if (cls == 0) last_hi = i;
        if (cls == 1) {
            if (first_mid < 0) first_mid = i;
            last_mid = i;
        }
        if (cls == 2 && first_lo == half) first_lo = i;
    }
    /* u = 1 / wavelength; blend s(u) = (u - u_lo) / (u_hi - u_lo), 1/f = 1/F + s (1 - 1/F) */
    const double F = fmax;
    double u[MAX_ROPE_HALF], s[MAX_ROPE_HALF];
    if (half > MAX_ROPE_HALF)
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "%s: head_dim %d too large for rope_freqs",
                            file, D);
    for (int i = 0; i < half; i++) {
        u[i] = base_inv_freq(r->theta, D, i) / (2.0 * M_PI);
        s[i] = (1.0 / f[i] - 1.0 / F) / (1.0 - 1.0 / F);
    }
    const double u_prev = last_hi >= 0 ? u[last_hi] : u[0] * 4.0;
    const double u_next = first_lo < half ? u[first_lo] : 0.0;
    double u_hi, u_lo;
    if (first_mid >= 0 && last_mid > first_mid) {
        const double a = (s[last_mid] - s[first_mid]) / (u[last_mid] - u[first_mid]);
        const double b = s[first_mid] - a * u[first_mid];
        if (!(a > 0))
            return fr_error_set(err, FR_ERR_UNSUPPORTED,
                                "%s: tensor rope_freqs.weight is not a llama3 RoPE scaling", file);
        u_lo = -b / a;
        u_hi = (1.0 - b) / a;
    } else if (first_mid >= 0) {
        const double um = u[first_mid], sm = s[first_mid];
        u_hi = sqrt(u_prev * um);
        u_lo = (um - sm * u_hi) / (1.0 - sm);
    } else {
        u_hi = 0.75 * u_prev + 0.25 * u_next;
        u_lo = 0.25 * u_prev + 0.75 * u_next;
    }
    const double L = ctx > 0 ? ctx : 8192;
    r->factor = F;
    r->original_max_pos = (int)L;
    r->low_freq_factor = L * u_lo;
    r->high_freq_factor = L * u_hi;
    bool ok = r->low_freq_factor > 0 && r->high_freq_factor > r->low_freq_factor;
    for (int i = 0; ok && i < half; i++)
        ok = close_rel(llama3_inv_freq(r, i), base_inv_freq(r->theta, D, i) / f[i], 1e-5);
    if (!ok)
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "%s: tensor rope_freqs.weight: these frequency factors are not a "
                            "llama3 RoPE scaling ferrum can reproduce",
                            file);
    return FR_OK;
}

/* ---------------------------------------------------------------- config */

typedef struct {
    const fr_gguf *g;
    const char *arch;
    fr_error *err;
} meta;

static const char *key_of(const meta *m, const char *suffix, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.%s", m->arch, suffix);
    return buf;
}

/* An integer "{arch}.suffix" in [lo, hi]; def when absent and not required. */
static fr_status meta_int(const meta *m, const char *suffix, bool required, int64_t def, int64_t lo,
                          int64_t hi, int *out) {
    char key[160];
    key_of(m, suffix, key, sizeof key);
    int64_t v;
    fr_status st = fr_gguf_get_i64(m->g, key, &v, m->err);
    if (st == FR_ERR_NOT_FOUND && !required) {
        v = def;
    } else if (st) {
        const fr_gguf_value *val = fr_gguf_find(m->g, key);
        if (val && val->type == FR_GGUF_ARRAY)
            return fr_error_set(m->err, FR_ERR_UNSUPPORTED,
                                "%s: key '%s' varies per layer, which ferrum does not support",
                                fr_gguf_path(m->g), key);
        return st;
    }
    if (v < lo || v > hi)
        return fr_error_set(m->err, FR_ERR_FORMAT, "%s: key '%s' = %lld is outside [%lld, %lld]",
                            fr_gguf_path(m->g), key, (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return FR_OK;
}

static fr_status meta_num(const meta *m, const char *key, bool required, double def, double lo,
                          double hi, double *out) {
    double v;
    fr_status st = fr_gguf_get_f64(m->g, key, &v, m->err);
    if (st == FR_ERR_NOT_FOUND && !required)
        v = def;
    else if (st)
        return st;
    if (!(v >= lo && v <= hi))
        return fr_error_set(m->err, FR_ERR_FORMAT, "%s: key '%s' = %g is outside [%g, %g]",
                            fr_gguf_path(m->g), key, v, lo, hi);
    *out = v;
    return FR_OK;
}

/* A token id key (absent: -1). */
static fr_status meta_token(const meta *m, const char *key, int vocab, int32_t *out) {
    int64_t v;
    fr_status st = fr_gguf_get_i64(m->g, key, &v, m->err);
    *out = -1;
    if (st == FR_ERR_NOT_FOUND) return FR_OK;
    if (st) return st;
    if (v < 0 || v >= vocab)
        return fr_error_set(m->err, FR_ERR_FORMAT, "%s: key '%s' = %lld is not a token id below %d",
                            fr_gguf_path(m->g), key, (long long)v, vocab);
    *out = (int32_t)v;
    return FR_OK;
}

static void add_eos(fr_config *c, int32_t id) {
    if (id < 0 || c->n_eos >= FR_MAX_EOS) return;
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos[i] == id) return;
    c->eos[c->n_eos++] = id;
}

static fr_status read_rope(const meta *m, fr_config *c) {
    char key[160];
    memset(&c->rope, 0, sizeof c->rope);
    c->rope.head_dim = c->head_dim;
    FR_TRY(meta_num(m, key_of(m, "rope.freq_base", key, sizeof key), false, 10000.0, 1e-3, 1e30,
                    &c->rope.theta));
    int rot = c->head_dim;
    FR_TRY(meta_int(m, "rope.dimension_count", false, c->head_dim, 0, 1 << 16, &rot));
    if (rot != c->head_dim)
        return fr_error_set(m->err, FR_ERR_UNSUPPORTED,
                            "%s: key '%s.rope.dimension_count' = %d: only full rotary (head_dim "
                            "%d) is supported",
                            fr_gguf_path(m->g), m->arch, rot, c->head_dim);
    fr_gguf_str type = {"none", 4};
    fr_status st =
        fr_gguf_get_str(m->g, key_of(m, "rope.scaling.type", key, sizeof key), &type, m->err);
    if (st && st != FR_ERR_NOT_FOUND) return st;
    double factor = 0;
    FR_TRY(
        meta_num(m, key_of(m, "rope.scaling.factor", key, sizeof key), false, 0, 0, 1e9, &factor));
    if (factor == 0) /* the older spelling */
        FR_TRY(meta_num(m, key_of(m, "rope.scale_linear", key, sizeof key), false, 0, 0, 1e9,
                        &factor));
    if (!strcmp(type.s, "linear") || (st == FR_ERR_NOT_FOUND && factor > 0)) {
        if (factor != 1.0 && factor > 0) c->rope.linear_factor = factor;
    } else if (strcmp(type.s, "none") && strcmp(type.s, "llama3")) {
        return fr_error_set(m->err, FR_ERR_UNSUPPORTED,
                            "%s: key '%s.rope.scaling.type' = '%.32s' is not supported (none, "
                            "linear, llama3 via rope_freqs.weight)",
                            fr_gguf_path(m->g), m->arch, type.s);
    }
    const fr_gguf_tensor *rf = fr_gguf_find_tensor(m->g, "rope_freqs.weight");
    if (!rf) return FR_OK;
    if (rf->dtype != FR_DTYPE_F32 || rf->n_elements != c->head_dim / 2)
        return fr_error_set(m->err, FR_ERR_FORMAT,
                            "%s: tensor rope_freqs.weight must be %d f32 values (head_dim / 2), "
                            "is %lld of %s",
                            fr_gguf_path(m->g), c->head_dim / 2, (long long)rf->n_elements,
                            rf->type_name);
    float *f = malloc(sizeof(float) * (size_t)(c->head_dim / 2));
    if (!f) return fr_error_set(m->err, FR_ERR_NOMEM, "%s: out of memory", fr_gguf_path(m->g));
    memcpy(f, rf->data, sizeof(float) * (size_t)(c->head_dim / 2));
    st = rope_from_factors(fr_gguf_path(m->g), f, c->max_pos, &c->rope, m->err);
    free(f);
    if (!st && c->rope.factor > 0 && c->rope.linear_factor > 0)
        return fr_error_set(m->err, FR_ERR_UNSUPPORTED,
                            "%s: linear and llama3 RoPE scaling together are not supported",
                            fr_gguf_path(m->g));
    return st;
}

/* general.sampling.* -> the sampling defaults. */
static fr_status read_sampling(const meta *m, fr_config *c) {
    const fr_gguf *g = m->g;
    double v = 0;
    int k;
    if (fr_gguf_find(g, "general.sampling.temp")) {
        FR_TRY(meta_num(m, "general.sampling.temp", true, 0, 0, 1e6, &v));
        c->gen.has_temperature = true;
        c->gen.temperature = (float)v;
    }
    if (fr_gguf_find(g, "general.sampling.top_p")) {
        FR_TRY(meta_num(m, "general.sampling.top_p", true, 0, 0, 1, &v));
        c->gen.has_top_p = true;
        c->gen.top_p = (float)v;
    }
    if (fr_gguf_find(g, "general.sampling.min_p")) {
        FR_TRY(meta_num(m, "general.sampling.min_p", true, 0, 0, 1, &v));
        c->gen.has_min_p = true;
        c->gen.min_p = (float)v;
    }
    if (fr_gguf_find(g, "general.sampling.penalty_repeat")) {
        FR_TRY(meta_num(m, "general.sampling.penalty_repeat", true, 0, 1e-6, 1e6, &v));
        c->gen.has_repeat_penalty = true;
        c->gen.repeat_penalty = (float)v;
    }
    if (fr_gguf_find(g, "general.sampling.top_k")) {
        int64_t t;
        FR_TRY(fr_gguf_get_i64(g, "general.sampling.top_k", &t, m->err));
        k = t < 0 ? 0 : t > (1 << 30) ? (1 << 30) : (int)t;
        c->gen.has_top_k = true;
        c->gen.top_k = k;
    }
    return FR_OK;
}

fr_status fr_gguf_read_config(const fr_gguf *g, fr_config *c, fr_error *err) {
    memset(c, 0, sizeof *c);
    c->bos = -1;
    const char *file = fr_gguf_path(g);
    fr_gguf_str arch;
    fr_status st = fr_gguf_get_str(g, "general.architecture", &arch, err);
    if (st) return st;
    if (!strcmp(arch.s, "llama")) {
        c->arch = FR_ARCH_LLAMA;
        snprintf(c->arch_name, sizeof c->arch_name, "LlamaForCausalLM");
    } else if (!strcmp(arch.s, "qwen2")) {
        c->arch = FR_ARCH_QWEN2;
        snprintf(c->arch_name, sizeof c->arch_name, "Qwen2ForCausalLM");
    } else if (!strcmp(arch.s, "qwen3")) {
        c->arch = FR_ARCH_QWEN3;
        snprintf(c->arch_name, sizeof c->arch_name, "Qwen3ForCausalLM");
    } else {
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "%s: key 'general.architecture' = '%.64s' is not supported (llama, "
                            "qwen2, qwen3)",
                            file, arch.s);
    }
    meta m = {g, arch.s, err};
    const int64_t big = (int64_t)1 << 30;
    FR_TRY(meta_int(&m, "block_count", true, 0, 1, FR_MAX_LAYERS, &c->n_layers));
    FR_TRY(meta_int(&m, "embedding_length", true, 0, 1, big, &c->hidden));
    FR_TRY(meta_int(&m, "feed_forward_length", true, 0, 1, big, &c->intermediate));
    FR_TRY(meta_int(&m, "attention.head_count", true, 0, 1, 1 << 16, &c->n_heads));
    FR_TRY(meta_int(&m, "attention.head_count_kv", false, c->n_heads, 1, 1 << 16, &c->n_kv_heads));
    FR_TRY(meta_int(&m, "context_length", true, 0, 1, big, &c->max_pos));
    char key[160];
    if (c->hidden % c->n_heads && !fr_gguf_find(g, key_of(&m, "attention.key_length", key, 160)))
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: key '%s.attention.key_length' is missing and embedding_length "
                            "%d is not a multiple of head_count %d",
                            file, arch.s, c->hidden, c->n_heads);
    FR_TRY(meta_int(&m, "attention.key_length", false, c->hidden / c->n_heads, 2, 1 << 16,
                    &c->head_dim));
    int vlen = c->head_dim;
    FR_TRY(meta_int(&m, "attention.value_length", false, c->head_dim, 1, 1 << 16, &vlen));
    if (vlen != c->head_dim)
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "%s: key '%s.attention.value_length' = %d differs from key_length %d",
                            file, arch.s, vlen, c->head_dim);
    FR_TRY(meta_num(&m, key_of(&m, "attention.layer_norm_rms_epsilon", key, sizeof key), true, 0,
                    0.0, 1.0, &c->norm_eps));

    /* vocabulary: the token list, else {arch}.vocab_size, else the embedding's rows */
    const fr_gguf_value *toks = fr_gguf_find(g, "tokenizer.ggml.tokens");
    const fr_gguf_tensor *emb = fr_gguf_find_tensor(g, "token_embd.weight");
    if (toks) {
        if (toks->type != FR_GGUF_ARRAY || toks->v.arr.type != FR_GGUF_STRING ||
            toks->v.arr.n < 1 || toks->v.arr.n > (uint64_t)big)
            return fr_error_set(err, FR_ERR_FORMAT,
                                "%s: key 'tokenizer.ggml.tokens' must be a non-empty array of "
                                "strings",
                                file);
        c->vocab = (int)toks->v.arr.n;
    } else if (fr_gguf_find(g, key_of(&m, "vocab_size", key, sizeof key))) {
        FR_TRY(meta_int(&m, "vocab_size", true, 0, 1, big, &c->vocab));
    } else if (emb && emb->ndim == 2 && emb->shape[0] <= big) {
        c->vocab = (int)emb->shape[0];
    } else {
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: no vocabulary size (no tokenizer.ggml.tokens, %s.vocab_size or "
                            "token_embd.weight)",
                            file, arch.s);
    }

    FR_TRY(read_rope(&m, c));
    c->qk_norm = c->arch == FR_ARCH_QWEN3;
    c->qkv_bias = c->arch == FR_ARCH_QWEN2 || fr_gguf_find_tensor(g, "blk.0.attn_q.bias");
    c->o_bias = c->arch != FR_ARCH_QWEN2 && fr_gguf_find_tensor(g, "blk.0.attn_output.bias");
    c->mlp_bias = c->arch == FR_ARCH_LLAMA && fr_gguf_find_tensor(g, "blk.0.ffn_down.bias");
    c->tie_embeddings = fr_gguf_find_tensor(g, "output.weight") == NULL;

    /* a llama file with a sliding window is a Mistral (ferrum's quantize writes this key) */
    int window = 0;
    FR_TRY(meta_int(&m, "attention.sliding_window", false, 0, 0, big, &window));
    if (window > 0) {
        if (c->arch != FR_ARCH_LLAMA)
            return fr_error_set(err, FR_ERR_UNSUPPORTED,
                                "%s: key '%s.attention.sliding_window' is only supported for "
                                "llama (Mistral)",
                                file, arch.s);
        c->arch = FR_ARCH_MISTRAL;
        snprintf(c->arch_name, sizeof c->arch_name, "MistralForCausalLM");
        c->sliding_window = window;
        for (int i = 0; i < c->n_layers; i++)
            c->layer_window[i] = 1;
    }

    int32_t id;
    FR_TRY(meta_token(&m, "tokenizer.ggml.bos_token_id", c->vocab, &c->bos));
    FR_TRY(meta_token(&m, "tokenizer.ggml.eos_token_id", c->vocab, &id));
    add_eos(c, id);
    FR_TRY(meta_token(&m, "tokenizer.ggml.eot_token_id", c->vocab, &id));
    add_eos(c, id);
    FR_TRY(meta_token(&m, "tokenizer.ggml.eom_token_id", c->vocab, &id));
    add_eos(c, id);
    FR_TRY(read_sampling(&m, c));
    return fr_config_validate(c, file, err);
}

/* ---------------------------------------------------------------- weights */

typedef struct {
    fr_gguf *g;
    void *perm; /* reordered q/k rows (llama) */
} gguf_owner;

static void release_owner(void *p) {
    gguf_owner *o = p;
    if (!o) return;
    fr_gguf_close(o->g);
    fr_aligned_free(o->perm);
    free(o);
}

/* The llama q/k tensors to reorder: heads of the tensor, or 0 when it is not one. */
static int64_t qk_heads(const fr_config *c, const char *gguf_name) {
    if (c->arch != FR_ARCH_LLAMA && c->arch != FR_ARCH_MISTRAL) return 0;
    long layer;
    const char *rest;
    if (!split_layer(gguf_name, "blk.", &layer, &rest)) return 0;
    if (!strcmp(rest, "attn_q.weight") || !strcmp(rest, "attn_q.bias")) return c->n_heads;
    if (!strcmp(rest, "attn_k.weight") || !strcmp(rest, "attn_k.bias")) return c->n_kv_heads;
    return 0;
}

static const char *supported_types = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, "
                                     "Q6_K";

/* Bytes of one "row" to move when reordering: a matrix row, or one element of a vector. Zero
 * when the tensor cannot be reordered (wrong shape: the model binder then reports it). */
static size_t perm_row_bytes(const fr_gguf_tensor *t, int64_t heads, int64_t D) {
    if (t->dtype == FR_DTYPE_COUNT || t->shape[0] != heads * D) return 0;
    if (t->ndim == 1)
        return t->dtype == FR_DTYPE_F32                                ? 4
               : t->dtype == FR_DTYPE_F16 || t->dtype == FR_DTYPE_BF16 ? 2
                                                                       : 0;
    if (t->ndim != 2) return 0;
    size_t rb = fr_dtype_row_bytes(t->dtype, t->shape[1]);
    return rb && rb * (size_t)t->shape[0] == t->nbytes ? rb : 0;
}

static fr_status build_source(fr_gguf *g, const fr_config *c, fr_weight_source **out,
                              fr_error *err) {
    const char *file = fr_gguf_path(g);
    fr_weight_source *s = fr_weights_new(file);
    gguf_owner *own = calloc(1, sizeof *own);
    if (!s || !own) {
        fr_weights_free(s);
        free(own);
        fr_gguf_close(g);
        return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", file);
    }
    own->g = g;
    s->owner = own;
    s->release = release_owner;
    const size_t n = fr_gguf_tensor_count(g);
    /* pass 1: the size of the reordered copies */
    size_t perm_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
        int64_t heads = qk_heads(c, t->name);
        if (heads && perm_row_bytes(t, heads, c->head_dim))
            perm_bytes += fr_align_up(t->nbytes, 64);
    }
    fr_status st = FR_OK;
    if (perm_bytes) {
        own->perm = fr_aligned_alloc(perm_bytes);
        if (!own->perm)
            st = fr_error_set(err, FR_ERR_NOMEM,
                              "%s: out of memory for the reordered q/k weights (%zu bytes)", file,
                              perm_bytes);
    }
    const int mapped = fr_weights_add_region(s, (void *)fr_gguf_base(g), fr_gguf_size(g), file);
    char perm_label[4200];
    snprintf(perm_label, sizeof perm_label, "%s (q/k rows reordered)", file);
    const int permuted =
        perm_bytes ? fr_weights_add_region(s, own->perm, perm_bytes, perm_label) : -1;
    size_t perm_used = 0;
    char hf[256];
    for (size_t i = 0; i < n && !st; i++) {
        const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
        const bool known = fr_gguf_name_to_hf(t->name, hf, sizeof hf);
        if (known && t->dtype == FR_DTYPE_COUNT) {
            st = fr_error_set(err, FR_ERR_UNSUPPORTED,
                              "%s: tensor %s: GGML type %s is not supported by ferrum (supported: "
                              "%s)",
                              file, t->name, t->type_name ? t->type_name : "?", supported_types);
            break;
        }
        if (!known) {
            /* kept under its own name (e.g. rope_freqs.weight, read with the config) */
            if (strncmp(t->name, "rope_freqs", 10))
                FR_LOG_D("%s: tensor %s is not used by the decoder", file, t->name);
            snprintf(hf, sizeof hf, "%s", t->name);
        }
        int64_t shape[FR_MAX_DIMS] = {0};
        const int ndim = t->ndim < FR_MAX_DIMS ? t->ndim : FR_MAX_DIMS;
        for (int d = 0; d < ndim; d++)
            shape[d] = t->shape[d];
        const int64_t heads = known ? qk_heads(c, t->name) : 0;
        const size_t rb = heads ? perm_row_bytes(t, heads, c->head_dim) : 0;
        if (rb) {
            char *dst = (char *)own->perm + perm_used;
            fr_gguf_permute_qk(t->data, dst, heads, c->head_dim, rb, false);
            st = fr_weights_add(s, hf, t->dtype, t->type_name, ndim, shape, permuted, perm_used,
                                t->nbytes, err);
            perm_used += fr_align_up(t->nbytes, 64);
        } else {
            st = fr_weights_add(s, hf, t->dtype, t->type_name, ndim, shape, mapped,
                                (size_t)t->offset, t->nbytes, err);
        }
    }
    if (!st) st = fr_weights_finish(s, err);
    if (st) {
        fr_weights_free(s);
        return st;
    }
    *out = s;
    return FR_OK;
}

fr_status fr_gguf_model_open(const char *path, fr_config *cfg, fr_weight_source **src,
                             fr_error *err) {
    *src = NULL;
    fr_gguf *g;
    fr_status st = fr_gguf_open(path, &g, err);
    if (st) return st;
    st = fr_gguf_read_config(g, cfg, err);
    if (st) {
        fr_gguf_close(g);
        return st;
    }
    return build_source(g, cfg, src, err);
}
