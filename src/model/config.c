/* Hugging Face config.json / generation_config.json -> fr_config. Defaults follow the
 * transformers config classes of each architecture; anything we cannot honour (another
 * activation, an unknown RoPE type, partial rotary) is refused rather than silently ignored. */
#include "model/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    const char *hf_class, *model_type;
    fr_arch arch;
} arch_table[] = {
    {"LlamaForCausalLM", "llama", FR_ARCH_LLAMA},
    {"Qwen2ForCausalLM", "qwen2", FR_ARCH_QWEN2},
    {"Qwen3ForCausalLM", "qwen3", FR_ARCH_QWEN3},
    {"MistralForCausalLM", "mistral", FR_ARCH_MISTRAL},
};
#define N_ARCH (sizeof arch_table / sizeof arch_table[0])

const char *fr_arch_label(fr_arch a) {
    for (size_t i = 0; i < N_ARCH; i++)
        if (arch_table[i].arch == a) return arch_table[i].model_type;
    return "?";
}

/* ---------------------------------------------------------------- field readers */

typedef struct {
    const char *file;
    fr_error *err;
} pctx;

/* A present, non-null item. */
static const cJSON *item(const cJSON *obj, const char *key) {
    const cJSON *j = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return (j && !cJSON_IsNull(j)) ? j : NULL;
}

static fr_status get_int(pctx *p, const cJSON *obj, const char *prefix, const char *key,
                         bool required, long def, long lo, long hi, int *out) {
    const cJSON *j = item(obj, key);
    if (!j) {
        if (required)
            return fr_error_set(p->err, FR_ERR_FORMAT, "%s: required field '%s%s' is missing",
                                p->file, prefix, key);
        *out = (int)def;
        return FR_OK;
    }
    double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return fr_error_set(p->err, FR_ERR_FORMAT,
                            "%s: field '%s%s' must be an integer in [%ld, %ld]", p->file, prefix,
                            key, lo, hi);
    *out = (int)d;
    return FR_OK;
}

static fr_status get_num(pctx *p, const cJSON *obj, const char *prefix, const char *key,
                         bool required, double def, double lo, double hi, double *out) {
    const cJSON *j = item(obj, key);
    if (!j) {
        if (required)
            return fr_error_set(p->err, FR_ERR_FORMAT, "%s: required field '%s%s' is missing",
                                p->file, prefix, key);
        *out = def;
        return FR_OK;
    }
    double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(d >= lo && d <= hi))
        return fr_error_set(p->err, FR_ERR_FORMAT, "%s: field '%s%s' must be a number in [%g, %g]",
                            p->file, prefix, key, lo, hi);
    *out = d;
    return FR_OK;
}

static fr_status get_bool(pctx *p, const cJSON *obj, const char *key, bool def, bool *out) {
    const cJSON *j = item(obj, key);
    if (!j) {
        *out = def;
        return FR_OK;
    }
    if (!cJSON_IsBool(j))
        return fr_error_set(p->err, FR_ERR_FORMAT, "%s: field '%s' must be true or false", p->file,
                            key);
    *out = cJSON_IsTrue(j);
    return FR_OK;
}

/* ---------------------------------------------------------------- pieces */

static fr_status parse_arch(pctx *p, const cJSON *root, fr_config *c) {
    const cJSON *archs = item(root, "architectures");
    const char *name = NULL;
    if (archs) {
        const cJSON *first = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
        if (!cJSON_IsString(first))
            return fr_error_set(p->err, FR_ERR_FORMAT,
                                "%s: field 'architectures' must be a non-empty list of strings",
                                p->file);
        name = first->valuestring;
        for (size_t i = 0; i < N_ARCH; i++)
            if (!strcmp(name, arch_table[i].hf_class)) {
                c->arch = arch_table[i].arch;
                snprintf(c->arch_name, sizeof c->arch_name, "%s", name);
                return FR_OK;
            }
    } else {
        const cJSON *mt = item(root, "model_type");
        if (!mt)
            return fr_error_set(p->err, FR_ERR_FORMAT,
                                "%s: required field 'architectures' is missing (and no "
                                "'model_type')",
                                p->file);
        if (!cJSON_IsString(mt))
            return fr_error_set(p->err, FR_ERR_FORMAT, "%s: field 'model_type' must be a string",
                                p->file);
        name = mt->valuestring;
        for (size_t i = 0; i < N_ARCH; i++)
            if (!strcmp(name, arch_table[i].model_type)) {
                c->arch = arch_table[i].arch;
                snprintf(c->arch_name, sizeof c->arch_name, "%s", arch_table[i].hf_class);
                return FR_OK;
            }
    }
    return fr_error_set(p->err, FR_ERR_UNSUPPORTED,
                        "%s: field '%s': unknown architecture '%.64s' (supported: "
                        "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM)",
                        p->file, archs ? "architectures" : "model_type", name);
}

