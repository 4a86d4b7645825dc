/* Model loading: config + weight source -> tensors bound by canonical name, every shape and dtype
 * checked against the config. Matrices stay where the source mapped them (wrapped, not copied,
 * on CPU); vectors are converted to f32 into one small buffer because the ops want f32 there. */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "model/gguf_model.h"
#include "model/safetensors.h"

fr_model_params fr_model_default_params(void) {
    fr_model_params p = {0};
    p.backend = "cpu";
    return p;
}

/* ---------------------------------------------------------------- binding */

typedef struct {
    fr_model *m;
    fr_error *err;
    float *vec_host; /* staging for the f32 vectors */
    size_t vec_used; /* floats */
    size_t vec_cap;
    bool counting; /* first pass: only sum up vector sizes */
} binder;

/* The file to name in messages about a tensor that is absent or wrong. */
static const char *src_file(const fr_model *m, const fr_weight *w) {
    if (w) return fr_weight_file(m->src, w);
    return m->src->n_regions == 1 ? m->src->regions[0].file : m->src->path;
}

static void note_dtype(fr_model *m, const fr_weight *w) {
    const char *d = fr_dtype_name(w->dtype);
    char tag[24];
    snprintf(tag, sizeof tag, "+%s+", d);
    char have[80];
    snprintf(have, sizeof have, "+%s+", m->dtypes);
    if (strstr(have, tag)) return;
    size_t len = strlen(m->dtypes);
    snprintf(m->dtypes + len, sizeof m->dtypes - len, "%s%s", len ? "+" : "", d);
}

static fr_status find(binder *b, const char *name, const fr_weight **out) {
    const fr_weight *w = fr_weights_find(b->m->src, name);
    if (!w)
        return fr_error_set(b->err, FR_ERR_NOT_FOUND, "%s: tensor %s is missing (required by %s)",
                            src_file(b->m, NULL), name, b->m->cfg.arch_name);
    if (w->dtype == FR_DTYPE_COUNT || w->dtype == FR_DTYPE_I32)
        return fr_error_set(b->err, FR_ERR_UNSUPPORTED,
                            "%s: tensor %s: dtype %s cannot hold weights", src_file(b->m, w), name,
                            w->dtype_name);
    *out = w;
    return FR_OK;
}

static fr_status shape_error(binder *b, const fr_weight *w, int ndim, const int64_t *want,
                             const char *why) {
    char got[96], exp[96];
    int k = snprintf(got, sizeof got, "[");
    for (int d = 0; d < w->ndim; d++)
        k += snprintf(got + k, sizeof got - (size_t)k, "%s%lld", d ? ", " : "",
                      (long long)w->shape[d]);
    snprintf(got + k, sizeof got - (size_t)k, "]");
    k = snprintf(exp, sizeof exp, "[");
    for (int d = 0; d < ndim; d++)
        k += snprintf(exp + k, sizeof exp - (size_t)k, "%s%lld", d ? ", " : "", (long long)want[d]);
    snprintf(exp + k, sizeof exp - (size_t)k, "]");
    return fr_error_set(b->err, FR_ERR_FORMAT,
                        "%s: tensor %s: shape %s does not match the config, expected %s (%s)",
                        src_file(b->m, w), w->name, got, exp, why);
}

/* A [rows, cols] matrix in any weight dtype, quantized ones included. */
static fr_status bind_matrix(binder *b, const char *name, int64_t rows, int64_t cols,
                             const char *why, fr_tensor *t) {
    const fr_weight *w;
    fr_status st = find(b, name, &w);
    if (st) return st;
    if (w->ndim != 2 || w->shape[0] != rows || w->shape[1] != cols)
        return shape_error(b, w, 2, (int64_t[]){rows, cols}, why);
    size_t row = fr_dtype_row_bytes(w->dtype, cols);
    if (row == 0 || w->nbytes != (size_t)rows * row)
        return fr_error_set(b->err, FR_ERR_FORMAT,
                            "%s: tensor %s: %zu bytes do not hold [%lld, %lld] of %s",
                            src_file(b->m, w), name, w->nbytes, (long long)rows, (long long)cols,
                            fr_dtype_name(w->dtype));
    if (b->counting) return FR_OK;
    *t = fr_tensor_2d(&b->m->region_bufs[w->region], w->offset + b->m->region_shift[w->region],
                      w->dtype, rows, cols);
    b->m->n_params += rows * cols;
    b->m->weight_bytes += w->nbytes;
    note_dtype(b->m, w);
    return FR_OK;
}

