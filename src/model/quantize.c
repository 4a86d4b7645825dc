/* `ferrum quantize` (see quantize.h): input tensors -> type choice -> streamed GGUF output. */
#include "model/quantize.h"

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/outfile.h"
#include "core/quant.h"
#include "core/threadpool.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/safetensors.h"
#include "tokenizer/tok_gguf.h"

/* ---------------------------------------------------------------- targets and type choice */

static const fr_quant_target targets[] = {
    {"F32", FR_DTYPE_F32, FR_QUANT_MIX_NONE, 0},
    {"F16", FR_DTYPE_F16, FR_QUANT_MIX_NONE, 1},
    {"BF16", FR_DTYPE_BF16, FR_QUANT_MIX_NONE, 32},
    {"Q8_0", FR_DTYPE_Q8_0, FR_QUANT_MIX_NONE, 7},
    {"Q4_0", FR_DTYPE_Q4_0, FR_QUANT_MIX_NONE, 2},
    {"Q4_1", FR_DTYPE_Q4_1, FR_QUANT_MIX_NONE, 3},
    {"Q5_0", FR_DTYPE_Q5_0, FR_QUANT_MIX_NONE, 8},
    {"Q5_1", FR_DTYPE_Q5_1, FR_QUANT_MIX_NONE, 9},
    {"Q4_K", FR_DTYPE_Q4_K, FR_QUANT_MIX_NONE, 14},
    {"Q5_K", FR_DTYPE_Q5_K, FR_QUANT_MIX_NONE, 16},
    {"Q6_K", FR_DTYPE_Q6_K, FR_QUANT_MIX_NONE, 18},
    {"Q4_K_M", FR_DTYPE_Q4_K, FR_QUANT_MIX_K_M, 15},
    {"Q5_K_M", FR_DTYPE_Q5_K, FR_QUANT_MIX_K_M, 17},
};
#define N_TARGETS (sizeof targets / sizeof targets[0])

const fr_quant_target *fr_quant_target_find(const char *name) {
    for (size_t i = 0; name && i < N_TARGETS; i++)
        if (!strcasecmp(name, targets[i].name)) return &targets[i];
    return NULL;
}

const char *fr_quant_target_list(void) {
    return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q4_K_M, Q5_K_M";
}

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

static int block_of(fr_dtype t) {
    return fr_dtype_get(t)->block_elems;
}

static bool use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* "blk.N." -> N, else -1 */
static int layer_of(const char *name) {
    if (strncmp(name, "blk.", 4)) return -1;
    char *end;
    long v = strtol(name + 4, &end, 10);
    return end != name + 4 && *end == '.' && v >= 0 && v < FR_MAX_LAYERS ? (int)v : -1;
}

fr_dtype fr_quant_pick_type(const fr_quant_target *t, const char *name, int ndim,
                            const int64_t *shape, int n_layers, bool has_output) {
    if (ndim < 2 || !ends_with(name, "weight") || strstr(name, "_norm.weight") ||
        !strcmp(name, "rope_freqs.weight"))
        return FR_DTYPE_F32;
    const fr_dtype base = t->base;
    if (!fr_dtype_get(base)->quantized) return base;
    const int64_t cols = shape[ndim - 1];
    fr_dtype type = base;
    const int layer = layer_of(name);
    if (!strcmp(name, "output.weight") || (!has_output && !strcmp(name, "token_embd.weight"))) {
        if (cols % block_of(base))
            type = FR_DTYPE_Q8_0;
        else if (base != FR_DTYPE_Q8_0)
            type = FR_DTYPE_Q6_K;
    } else if (t->mix == FR_QUANT_MIX_K_M && layer >= 0 &&
               (ends_with(name, ".attn_v.weight") || ends_with(name, ".ffn_down.weight"))) {
        if (use_more_bits(layer, n_layers)) type = FR_DTYPE_Q6_K;
    }
    if (cols % block_of(type)) {
        switch (type) {
        case FR_DTYPE_Q4_K:
            type = FR_DTYPE_Q5_0;
            break;
        case FR_DTYPE_Q5_K:
            type = FR_DTYPE_Q5_1;
            break;
        case FR_DTYPE_Q6_K:
            type = FR_DTYPE_Q8_0;
            break;
        default:
            type = FR_DTYPE_F16;
            break;
        }
        if (cols % block_of(type)) type = FR_DTYPE_F16;
    }
    return type;
}