/* rope_parameters (transformers >= 5) or rope_scaling (older), plus a top-level rope_theta. */
static fr_status parse_rope(pctx *p, const cJSON *root, fr_config *c) {
    const char *key = "rope_parameters";
    const cJSON *rp = item(root, key);
    if (!rp) {
        key = "rope_scaling";
        rp = item(root, key);
    }
    if (rp && !cJSON_IsObject(rp))
        return fr_error_set(p->err, FR_ERR_FORMAT, "%s: field '%s' must be an object", p->file,
                            key);
    char prefix[48];
    snprintf(prefix, sizeof prefix, "%s.", key);
    double theta;
    FR_TRY(get_num(p, root, "", "rope_theta", false, 10000.0, 1e-3, 1e30, &theta));
    FR_TRY(get_num(p, rp, prefix, "rope_theta", false, theta, 1e-3, 1e30, &theta));
    memset(&c->rope, 0, sizeof c->rope);
    c->rope.theta = theta;
    c->rope.head_dim = c->head_dim;

    double partial = 1.0;
    FR_TRY(get_num(p, root, "", "partial_rotary_factor", false, 1.0, 0.0, 1.0, &partial));
    FR_TRY(get_num(p, rp, prefix, "partial_rotary_factor", false, partial, 0.0, 1.0, &partial));
    if (partial != 1.0)
        return fr_error_set(p->err, FR_ERR_UNSUPPORTED,
                            "%s: field 'partial_rotary_factor' = %g: only full rotary is supported",
                            p->file, partial);
    if (!rp) return FR_OK;
    const cJSON *jt = item(rp, "rope_type");
    const char *tkey = "rope_type";
    if (!jt) {
        jt = item(rp, "type");
        tkey = "type";
    }
    const char *type = "default";
    if (jt) {
        if (!cJSON_IsString(jt))
            return fr_error_set(p->err, FR_ERR_FORMAT, "%s: field '%s%s' must be a string", p->file,
                                prefix, tkey);
        type = jt->valuestring;
    }
    if (!strcmp(type, "default")) return FR_OK;
    if (!strcmp(type, "linear")) {
        FR_TRY(get_num(p, rp, prefix, "factor", true, 0, 1e-6, 1e9, &c->rope.linear_factor));
        return FR_OK;
    }
    if (!strcmp(type, "llama3")) {
        FR_TRY(get_num(p, rp, prefix, "factor", true, 0, 1e-6, 1e9, &c->rope.factor));
        FR_TRY(get_num(p, rp, prefix, "low_freq_factor", true, 0, 1e-9, 1e9,
                       &c->rope.low_freq_factor));
        FR_TRY(get_num(p, rp, prefix, "high_freq_factor", true, 0, 1e-9, 1e9,
                       &c->rope.high_freq_factor));
        FR_TRY(get_int(p, rp, prefix, "original_max_position_embeddings", true, 0, 1, 1 << 30,
                       &c->rope.original_max_pos));
        if (!(c->rope.high_freq_factor > c->rope.low_freq_factor))
            return fr_error_set(p->err, FR_ERR_FORMAT,
                                "%s: field '%shigh_freq_factor' must exceed low_freq_factor",
                                p->file, prefix);
        return FR_OK;
    }
    return fr_error_set(p->err, FR_ERR_UNSUPPORTED,
                        "%s: field '%s%s': RoPE type '%.32s' is not supported (default, linear, "
                        "llama3)",
                        p->file, prefix, tkey, type);
}