/* A [n] vector stored as f32/f16/bf16, converted to f32. */
static fr_status bind_vector(binder *b, const char *name, int64_t n, const char *why,
                             fr_tensor *t) {
    const fr_weight *w;
    fr_status st = find(b, name, &w);
    if (st) return st;
    if (w->ndim != 1 || w->shape[0] != n) return shape_error(b, w, 1, (int64_t[]){n}, why);
    if (w->dtype != FR_DTYPE_F32 && w->dtype != FR_DTYPE_F16 && w->dtype != FR_DTYPE_BF16)
        return fr_error_set(b->err, FR_ERR_UNSUPPORTED,
                            "%s: tensor %s: dtype %s not supported for a vector (f32, f16, bf16)",
                            src_file(b->m, w), name, fr_dtype_name(w->dtype));
    if (w->nbytes != (size_t)n * (w->dtype == FR_DTYPE_F32 ? 4 : 2))
        return fr_error_set(b->err, FR_ERR_FORMAT, "%s: tensor %s: %zu bytes for %lld elements",
                            src_file(b->m, w), name, w->nbytes, (long long)n);
    /* keep every vector 64-byte aligned inside the buffer */
    const size_t start = fr_align_up(b->vec_used, 16);
    b->vec_used = start + (size_t)n;
    if (b->counting) return FR_OK;
    float *dst = b->vec_host + start;
    for (int64_t i = 0; i < n; i++) {
        const char *p = (const char *)w->data;
        if (w->dtype == FR_DTYPE_F32)
            memcpy(&dst[i], p + 4 * i, 4);
        else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = w->dtype == FR_DTYPE_F16 ? fr_f16_to_f32(h) : fr_bf16_to_f32(h);
        }
    }
    *t = fr_tensor_1d(&b->m->vec_buf, start * sizeof(float), FR_DTYPE_F32, n);
    b->m->n_params += n;
    b->m->weight_bytes += w->nbytes;
    note_dtype(b->m, w);
    return FR_OK;
}