/* ---------------------------------------------------------------- input tensors */

typedef struct {
    char name[128]; /* GGUF name */
    fr_dtype src_dtype;
    const char *src_dtype_name;
    int ndim;
    int64_t shape[FR_GGUF_MAX_DIMS];
    const void *data;
    int64_t perm_heads; /* > 0: llama q/k rows to permute into GGUF order (HF input) */
    fr_dtype dtype;     /* output type */
} in_tensor;

typedef struct {
    const char *in_path;
    in_tensor *ts;
    int n, cap;
    fr_gguf *g;            /* GGUF input */
    fr_weight_source *src; /* HF input */
    float *rope_freqs;     /* llama3 factors written as rope_freqs.weight */
    int n_layers, head_dim;
    bool has_output;
    fr_error *err;
} job;

static fr_status add_input(job *j, const char *name, fr_dtype dt, const char *dt_name, int ndim,
                           const int64_t *shape, const void *data, int64_t perm_heads) {
    if (ndim > FR_GGUF_MAX_DIMS || ndim < 1)
        return fr_error_set(j->err, FR_ERR_UNSUPPORTED, "%s: tensor %s: %d dimensions", j->in_path,
                            name, ndim);
    if (dt != FR_DTYPE_F32 && dt != FR_DTYPE_F16 && dt != FR_DTYPE_BF16 &&
        (dt == FR_DTYPE_COUNT || dt == FR_DTYPE_I32 || !fr_dtype_get(dt)->quantized))
        return fr_error_set(j->err, FR_ERR_UNSUPPORTED,
                            "%s: tensor %s: dtype %s cannot be converted (f32, f16, bf16 or a "
                            "quantized type ferrum reads)",
                            j->in_path, name, dt_name ? dt_name : "?");
    if (shape[ndim - 1] % block_of(dt))
        return fr_error_set(j->err, FR_ERR_FORMAT, "%s: tensor %s: rows are not whole blocks",
                            j->in_path, name);
    if (j->n == j->cap) {
        int cap = j->cap ? 2 * j->cap : 64;
        in_tensor *p = realloc(j->ts, sizeof *p * (size_t)cap);
        if (!p) return fr_error_set(j->err, FR_ERR_NOMEM, "%s: out of memory", j->in_path);
        j->ts = p;
        j->cap = cap;
    }
    in_tensor *t = &j->ts[j->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->src_dtype = dt;
    t->src_dtype_name = dt_name;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->data = data;
    t->perm_heads = perm_heads;
    return FR_OK;
}

static fr_status collect_gguf(job *j) {
    const size_t n = fr_gguf_tensor_count(j->g);
    int max_layer = -1;
    for (size_t i = 0; i < n; i++) {
        const fr_gguf_tensor *t = fr_gguf_tensor_at(j->g, i);
        if (t->dtype == FR_DTYPE_COUNT)
            return fr_error_set(j->err, FR_ERR_UNSUPPORTED,
                                "%s: tensor %s: GGML type %s is not supported by ferrum",
                                j->in_path, t->name, t->type_name ? t->type_name : "?");
        if (layer_of(t->name) > max_layer) max_layer = layer_of(t->name);
        if (!strcmp(t->name, "output.weight")) j->has_output = true;
        FR_TRY(add_input(j, t->name, t->dtype, t->type_name, t->ndim, t->shape, t->data, 0));
    }
    j->n_layers = max_layer + 1;
    fr_gguf_str arch;
    char key[160];
    uint32_t bc;
    if (!fr_gguf_get_str(j->g, "general.architecture", &arch, NULL) &&
        (snprintf(key, sizeof key, "%s.block_count", arch.s), 1) &&
        !fr_gguf_get_u32(j->g, key, &bc, NULL) && bc > 0 && bc <= FR_MAX_LAYERS)
        j->n_layers = (int)bc;
    return FR_OK;
}

static const char *const hf_layer_parts[] = {
    "input_layernorm.weight",  "self_attn.q_proj.weight", "self_attn.q_proj.bias",
    "self_attn.k_proj.weight", "self_attn.k_proj.bias",   "self_attn.v_proj.weight",
    "self_attn.v_proj.bias",   "self_attn.o_proj.weight", "self_attn.o_proj.bias",
    "self_attn.q_norm.weight", "self_attn.k_norm.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",    "mlp.gate_proj.bias",      "mlp.up_proj.weight",
    "mlp.up_proj.bias",        "mlp.down_proj.weight",    "mlp.down_proj.bias",
};

static fr_status add_hf(job *j, const fr_config *c, const char *hf, bool *used) {
    const fr_weight *w = fr_weights_find(j->src, hf);
    if (!w) return FR_OK;
    used[w - j->src->weights] = true;
    char gg[128];
    if (!fr_gguf_name_from_hf(hf, gg, sizeof gg))
        return fr_error_set(j->err, FR_ERR_UNSUPPORTED, "%s: tensor %s has no GGUF name",
                            fr_weight_file(j->src, w), hf);
    int64_t heads = 0;
    if (c->arch == FR_ARCH_LLAMA || c->arch == FR_ARCH_MISTRAL) {
        if (strstr(hf, ".q_proj.")) heads = c->n_heads;
        if (strstr(hf, ".k_proj.")) heads = c->n_kv_heads;
    }
    if (heads && (w->ndim < 1 || w->shape[0] != heads * c->head_dim))
        return fr_error_set(j->err, FR_ERR_FORMAT,
                            "%s: tensor %s: %lld rows, expected %lld heads of %d for the q/k "
                            "permutation",
                            fr_weight_file(j->src, w), hf, (long long)w->shape[0], (long long)heads,
                            c->head_dim);
    FR_TRY(add_input(j, gg, w->dtype, w->dtype_name, w->ndim, w->shape, w->data, heads));
    return FR_OK;
}

static fr_status collect_hf(job *j, const fr_config *c) {
    bool *used = calloc((size_t)j->src->n_weights + 1, 1);
    if (!used) return fr_error_set(j->err, FR_ERR_NOMEM, "%s: out of memory", j->in_path);
    fr_status st = FR_OK;
    static const char *const required[] = {"model.embed_tokens.weight", "model.norm.weight",
                                           "lm_head.weight"};
    for (int i = 0; i < 3 && !st; i++)
        if (!fr_weights_find(j->src, required[i]) && (i < 2 || !c->tie_embeddings))
            st = fr_error_set(j->err, FR_ERR_NOT_FOUND, "%s: tensor %s is missing", j->in_path,
                              required[i]);
    if (!st) st = add_hf(j, c, "model.embed_tokens.weight", used);
    if (!st && c->rope.factor > 0) {
        j->rope_freqs = malloc(sizeof(float) * (size_t)(c->head_dim / 2));
        if (!j->rope_freqs) st = fr_error_set(j->err, FR_ERR_NOMEM, "out of memory");
        if (!st) {
            fr_gguf_rope_freq_factors(&c->rope, j->rope_freqs);
            int64_t shape[1] = {c->head_dim / 2};
            st = add_input(j, "rope_freqs.weight", FR_DTYPE_F32, "F32", 1, shape, j->rope_freqs, 0);
        }
    }
    char hf[160];
    for (int i = 0; i < c->n_layers && !st; i++)
        for (size_t k = 0; k < sizeof hf_layer_parts / sizeof hf_layer_parts[0] && !st; k++) {
            snprintf(hf, sizeof hf, "model.layers.%d.%s", i, hf_layer_parts[k]);
            st = add_hf(j, c, hf, used);
        }
    if (!st) st = add_hf(j, c, "model.norm.weight", used);
    if (!st && !c->tie_embeddings) {
        st = add_hf(j, c, "lm_head.weight", used);
        j->has_output = true;
    }
    /* every other tensor would be lost: refuse rather than write a different model */
    for (int i = 0; i < j->src->n_weights && !st; i++) {
        const fr_weight *w = &j->src->weights[i];
        if (used[i] || ends_with(w->name, "rotary_emb.inv_freq") ||
            (c->tie_embeddings && !strcmp(w->name, "lm_head.weight")))
            continue;
        st = fr_error_set(j->err, FR_ERR_UNSUPPORTED, "%s: tensor %s has no GGUF counterpart",
                          fr_weight_file(j->src, w), w->name);
    }
    free(used);
    return st;
}

/* ---------------------------------------------------------------- metadata */

static fr_status meta_hf(job *j, const fr_config *c, const char *dir, fr_gguf_writer *w,
                         const fr_quant_target *t) {
    fr_error *e = j->err;
    const char *arch = fr_gguf_arch_name(c->arch);
    if (c->layer_scale)
        return fr_error_set(e, FR_ERR_UNSUPPORTED, "%s: layer-scale models have no GGUF layout",
                            dir);
    bool windowed = false;
    for (int i = 0; i < c->n_layers; i++)
        windowed |= c->layer_window[i] != 0;
    if (windowed && c->arch != FR_ARCH_MISTRAL)
        return fr_error_set(e, FR_ERR_UNSUPPORTED,
                            "%s: sliding-window layers of %s have no GGUF key ferrum writes", dir,
                            c->arch_name);
    if (!arch)
        return fr_error_set(e, FR_ERR_UNSUPPORTED, "%s: architecture %s has no GGUF mapping", dir,
                            c->arch_name);
    char key[160], name[256];
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    snprintf(name, sizeof name, "%s", base);
#define K(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
    FR_TRY(fr_gguf_writer_set_str(w, "general.architecture", arch, e));
    FR_TRY(fr_gguf_writer_set_str(w, "general.name", name, e));
    FR_TRY(fr_gguf_writer_set_u32(w, K("context_length"), (uint32_t)c->max_pos, e));
    FR_TRY(fr_gguf_writer_set_u32(w, K("embedding_length"), (uint32_t)c->hidden, e));
    FR_TRY(fr_gguf_writer_set_u32(w, K("block_count"), (uint32_t)c->n_layers, e));
    FR_TRY(fr_gguf_writer_set_u32(w, K("feed_forward_length"), (uint32_t)c->intermediate, e));
    FR_TRY(fr_gguf_writer_set_u32(w, K("attention.head_count"), (uint32_t)c->n_heads, e));
    FR_TRY(fr_gguf_writer_set_u32(w, K("attention.head_count_kv"), (uint32_t)c->n_kv_heads, e));
    FR_TRY(fr_gguf_writer_set_u32(w, K("attention.key_length"), (uint32_t)c->head_dim, e));
    FR_TRY(fr_gguf_writer_set_u32(w, K("attention.value_length"), (uint32_t)c->head_dim, e));
    FR_TRY(fr_gguf_writer_set_f32(w, K("attention.layer_norm_rms_epsilon"), (float)c->norm_eps, e));
    FR_TRY(fr_gguf_writer_set_f32(w, K("rope.freq_base"), (float)c->rope.theta, e));
    FR_TRY(fr_gguf_writer_set_u32(w, K("rope.dimension_count"), (uint32_t)c->head_dim, e));
    FR_TRY(fr_gguf_writer_set_u32(w, K("vocab_size"), (uint32_t)c->vocab, e));
    if (c->rope.linear_factor > 0) {
        FR_TRY(fr_gguf_writer_set_str(w, K("rope.scaling.type"), "linear", e));
        FR_TRY(
            fr_gguf_writer_set_f32(w, K("rope.scaling.factor"), (float)c->rope.linear_factor, e));
    }
    if (c->arch == FR_ARCH_MISTRAL && windowed)
        FR_TRY(fr_gguf_writer_set_u32(w, K("attention.sliding_window"), (uint32_t)c->sliding_window,
                                      e));
#undef K
    FR_TRY(fr_gguf_writer_set_u32(w, "general.file_type", (uint32_t)t->file_type, e));
    FR_TRY(fr_gguf_writer_set_u32(w, "general.quantization_version", 2, e));
    if (c->gen.has_temperature)
        FR_TRY(fr_gguf_writer_set_f32(w, "general.sampling.temp", c->gen.temperature, e));
    if (c->gen.has_top_k)
        FR_TRY(fr_gguf_writer_set_i32(w, "general.sampling.top_k", c->gen.top_k, e));
    if (c->gen.has_top_p)
        FR_TRY(fr_gguf_writer_set_f32(w, "general.sampling.top_p", c->gen.top_p, e));
    if (c->gen.has_min_p)
        FR_TRY(fr_gguf_writer_set_f32(w, "general.sampling.min_p", c->gen.min_p, e));
    if (c->gen.has_repeat_penalty)
        FR_TRY(
            fr_gguf_writer_set_f32(w, "general.sampling.penalty_repeat", c->gen.repeat_penalty, e));
    fr_status st = fr_tokenizer_json_to_gguf(dir, c->vocab, c->bos, c->eos, c->n_eos, w, e);
    if (st == FR_ERR_NOT_FOUND) {
        FR_LOG_W("%s: no tokenizer.json: the GGUF gets no tokenizer", dir);
        /* still record the end ids so the model stops where it should */
        if (c->bos >= 0)
            FR_TRY(fr_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", c->bos, e));
        if (c->n_eos > 0)
            FR_TRY(fr_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", c->eos[0], e));
        if (c->n_eos > 1)
            FR_TRY(fr_gguf_writer_set_u32(w, "tokenizer.ggml.eot_token_id", c->eos[1], e));
        st = FR_OK;
    }
    return st;
}

static fr_status meta_gguf(job *j, fr_gguf_writer *w, const fr_quant_target *t) {
    const size_t n = fr_gguf_kv_count(j->g);
    for (size_t i = 0; i < n; i++) {
        const fr_gguf_kv *kv = fr_gguf_kv_at(j->g, i);
        if (!strcmp(kv->key.s, "general.file_type") ||
            !strcmp(kv->key.s, "general.quantization_version"))
            continue;
        FR_TRY(fr_gguf_writer_set(w, kv->key.s, &kv->value, j->err));
    }
    FR_TRY(fr_gguf_writer_set_u32(w, "general.file_type", (uint32_t)t->file_type, j->err));
    return fr_gguf_writer_set_u32(w, "general.quantization_version", 2, j->err);
}

/* ---------------------------------------------------------------- conversion */

typedef struct {
    const in_tensor *t;
    int64_t rows, cols, head_dim;
    size_t src_row, dst_row;
    char *out;
    float *scratch; /* cols floats per thread */
    int64_t rows_per_task;
    pthread_mutex_t lock;
    int64_t bad_row; /* first row that failed, -1 */
    fr_error row_err;
} conv_args;

/* Source row of output row r: GGUF order from HF order for permuted q/k. */
static int64_t source_row(const conv_args *a, int64_t r) {
    if (!a->t->perm_heads) return r;
    const int64_t D = a->head_dim, h = r / D, k = r % D;
    return h * D + (k % 2) * (D / 2) + k / 2;
}

static void conv_task(void *varg, int64_t task, int thread) {
    conv_args *a = varg;
    const int64_t r0 = task * a->rows_per_task;
    const int64_t r1 = r0 + a->rows_per_task < a->rows ? r0 + a->rows_per_task : a->rows;
    float *f = a->scratch + (size_t)thread * (size_t)a->cols;
    for (int64_t r = r0; r < r1; r++) {
        const char *src = (const char *)a->t->data + (size_t)source_row(a, r) * a->src_row;
        char *dst = a->out + (size_t)r * a->dst_row;
        if (a->t->src_dtype == a->t->dtype) {
            memcpy(dst, src, a->dst_row);
            continue;
        }
        fr_dequantize_row(a->t->src_dtype, src, f, a->cols);
        fr_error e = {0};
        if (fr_quantize_row(a->t->dtype, f, dst, a->cols, &e)) {
            pthread_mutex_lock(&a->lock);
            if (a->bad_row < 0 || r < a->bad_row) {
                a->bad_row = r;
                a->row_err = e;
            }
            pthread_mutex_unlock(&a->lock);
            return;
        }
    }
}

static fr_status convert(job *j, fr_threadpool *pool, const in_tensor *t, char *out) {
    conv_args a = {.t = t, .out = out, .bad_row = -1, .head_dim = j->head_dim};
    a.cols = t->shape[t->ndim - 1];
    a.rows = 1;
    for (int d = 0; d < t->ndim - 1; d++)
        a.rows *= t->shape[d];
    /* a permuted vector moves single elements: treat it as rows of one */
    if (t->perm_heads && t->ndim == 1) {
        a.rows = a.cols;
        a.cols = 1;
    }
    a.src_row = fr_dtype_row_bytes(t->src_dtype, a.cols);
    a.dst_row = fr_dtype_row_bytes(t->dtype, a.cols);
    const int nt = fr_threadpool_size(pool);
    a.scratch = malloc(sizeof(float) * (size_t)a.cols * (size_t)nt);
    if (!a.scratch) return fr_error_set(j->err, FR_ERR_NOMEM, "%s: out of memory", j->in_path);
    pthread_mutex_init(&a.lock, NULL);
    /* tasks of about 1 M elements keep the pool busy without tiny jobs */
    a.rows_per_task = (1 << 20) / a.cols + 1;
    const int64_t n_tasks = (a.rows + a.rows_per_task - 1) / a.rows_per_task;
    fr_threadpool_run(pool, n_tasks, conv_task, &a);
    pthread_mutex_destroy(&a.lock);
    free(a.scratch);
    if (a.bad_row >= 0)
        return fr_error_set(j->err, FR_ERR_FORMAT, "%s: tensor %s row %lld: %s", j->in_path,
                            t->name, (long long)source_row(&a, a.bad_row), a.row_err.msg);
    return FR_OK;
}

/* ---------------------------------------------------------------- driver */

static bool is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Files of a Hugging Face folder that loading or converting a model reads (the safetensors
 * shards are every *.safetensors: an index may name any of them). */
static const char *const hf_model_files[] = {
    "config.json",           "generation_config.json",       "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json",      "chat_template.jinja",
    "chat_template.json",    "model.safetensors.index.json",
};

static bool is_model_file(const char *name) {
    for (size_t i = 0; i < sizeof hf_model_files / sizeof *hf_model_files; i++)
        if (!strcmp(name, hf_model_files[i])) return true;
    return ends_with(name, ".safetensors");
}

typedef struct {
    char **p;
    size_t n, cap;
    bool oom;
} path_list;

static void list_add(path_list *l, const char *dir, const char *name) {
    if (l->oom) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **p = realloc(l->p, cap * sizeof *p);
        if (!p) {
            l->oom = true;
            return;
        }
        l->p = p;
        l->cap = cap;
    }
    size_t a = dir ? strlen(dir) : 0, b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s) {
        l->oom = true;
        return;
    }
    if (dir) {
        memcpy(s, dir, a);
        s[a++] = '/';
    }
    memcpy(s + a, name, b + 1);
    l->p[l->n++] = s;
}

static fr_status list_folder(path_list *l, const char *dir, fr_error *err) {
    DIR *d = opendir(dir);
    if (!d) return fr_error_set(err, FR_ERR_IO, "%s: cannot list the folder", dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (is_model_file(e->d_name)) list_add(l, dir, e->d_name);
    closedir(d);
    return FR_OK;
}

static bool has_gguf_magic(const char *path) {
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    return got == 4 && !memcmp(magic, "GGUF", 4);
}

fr_status fr_model_input_files(const char *path, char ***files, size_t *n, fr_error *err) {
    *files = NULL;
    *n = 0;
    if (!path) return fr_error_set(err, FR_ERR_INVALID, "fr_model_input_files: no path");
    path_list l = {0};
    struct stat sb;
    fr_status st = FR_OK;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        st = list_folder(&l, path, err);
    } else {
        list_add(&l, NULL, path);
        /* a safetensors file is read with the config and tokenizer of its folder */
        if (!has_gguf_magic(path)) {
            const char *slash = strrchr(path, '/');
            char *dir =
                slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
            if (!dir)
                l.oom = true;
            else if (stat(dir, &sb) == 0)
                st = list_folder(&l, dir, err);
            free(dir);
        }
    }
    if (!st && l.oom) st = fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
    if (st) {
        fr_model_input_files_free(l.p, l.n);
        return st;
    }
    *files = l.p;
    *n = l.n;
    return FR_OK;
}

void fr_model_input_files_free(char **files, size_t n) {
    for (size_t i = 0; files && i < n; i++)
        free(files[i]);
    free(files);
}

static fr_status run(job *j, const char *in, fr_outfile *o, const fr_quant_target *target,
                     const fr_quantize_params *p) {
    const char *out = fr_outfile_name(o);
    fr_error *e = j->err;
    fr_gguf_writer *w = NULL;
    fr_threadpool *pool = NULL;
    char *buf = NULL;
    fr_status st = fr_gguf_writer_create(&w, e);
    if (st) return st;
    if (is_dir(in)) {
        fr_config c = {0};
        st = fr_config_load_hf(in, &c, e);
        if (!st) st = fr_safetensors_open(in, &j->src, e);
        j->head_dim = c.head_dim;
        if (!st) st = meta_hf(j, &c, in, w, target);
        if (!st) st = collect_hf(j, &c);
        j->n_layers = c.n_layers;
    } else {
        st = fr_gguf_open(in, &j->g, e);
        if (!st) st = meta_gguf(j, w, target);
        if (!st) st = collect_gguf(j);
    }
    size_t max_bytes = 0;
    int n_requant = 0;
    for (int i = 0; i < j->n && !st; i++) {
        in_tensor *t = &j->ts[i];
        t->dtype =
            fr_quant_pick_type(target, t->name, t->ndim, t->shape, j->n_layers, j->has_output);
        if (fr_dtype_get(t->src_dtype)->quantized && t->src_dtype != t->dtype &&
            t->dtype != FR_DTYPE_F32)
            n_requant++;
        int64_t rows = 1;
        for (int d = 0; d < t->ndim - 1; d++)
            rows *= t->shape[d];
        const size_t nb = fr_dtype_row_bytes(t->dtype, t->shape[t->ndim - 1]) * (size_t)rows;
        if (nb > max_bytes) max_bytes = nb;
        st = fr_gguf_writer_add_tensor(w, t->name, t->dtype, t->ndim, t->shape, NULL, e);
    }
    if (n_requant)
        FR_LOG_W("%s: %d tensors are quantized already: requantizing them loses accuracy", in,
                 n_requant);
    if (!st) {
        pool = fr_threadpool_create(p && p->n_threads > 0 ? p->n_threads : 0);
        buf = malloc(max_bytes ? max_bytes : 1);
        if (!pool || !buf) st = fr_error_set(e, FR_ERR_NOMEM, "%s: out of memory", out);
    }
    if (!st) st = fr_gguf_writer_begin_stream(w, fr_outfile_stream(o), out, e);
    size_t total_in = 0, total_out = 0;
    for (int i = 0; i < j->n && !st; i++) {
        const in_tensor *t = &j->ts[i];
        int64_t rows = 1;
        for (int d = 0; d < t->ndim - 1; d++)
            rows *= t->shape[d];
        const size_t nb = fr_dtype_row_bytes(t->dtype, t->shape[t->ndim - 1]) * (size_t)rows;
        st = convert(j, pool, t, buf);
        if (!st) st = fr_gguf_writer_write_data(w, buf, nb, e);
        const size_t ib = fr_dtype_row_bytes(t->src_dtype, t->shape[t->ndim - 1]) * (size_t)rows;
        total_in += ib;
        total_out += nb;
        if (!st && p && p->verbose)
            fprintf(stderr, "[%3d/%3d] %-36s %-5s -> %-5s %10.3f MiB\n", i + 1, j->n, t->name,
                    fr_dtype_name(t->src_dtype), fr_dtype_name(t->dtype), nb / 1048576.0);
    }
    if (!st) st = fr_gguf_writer_finish(w, e);
    if (!st && p && p->verbose)
        fprintf(stderr, "%d tensors, %.2f MiB -> %.2f MiB\n", j->n, total_in / 1048576.0,
                total_out / 1048576.0);
    free(buf);
    if (pool) fr_threadpool_destroy(pool);
    fr_gguf_writer_free(w);
    return st;
}

fr_status fr_quantize_model(const char *in, const char *out, const fr_quant_target *target,
                            const fr_quantize_params *params, fr_error *err) {
    if (!in || !out || !target)
        return fr_error_set(err, FR_ERR_INVALID, "fr_quantize_model: NULL argument");
    struct stat sb;
    if (stat(in, &sb) != 0)
        return fr_error_set(err, FR_ERR_NOT_FOUND, "%s: no such file or folder", in);
    char **inputs;
    size_t n_inputs;
    FR_TRY(fr_model_input_files(in, &inputs, &n_inputs, err));
    /* opened before any work so a refused output costs nothing */
    fr_outfile *o;
    fr_status st = fr_outfile_open(out, (const char *const *)inputs, n_inputs, &o, err);
    fr_model_input_files_free(inputs, n_inputs);
    if (st) return st;
    job j = {.in_path = in, .err = err};
    st = run(&j, in, o, target, params);
    /* the input stays mapped until the output is complete, which commit makes it */
    if (!st)
        st = fr_outfile_commit(o, err);
    else
        fr_outfile_abort(o);
    free(j.ts);
    free(j.rope_freqs);
    fr_gguf_close(j.g);
    fr_weights_free(j.src);
    return st;
}

fr_status fr_model_quantize(const char *in, const char *out, const char *type, int n_threads,
                            bool verbose, fr_error *err) {
    const fr_quant_target *t = fr_quant_target_find(type);
    if (!t)
        return fr_error_set(err, FR_ERR_INVALID, "unknown quantization type '%s' (one of %s)",
                            type ? type : "(null)", fr_quant_target_list());
    fr_quantize_params p = {.n_threads = n_threads, .verbose = verbose};
    return fr_quantize_model(in, out, t, &p, err);
}

const char *fr_model_quantize_types(void) {
    return fr_quant_target_list();
}