static fr_status parse_windows(pctx *p, const cJSON *root, fr_config *c) {
    memset(c->layer_window, 0, sizeof c->layer_window);
    c->sliding_window = 0;
    if (c->arch == FR_ARCH_LLAMA) return FR_OK; /* Llama has no sliding window */
    int window = 0;
    FR_TRY(get_int(p, root, "", "sliding_window", false, 0, 0, 1 << 30, &window));
    const cJSON *types = item(root, "layer_types");
    if (types) {
        if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != c->n_layers)
            return fr_error_set(p->err, FR_ERR_FORMAT,
                                "%s: field 'layer_types' must list %d strings (one per layer)",
                                p->file, c->n_layers);
        int i = 0;
        for (const cJSON *t = types->child; t; t = t->next, i++) {
            const char *s = cJSON_IsString(t) ? t->valuestring : "";
            if (!strcmp(s, "sliding_attention")) {
                if (window <= 0)
                    return fr_error_set(p->err, FR_ERR_FORMAT,
                                        "%s: field 'layer_types[%d]' is sliding_attention but "
                                        "'sliding_window' is not a positive integer",
                                        p->file, i);
                c->layer_window[i] = 1;
            } else if (strcmp(s, "full_attention")) {
                return fr_error_set(p->err, FR_ERR_UNSUPPORTED,
                                    "%s: field 'layer_types[%d]': '%.32s' is not supported "
                                    "(full_attention, sliding_attention)",
                                    p->file, i, s);
            }
        }
    } else if (c->arch == FR_ARCH_MISTRAL) {
        for (int i = 0; i < c->n_layers; i++)
            c->layer_window[i] = window > 0;
    } else {
        /* Qwen2/3 without layer_types: windowed from max_window_layers on, when enabled */
        bool use = false;
        int from = 0;
        FR_TRY(get_bool(p, root, "use_sliding_window", false, &use));
        FR_TRY(get_int(p, root, "", "max_window_layers", false, 28, 0, 1 << 30, &from));
        for (int i = 0; i < c->n_layers; i++)
            c->layer_window[i] = use && window > 0 && i >= from;
    }
    for (int i = 0; i < c->n_layers; i++)
        if (c->layer_window[i]) c->sliding_window = window;
    return FR_OK;
}

/* eos_token_id: an int, a list of ints, or null. */
static fr_status parse_eos(pctx *p, const cJSON *root, fr_config *c, bool *found) {
    const cJSON *j = item(root, "eos_token_id");
    *found = j != NULL;
    if (!j) return FR_OK;
    int n = 0;
    int32_t ids[FR_MAX_EOS];
    const cJSON *single = cJSON_IsArray(j) ? NULL : j;
    int count = single ? 1 : cJSON_GetArraySize(j);
    if (count > FR_MAX_EOS)
        return fr_error_set(p->err, FR_ERR_UNSUPPORTED,
                            "%s: field 'eos_token_id' lists %d ids (at most %d)", p->file, count,
                            FR_MAX_EOS);
    for (int i = 0; i < count; i++) {
        const cJSON *e = single ? single : cJSON_GetArrayItem(j, i);
        double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!(d >= 0 && d < 2147483647.0) || d != floor(d))
            return fr_error_set(p->err, FR_ERR_FORMAT,
                                "%s: field 'eos_token_id' must be a token id or a list of them",
                                p->file);
        ids[n++] = (int32_t)d;
    }
    c->n_eos = n;
    memcpy(c->eos, ids, sizeof(int32_t) * (size_t)n);
    return FR_OK;
}

/* ---------------------------------------------------------------- public */

fr_status fr_config_parse_hf(const char *json, const char *file, fr_config *c, fr_error *err) {
    memset(c, 0, sizeof *c);
    c->bos = -1;
    pctx p = {file, err};
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        const char *at = cJSON_GetErrorPtr();
        long off = (at && at >= json) ? (long)(at - json) : -1;
        cJSON_Delete(root);
        return fr_error_set(err, FR_ERR_FORMAT, "%s: malformed JSON (near byte %ld)", file, off);
    }
    fr_status st = parse_arch(&p, root, c);
    /* everything below returns through `done` so the JSON tree is always freed */