static fr_status bind_layer(binder *b, int i, fr_layer *L) {
    const fr_config *c = &b->m->cfg;
    const int64_t C = c->hidden, F = c->intermediate, D = c->head_dim;
    const int64_t QD = (int64_t)c->n_heads * D, KD = (int64_t)c->n_kv_heads * D;
    char n[160];
#define NAME(fmt) (snprintf(n, sizeof n, "model.layers.%d." fmt, i), n)
    FR_TRY(bind_vector(b, NAME("input_layernorm.weight"), C, "hidden_size", &L->attn_norm));
    FR_TRY(bind_vector(b, NAME("post_attention_layernorm.weight"), C, "hidden_size", &L->mlp_norm));
    FR_TRY(bind_matrix(b, NAME("self_attn.q_proj.weight"), QD, C,
                       "num_attention_heads * head_dim, hidden_size", &L->wq));
    FR_TRY(bind_matrix(b, NAME("self_attn.k_proj.weight"), KD, C,
                       "num_key_value_heads * head_dim, hidden_size", &L->wk));
    FR_TRY(bind_matrix(b, NAME("self_attn.v_proj.weight"), KD, C,
                       "num_key_value_heads * head_dim, hidden_size", &L->wv));
    FR_TRY(bind_matrix(b, NAME("self_attn.o_proj.weight"), C, QD,
                       "hidden_size, num_attention_heads * head_dim", &L->wo));
    if (c->qkv_bias) {
        FR_TRY(bind_vector(b, NAME("self_attn.q_proj.bias"), QD, "num_attention_heads * head_dim",
                           &L->bq));
        FR_TRY(bind_vector(b, NAME("self_attn.k_proj.bias"), KD, "num_key_value_heads * head_dim",
                           &L->bk));
        FR_TRY(bind_vector(b, NAME("self_attn.v_proj.bias"), KD, "num_key_value_heads * head_dim",
                           &L->bv));
    }
    if (c->o_bias) FR_TRY(bind_vector(b, NAME("self_attn.o_proj.bias"), C, "hidden_size", &L->bo));
    if (c->qk_norm) {
        FR_TRY(bind_vector(b, NAME("self_attn.q_norm.weight"), D, "head_dim", &L->q_norm));
        FR_TRY(bind_vector(b, NAME("self_attn.k_norm.weight"), D, "head_dim", &L->k_norm));
    }
    FR_TRY(bind_matrix(b, NAME("mlp.gate_proj.weight"), F, C, "intermediate_size, hidden_size",
                       &L->w_gate));
    FR_TRY(bind_matrix(b, NAME("mlp.up_proj.weight"), F, C, "intermediate_size, hidden_size",
                       &L->w_up));
    FR_TRY(bind_matrix(b, NAME("mlp.down_proj.weight"), C, F, "hidden_size, intermediate_size",
                       &L->w_down));
    if (c->mlp_bias) {
        FR_TRY(bind_vector(b, NAME("mlp.gate_proj.bias"), F, "intermediate_size", &L->b_gate));
        FR_TRY(bind_vector(b, NAME("mlp.up_proj.bias"), F, "intermediate_size", &L->b_up));
        FR_TRY(bind_vector(b, NAME("mlp.down_proj.bias"), C, "hidden_size", &L->b_down));
    }
    if (c->layer_scale) {
        FR_TRY(
            bind_vector(b, NAME("self_attn_layer_scale.scale"), C, "hidden_size", &L->attn_scale));
        FR_TRY(bind_vector(b, NAME("mlp_layer_scale.scale"), C, "hidden_size", &L->mlp_scale));
    }
#undef NAME
    return FR_OK;
}

static fr_status bind_all(binder *b) {
    fr_model *m = b->m;
    const fr_config *c = &m->cfg;
    FR_TRY(bind_matrix(b, "model.embed_tokens.weight", c->vocab, c->hidden,
                       "vocab_size, hidden_size", &m->embed));
    for (int i = 0; i < c->n_layers; i++)
        FR_TRY(bind_layer(b, i, &m->layers[i]));
    FR_TRY(bind_vector(b, "model.norm.weight", c->hidden, "hidden_size", &m->final_norm));
    if (c->tie_embeddings) {
        m->lm_head = m->embed;
    } else {
        if (!fr_weights_find(m->src, "lm_head.weight"))
            return fr_error_set(b->err, FR_ERR_NOT_FOUND,
                                "%s: tensor lm_head.weight is missing and config field "
                                "'tie_word_embeddings' is false",
                                src_file(m, NULL));
        FR_TRY(bind_matrix(b, "lm_head.weight", c->vocab, c->hidden, "vocab_size, hidden_size",
                           &m->lm_head));
    }
    return FR_OK;
}

/* ---------------------------------------------------------------- load / free */

void fr_model_free(fr_model *m) {
    if (!m) return;
    fr_buffer_free(&m->vec_buf);
    for (int i = 0; i < m->n_region_bufs; i++)
        fr_buffer_free(&m->region_bufs[i]);
    free(m->region_bufs);
    free(m->region_shift);
    free(m->layers);
    fr_weights_free(m->src);
    if (m->backend) fr_backend_destroy(m->backend);
    pthread_mutex_destroy(&m->lock);
    free(m->path);
    free(m);
}

/* Reads one byte of every page of every region, reporting progress, so the file is resident
 * before the first forward (on CPU the weights are used straight from the mapping). */