#define STEP(expr)                                                                                 \
    do {                                                                                           \
        if (st == FR_OK) st = (expr);                                                              \
    } while (0)
    const long big = 1L << 30;
    STEP(get_int(&p, root, "", "hidden_size", true, 0, 1, big, &c->hidden));
    STEP(get_int(&p, root, "", "num_hidden_layers", true, 0, 1, FR_MAX_LAYERS, &c->n_layers));
    STEP(get_int(&p, root, "", "num_attention_heads", true, 0, 1, 1 << 16, &c->n_heads));
    STEP(get_int(&p, root, "", "intermediate_size", true, 0, 1, big, &c->intermediate));
    STEP(get_int(&p, root, "", "vocab_size", true, 0, 1, big, &c->vocab));
    STEP(get_int(&p, root, "", "num_key_value_heads", false, c->n_heads, 1, 1 << 16,
                 &c->n_kv_heads));
    if (st == FR_OK) {
        /* transformers: Qwen3Config defaults head_dim to 128, the others to hidden / heads */
        long def_hd = c->arch == FR_ARCH_QWEN3 ? 128 : c->hidden / c->n_heads;
        if (c->arch != FR_ARCH_QWEN3 && c->hidden % c->n_heads && !item(root, "head_dim"))
            st = fr_error_set(err, FR_ERR_FORMAT,
                              "%s: field 'head_dim' is missing and hidden_size %d is not a "
                              "multiple of num_attention_heads %d",
                              file, c->hidden, c->n_heads);
        STEP(get_int(&p, root, "", "head_dim", false, def_hd, 2, 1 << 16, &c->head_dim));
    }
    const long def_ctx[FR_ARCH_COUNT] = {2048, 32768, 32768, 4096 * 32};
    STEP(get_int(&p, root, "", "max_position_embeddings", false, def_ctx[c->arch], 1, big,
                 &c->max_pos));
    STEP(get_num(&p, root, "", "rms_norm_eps", false, 1e-6, 0.0, 1.0, &c->norm_eps));
    if (st == FR_OK) {
        const cJSON *act = item(root, "hidden_act");
        if (!act) act = item(root, "hidden_activation");
        if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu")))
            st = fr_error_set(err, FR_ERR_UNSUPPORTED,
                              "%s: field 'hidden_act': only \"silu\" is supported", file);
    }
    STEP(parse_rope(&p, root, c));
    bool attn_bias = false;
    STEP(get_bool(&p, root, "attention_bias", false, &attn_bias));
    STEP(get_bool(&p, root, "mlp_bias", false, &c->mlp_bias));
    STEP(get_bool(&p, root, "tie_word_embeddings", false, &c->tie_embeddings));
    STEP(get_bool(&p, root, "use_layer_scale", false, &c->layer_scale));
    if (st == FR_OK) {
        c->qk_norm = c->arch == FR_ARCH_QWEN3;
        /* Qwen2 hard-wires q/k/v biases; Llama and Qwen3 put attention_bias on q/k/v/o */
        c->qkv_bias = c->arch == FR_ARCH_QWEN2 || attn_bias;
        c->o_bias = c->arch != FR_ARCH_QWEN2 && attn_bias;
        if (c->arch != FR_ARCH_LLAMA) c->mlp_bias = false;
    }
    STEP(parse_windows(&p, root, c));
    bool found;
    STEP(parse_eos(&p, root, c, &found));
    STEP(get_int(&p, root, "", "bos_token_id", false, -1, 0, 2147483646, &c->bos));
    STEP(fr_config_validate(c, file, err));
#undef STEP
    cJSON_Delete(root);
    return st;
}

/* The sampling defaults of generation_config.json; only fields present (and not null) count. */
static fr_status parse_sampling(pctx *p, const cJSON *root, fr_config *c) {
    double d;
    c->gen.has_do_sample = item(root, "do_sample") != NULL;
    FR_TRY(get_bool(p, root, "do_sample", false, &c->gen.do_sample));
    c->gen.has_temperature = item(root, "temperature") != NULL;
    FR_TRY(get_num(p, root, "", "temperature", false, 1.0, 0.0, 1e6, &d));
    c->gen.temperature = (float)d;
    c->gen.has_top_p = item(root, "top_p") != NULL;
    FR_TRY(get_num(p, root, "", "top_p", false, 1.0, 0.0, 1.0, &d));
    c->gen.top_p = (float)d;
    c->gen.has_min_p = item(root, "min_p") != NULL;
    FR_TRY(get_num(p, root, "", "min_p", false, 0.0, 0.0, 1.0, &d));
    c->gen.min_p = (float)d;
    c->gen.has_repeat_penalty = item(root, "repetition_penalty") != NULL;
    FR_TRY(get_num(p, root, "", "repetition_penalty", false, 1.0, 1e-6, 1e6, &d));
    c->gen.repeat_penalty = (float)d;
    c->gen.has_top_k = item(root, "top_k") != NULL;
    FR_TRY(get_int(p, root, "", "top_k", false, 0, 0, 1 << 30, &c->gen.top_k));
    return FR_OK;
}

fr_status fr_config_parse_generation(const char *json, const char *file, fr_config *c,
                                     fr_error *err) {
    pctx p = {file, err};
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fr_error_set(err, FR_ERR_FORMAT, "%s: malformed JSON", file);
    }
    bool found;
    fr_status st = parse_eos(&p, root, c, &found);
    if (!st) st = parse_sampling(&p, root, c);
    cJSON_Delete(root);
    return st;
}

fr_status fr_config_validate(const fr_config *c, const char *file, fr_error *err) {
    if (c->arch < 0 || c->arch >= FR_ARCH_COUNT)
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "%s: unknown architecture", file);
    if (c->n_layers < 1 || c->n_layers > FR_MAX_LAYERS)
        return fr_error_set(err, FR_ERR_FORMAT, "%s: num_hidden_layers %d outside [1, %d]", file,
                            c->n_layers, FR_MAX_LAYERS);
    if (c->hidden < 1 || c->n_heads < 1 || c->n_kv_heads < 1 || c->intermediate < 1 ||
        c->vocab < 1 || c->max_pos < 1)
        return fr_error_set(err, FR_ERR_FORMAT, "%s: sizes must be positive", file);
    if (c->n_heads % c->n_kv_heads)
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: num_attention_heads %d is not a multiple of num_key_value_heads "
                            "%d",
                            file, c->n_heads, c->n_kv_heads);
    if (c->head_dim < 2 || c->head_dim % 2)
        return fr_error_set(err, FR_ERR_FORMAT, "%s: head_dim %d must be even and >= 2", file,
                            c->head_dim);
    /* keep every product the forward computes comfortably inside int64 and int */
    if ((int64_t)c->n_heads * c->head_dim > (1 << 24) || c->rope.head_dim != c->head_dim)
        return fr_error_set(err, FR_ERR_FORMAT, "%s: heads * head_dim %lld out of range", file,
                            (long long)c->n_heads * c->head_dim);
    if (!(c->norm_eps >= 0) || !(c->rope.theta > 0))
        return fr_error_set(err, FR_ERR_FORMAT, "%s: rms_norm_eps or rope_theta out of range",
                            file);
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos[i] >= c->vocab)
            return fr_error_set(err, FR_ERR_FORMAT, "%s: eos_token_id %d >= vocab_size %d", file,
                                c->eos[i], c->vocab);
    return FR_OK;
}

static fr_status read_small_file(const char *path, char **out, bool *missing, fr_error *err) {
    *out = NULL;
    *missing = false;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) {
            *missing = true;
            return fr_error_set(err, FR_ERR_NOT_FOUND, "%s: file not found", path);
        }
        return fr_error_set(err, FR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 16 * 1024 * 1024) {
        fclose(f);
        return fr_error_set(err, FR_ERR_FORMAT, "%s: not a regular file under 16 MB", path);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!buf || got != (size_t)st.st_size) {
        free(buf);
        return fr_error_set(err, buf ? FR_ERR_IO : FR_ERR_NOMEM, "%s: cannot read", path);
    }
    buf[got] = 0;
    *out = buf;
    return FR_OK;
}

fr_status fr_config_load_hf(const char *dir, fr_config *cfg, fr_error *err) {
    char path[4096];
    char *text;
    bool missing;
    snprintf(path, sizeof path, "%s/config.json", dir);
    fr_status st = read_small_file(path, &text, &missing, err);
    if (st) return st;
    st = fr_config_parse_hf(text, path, cfg, err);
    free(text);
    if (st) return st;
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    fr_error e2;
    st = read_small_file(path, &text, &missing, &e2);
    if (st) {
        if (missing) return FR_OK; /* optional file */
        if (err) *err = e2;
        return st;
    }
    st = fr_config_parse_generation(text, path, cfg, err);
    free(text);
    if (!st) st = fr_config_validate(cfg, path, err);
    return st;
}