static void page_in(const fr_weight_source *src, const fr_model_params *params) {
    const size_t chunk = (size_t)8 << 20, page = 4096;
    size_t total = 0, done = 0;
    for (int i = 0; i < src->n_regions; i++)
        total += src->regions[i].size;
    params->progress(params->progress_user, 0, total);
    volatile unsigned char sink = 0;
    for (int i = 0; i < src->n_regions; i++) {
        const unsigned char *base = src->regions[i].base;
        const size_t size = src->regions[i].size;
        for (size_t off = 0; off < size; off += chunk) {
            const size_t n = size - off < chunk ? size - off : chunk;
            for (size_t k = 0; k < n; k += page)
                sink ^= base[off + k];
            done += n;
            params->progress(params->progress_user, done, total);
        }
    }
    (void)sink;
}

fr_status fr_model_load_from_source(const char *path, const fr_config *cfg, fr_weight_source *src,
                                    const fr_model_params *params, fr_model **out, fr_error *err) {
    *out = NULL;
    fr_model_params defaults = fr_model_default_params();
    if (!params) params = &defaults;
    if ((unsigned)params->kv_type > FR_KV_AUTO) {
        fr_weights_free(src);
        return fr_error_set(err, FR_ERR_INVALID,
                            "%s: model params: kv_type %d is not an fr_kv_type", path,
                            (int)params->kv_type);
    }
    fr_model *m = calloc(1, sizeof *m);
    if (!m) {
        fr_weights_free(src);
        return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
    }
    pthread_mutex_init(&m->lock, NULL);
    m->src = src;
    m->cfg = *cfg;
    m->kv_type = params->kv_type;
    m->path = strdup(path);
    m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
    m->region_bufs =
        calloc((size_t)(src->n_regions > 0 ? src->n_regions : 1), sizeof *m->region_bufs);
    m->region_shift =
        calloc((size_t)(src->n_regions > 0 ? src->n_regions : 1), sizeof *m->region_shift);
    fr_status st = FR_OK;
    if (!m->path || !m->layers || !m->region_bufs || !m->region_shift)
        st = fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
    if (!st) st = fr_config_validate(cfg, path, err);

    /* pass 1: every tensor present with the right shape; size the vector buffer */
    binder b = {.m = m, .err = err, .counting = true};
    if (!st) st = bind_all(&b);

    if (!st) {
        fr_backend_params bp = {.n_threads = params->n_threads,
                                .device = params->device,
                                .quant_act = params->quant_act};
        st = fr_backend_create(params->backend ? params->backend : "cpu", &bp, &m->backend, err);
    }
    if (!st && params->progress) page_in(src, params);
    /* wrap each mapped file once; tensors are views into these (unused buffers stay zeroed) */
    m->n_region_bufs = src->n_regions;
    for (int i = 0; !st && i < src->n_regions; i++) {
        if (src->regions[i].size == 0) continue;
        /* the region's first tensor on an aligned address (then, in practice, all of them) */
        size_t first = src->regions[i].size;
        for (int k = 0; k < src->n_weights; k++)
            if (src->weights[k].region == i && src->weights[k].offset < first)
                first = src->weights[k].offset;
        st = fr_buffer_from_host_at(m->backend, src->regions[i].base, src->regions[i].size, first,
                                    &m->region_bufs[i], &m->region_shift[i], err);
        if (st) fr_error_prefix(err, st, "%s", src->regions[i].file);
    }

    /* pass 2: bind for real, converting vectors into the staging area, then upload it */
    if (!st) {
        b.vec_cap = b.vec_used > 0 ? b.vec_used : 1;
        b.vec_used = 0;
        b.counting = false;
        b.vec_host = calloc(b.vec_cap, sizeof(float));
        if (!b.vec_host) st = fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
        if (!st) st = fr_buffer_alloc(m->backend, b.vec_cap * sizeof(float), &m->vec_buf, err);
        if (!st) st = bind_all(&b);
        if (!st) st = fr_buffer_upload(&m->vec_buf, 0, b.vec_host, b.vec_cap * sizeof(float), err);
        free(b.vec_host);
    }
    if (st) {
        fr_model_free(m);
        return st;
    }
    *out = m;
    return FR_OK;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* GGUF files are known by their magic, not their name: ollama's blobs have no extension. */
static bool has_gguf_magic(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char magic[4];
    bool yes = fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    fclose(f);
    return yes;
}

fr_status fr_model_load(const char *path, const fr_model_params *params, fr_model **out,
                        fr_error *err) {
    *out = NULL;
    if (!path) return fr_error_set(err, FR_ERR_INVALID, "fr_model_load: no path");
    struct stat st_path;
    if (stat(path, &st_path) != 0)
        return fr_error_set(err, FR_ERR_NOT_FOUND, "%s: no such file or folder", path);
    if (params && params->backend && !fr_backend_available(params->backend))
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "backend '%s' is not available in this build",
                            params->backend);
    char dir[4096];
    if (S_ISDIR(st_path.st_mode)) {
        snprintf(dir, sizeof dir, "%s", path);
    } else if (has_gguf_magic(path) || has_suffix(path, ".gguf")) {
        /* a .gguf name without the magic goes to the reader too, for its precise message */
        /* a GGUF file carries its own config; weights stay in its mapping */
        fr_config gcfg;
        fr_weight_source *gsrc;
        fr_status gst = fr_gguf_model_open(path, &gcfg, &gsrc, err);
        if (gst) return gst;
        return fr_model_load_from_source(path, &gcfg, gsrc, params, out, err);
    } else if (has_suffix(path, ".safetensors")) {
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(dir, sizeof dir, ".");
    } else {
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "%s: not a model folder, .safetensors file or GGUF file (no GGUF "
                            "magic)",
                            path);
    }
    fr_config cfg;
    fr_status st = fr_config_load_hf(dir, &cfg, err);
    if (st) return st;
    fr_weight_source *src;
    st = fr_safetensors_open(path, &src, err);
    if (st) return st;
    return fr_model_load_from_source(path, &cfg, src, params, out, err);
}

/* ---------------------------------------------------------------- queries */

void fr_model_get_info(const fr_model *m, fr_model_info *info) {
    const fr_config *c = &m->cfg;
    memset(info, 0, sizeof *info);
    info->arch = c->arch_name;
    info->family = fr_arch_label(c->arch);
    info->backend = fr_backend_name(m->backend);
    info->n_layers = c->n_layers;
    info->hidden = c->hidden;
    info->n_heads = c->n_heads;
    info->n_kv_heads = c->n_kv_heads;
    info->head_dim = c->head_dim;
    info->intermediate = c->intermediate;
    info->vocab = c->vocab;
    info->max_context = c->max_pos;
    info->sliding_window = c->sliding_window;
    info->rope_theta = c->rope.theta;
    info->tied_embeddings = c->tie_embeddings;
    info->qk_norm = c->qk_norm;
    info->qkv_bias = c->qkv_bias;
    info->layer_scale = c->layer_scale;
    info->n_params = m->n_params;
    info->weight_bytes = m->weight_bytes;
    snprintf(info->weight_dtypes, sizeof info->weight_dtypes, "%s", m->dtypes);
    info->kv_bytes_per_token =
        (size_t)2 * (size_t)c->n_layers * (size_t)c->n_kv_heads * (size_t)c->head_dim * 4;
}

int fr_model_vocab_size(const fr_model *m) {
    return m->cfg.vocab;
}

int fr_model_eos_ids(const fr_model *m, const int32_t **ids) {
    if (ids) *ids = m->cfg.eos;
    return m->cfg.n_eos;
}

bool fr_model_is_eos(const fr_model *m, int32_t id) {
    for (int i = 0; i < m->cfg.n_eos; i++)
        if (m->cfg.eos[i] == id) return true;
    return false;
}
