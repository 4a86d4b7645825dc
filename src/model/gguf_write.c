/* GGUF writer (v3, little-endian). Metadata values are serialized when set (so callers may free
 * their inputs right away); tensor data is borrowed and written at the end, or streamed tensor by
 * tensor for outputs larger than memory. Layout: header, key/values, tensor infos, padding to the
 * alignment, then each tensor at an aligned offset relative to the data section (no padding
 * after the last one). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/outfile.h"
#include "core/quant.h"
#include "model/gguf.h"

typedef struct byte_buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} byte_buf;

typedef struct wkv {
    char *key;
    byte_buf blob; /* key, type and value exactly as they go into the file */
} wkv;

typedef struct wtensor {
    char *name;
    fr_dtype dtype;
    int ndim;
    int64_t shape[FR_GGUF_MAX_DIMS];
    const void *data;
    size_t nbytes;
    uint64_t rel_offset;
} wtensor;

struct fr_gguf_writer {
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *ts;
    size_t n_t, cap_t;
    uint32_t alignment;
    /* streaming state */
    FILE *f;
    char *path;        /* for messages */
    fr_outfile *own;   /* begin(path) opened the output itself; NULL with begin_stream */
    size_t next;       /* next tensor whose data is expected */
    uint64_t data_pos; /* bytes of the data section written so far */
};

/* ---------------------------------------------------------------- byte buffer */

static void buf_put(byte_buf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void buf_le(byte_buf *b, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, t, (size_t)n);
}

static void buf_str(byte_buf *b, const char *s, uint64_t len) {
    buf_le(b, len, 8);
    buf_put(b, s, (size_t)len);
}

/* ---------------------------------------------------------------- values */

static fr_status check_value(const fr_gguf_value *v, const char *key, int depth, fr_error *err) {
    if ((int)v->type < 0 || v->type >= FR_GGUF_TYPE_COUNT)
        return fr_error_set(err, FR_ERR_INVALID, "gguf writer: key '%s': invalid value type %d",
                            key, (int)v->type);
    if (v->type == FR_GGUF_STRING && !v->v.str.s && v->v.str.len)
        return fr_error_set(err, FR_ERR_INVALID, "gguf writer: key '%s': NULL string", key);
    if (v->type != FR_GGUF_ARRAY) return FR_OK;
    const fr_gguf_array *a = &v->v.arr;
    if ((int)a->type < 0 || a->type >= FR_GGUF_TYPE_COUNT)
        return fr_error_set(err, FR_ERR_INVALID,
                            "gguf writer: key '%s': invalid array element type %d", key,
                            (int)a->type);
    if (a->n == 0) return FR_OK;
    if (a->type == FR_GGUF_ARRAY) {
        if (depth + 1 >= FR_GGUF_MAX_ARRAY_DEPTH)
            return fr_error_set(err, FR_ERR_INVALID,
                                "gguf writer: key '%s': arrays nested deeper than %d", key,
                                FR_GGUF_MAX_ARRAY_DEPTH);
        if (!a->items)
            return fr_error_set(err, FR_ERR_INVALID, "gguf writer: key '%s': no items", key);
        for (uint64_t i = 0; i < a->n; i++) {
            if (a->items[i].type != FR_GGUF_ARRAY)
                return fr_error_set(err, FR_ERR_INVALID,
                                    "gguf writer: key '%s': item %llu of an array of arrays is %s",
                                    key, (unsigned long long)i,
                                    fr_gguf_type_name(a->items[i].type));
            fr_status st = check_value(&a->items[i], key, depth + 1, err);
            if (st) return st;
        }
    } else if (a->type == FR_GGUF_STRING) {
        if (!a->strs)
            return fr_error_set(err, FR_ERR_INVALID, "gguf writer: key '%s': no strings", key);
        for (uint64_t i = 0; i < a->n; i++)
            if (!a->strs[i].s && a->strs[i].len)
                return fr_error_set(err, FR_ERR_INVALID,
                                    "gguf writer: key '%s': string %llu is NULL", key,
                                    (unsigned long long)i);
    } else if (!a->data) {
        return fr_error_set(err, FR_ERR_INVALID, "gguf writer: key '%s': no array data", key);
    } else if (a->type == FR_GGUF_BOOL) {
        for (uint64_t i = 0; i < a->n; i++)
            if (((const uint8_t *)a->data)[i] > 1)
                return fr_error_set(err, FR_ERR_INVALID,
                                    "gguf writer: key '%s': bool element %llu is not 0/1", key,
                                    (unsigned long long)i);
    }
    return FR_OK;
}

static void put_array(byte_buf *b, const fr_gguf_array *a);

static void put_value(byte_buf *b, const fr_gguf_value *v) {
    switch (v->type) {
    case FR_GGUF_U8:
    case FR_GGUF_U16:
    case FR_GGUF_U32:
    case FR_GGUF_U64:
        buf_le(b, v->v.u, (int)fr_gguf_type_size(v->type));
        break;
    case FR_GGUF_I8:
    case FR_GGUF_I16:
    case FR_GGUF_I32:
    case FR_GGUF_I64:
        buf_le(b, (uint64_t)v->v.i, (int)fr_gguf_type_size(v->type));
        break;
    case FR_GGUF_F32: {
        float f = (float)v->v.f;
        uint32_t u;
        memcpy(&u, &f, 4);
        buf_le(b, u, 4);
        break;
    }
    case FR_GGUF_F64: {
        uint64_t u;
        memcpy(&u, &v->v.f, 8);
        buf_le(b, u, 8);
        break;
    }
    case FR_GGUF_BOOL:
        buf_le(b, v->v.b ? 1 : 0, 1);
        break;
    case FR_GGUF_STRING:
        buf_str(b, v->v.str.len ? v->v.str.s : "", v->v.str.len);
        break;
    case FR_GGUF_ARRAY:
        put_array(b, &v->v.arr);
        break;
    default:
        break;
    }
}

static void put_array(byte_buf *b, const fr_gguf_array *a) {
    buf_le(b, (uint64_t)a->type, 4);
    buf_le(b, a->n, 8);
    if (!a->n) return;
    const size_t esz = fr_gguf_type_size(a->type);
    if (esz) {
        /* elements are given in host order, which for the platforms we build on is LE */
        if (a->n > SIZE_MAX / esz)
            b->oom = true;
        else
            buf_put(b, a->data, (size_t)a->n * esz);
    } else if (a->type == FR_GGUF_STRING) {
        for (uint64_t i = 0; i < a->n; i++)
            buf_str(b, a->strs[i].len ? a->strs[i].s : "", a->strs[i].len);
    } else {
        for (uint64_t i = 0; i < a->n; i++)
            put_array(b, &a->items[i].v.arr);
    }
}

/* ---------------------------------------------------------------- writer object */

fr_status fr_gguf_writer_create(fr_gguf_writer **out, fr_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return fr_error_set(err, FR_ERR_NOMEM, "gguf writer: out of memory");
    (*out)->alignment = FR_GGUF_DEFAULT_ALIGNMENT;
    return FR_OK;
}

/* Stops streaming. An output the writer opened is abandoned (its temporary file removed, the
 * target untouched); a caller's stream is left for the caller to abort. */
static void abort_file(fr_gguf_writer *w) {
    fr_outfile_abort(w->own);
    w->own = NULL;
    w->f = NULL;
    free(w->path);
    w->path = NULL;
}

void fr_gguf_writer_free(fr_gguf_writer *w) {
    if (!w) return;
    abort_file(w);
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].blob.p);
    }
    for (size_t i = 0; i < w->n_t; i++)
        free(w->ts[i].name);
    free(w->kvs);
    free(w->ts);
    free(w);
}

fr_status fr_gguf_writer_set(fr_gguf_writer *w, const char *key, const fr_gguf_value *v,
                             fr_error *err) {
    if (!key || !v) return fr_error_set(err, FR_ERR_INVALID, "gguf writer: NULL key or value");
    if (w->f)
        return fr_error_set(err, FR_ERR_INVALID, "gguf writer: key '%s' set after begin", key);
    fr_status st = check_value(v, key, 0, err);
    if (st) return st;
    const bool is_alignment = !strcmp(key, "general.alignment");
    if (is_alignment) {
        if (v->type != FR_GGUF_U32 || v->v.u == 0 || (v->v.u & (v->v.u - 1)))
            return fr_error_set(err, FR_ERR_INVALID,
                                "gguf writer: general.alignment must be a u32 power of two");
    }
    byte_buf blob = {0};
    buf_str(&blob, key, strlen(key));
    buf_le(&blob, (uint64_t)v->type, 4);
    put_value(&blob, v);
    if (blob.oom) {
        free(blob.p);
        return fr_error_set(err, FR_ERR_NOMEM, "gguf writer: key '%s': out of memory", key);
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!strcmp(w->kvs[i].key, key)) { /* replace in place, keeping the order */
            free(w->kvs[i].blob.p);
            w->kvs[i].blob = blob;
            if (is_alignment) w->alignment = (uint32_t)v->v.u;
            return FR_OK;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        wkv *p = realloc(w->kvs, cap * sizeof *p);
        if (!p) {
            free(blob.p);
            return fr_error_set(err, FR_ERR_NOMEM, "gguf writer: out of memory");
        }
        w->kvs = p;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(blob.p);
        return fr_error_set(err, FR_ERR_NOMEM, "gguf writer: out of memory");
    }
    w->kvs[w->n_kv++] = (wkv){k, blob};
    if (is_alignment) w->alignment = (uint32_t)v->v.u;
    return FR_OK;
}

fr_status fr_gguf_writer_set_u32(fr_gguf_writer *w, const char *key, uint32_t v, fr_error *err) {
    fr_gguf_value val = {.type = FR_GGUF_U32, .v.u = v};
    return fr_gguf_writer_set(w, key, &val, err);
}
fr_status fr_gguf_writer_set_i32(fr_gguf_writer *w, const char *key, int32_t v, fr_error *err) {
    fr_gguf_value val = {.type = FR_GGUF_I32, .v.i = v};
    return fr_gguf_writer_set(w, key, &val, err);
}
fr_status fr_gguf_writer_set_u64(fr_gguf_writer *w, const char *key, uint64_t v, fr_error *err) {
    fr_gguf_value val = {.type = FR_GGUF_U64, .v.u = v};
    return fr_gguf_writer_set(w, key, &val, err);
}
fr_status fr_gguf_writer_set_f32(fr_gguf_writer *w, const char *key, float v, fr_error *err) {
    fr_gguf_value val = {.type = FR_GGUF_F32, .v.f = v};
    return fr_gguf_writer_set(w, key, &val, err);
}
fr_status fr_gguf_writer_set_bool(fr_gguf_writer *w, const char *key, bool v, fr_error *err) {
    fr_gguf_value val = {.type = FR_GGUF_BOOL, .v.b = v};
    return fr_gguf_writer_set(w, key, &val, err);
}
fr_status fr_gguf_writer_set_str(fr_gguf_writer *w, const char *key, const char *v, fr_error *err) {
    if (!v) return fr_error_set(err, FR_ERR_INVALID, "gguf writer: key '%s': NULL string", key);
    fr_gguf_value val = {.type = FR_GGUF_STRING, .v.str = {v, strlen(v)}};
    return fr_gguf_writer_set(w, key, &val, err);
}

fr_status fr_gguf_writer_set_arr(fr_gguf_writer *w, const char *key, fr_gguf_type elem,
                                 const void *data, uint64_t n, fr_error *err) {
    if (!fr_gguf_type_size(elem))
        return fr_error_set(err, FR_ERR_INVALID,
                            "gguf writer: key '%s': %s is not a fixed-size element type", key,
                            fr_gguf_type_name(elem));
    fr_gguf_value val = {.type = FR_GGUF_ARRAY, .v.arr = {.type = elem, .n = n, .data = data}};
    return fr_gguf_writer_set(w, key, &val, err);
}

fr_status fr_gguf_writer_set_arr_str(fr_gguf_writer *w, const char *key, const char *const *strs,
                                     uint64_t n, fr_error *err) {
    fr_gguf_str *views = malloc((n ? (size_t)n : 1) * sizeof *views);
    if (!views || n > SIZE_MAX / sizeof *views) {
        free(views);
        return fr_error_set(err, FR_ERR_NOMEM, "gguf writer: key '%s': out of memory", key);
    }
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i]) {
            free(views);
            return fr_error_set(err, FR_ERR_INVALID, "gguf writer: key '%s': string %llu is NULL",
                                key, (unsigned long long)i);
        }
        views[i] = (fr_gguf_str){strs[i], strlen(strs[i])};
    }
    fr_gguf_value val = {.type = FR_GGUF_ARRAY,
                         .v.arr = {.type = FR_GGUF_STRING, .n = n, .strs = views}};
    fr_status st = fr_gguf_writer_set(w, key, &val, err);
    free(views);
    return st;
}

fr_status fr_gguf_writer_add_tensor(fr_gguf_writer *w, const char *name, fr_dtype dtype, int ndim,
                                    const int64_t *shape, const void *data, fr_error *err) {
    const fr_dtype_info *info = fr_dtype_get(dtype);
    if (!name || !*name || strlen(name) >= 64)
        return fr_error_set(err, FR_ERR_INVALID,
                            "gguf writer: tensor name '%s' must have 1..63 bytes (GGML limit)",
                            name ? name : "(null)");
    if (w->f)
        return fr_error_set(err, FR_ERR_INVALID, "gguf writer: tensor '%s' added after begin",
                            name);
    if (!info)
        return fr_error_set(err, FR_ERR_INVALID, "gguf writer: tensor '%s': invalid dtype %d", name,
                            (int)dtype);
    if (ndim < 1 || ndim > FR_GGUF_MAX_DIMS)
        return fr_error_set(err, FR_ERR_INVALID, "gguf writer: tensor '%s': %d dimensions", name,
                            ndim);
    int64_t n_el = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] && n_el > INT64_MAX / shape[d]))
            return fr_error_set(err, FR_ERR_INVALID, "gguf writer: tensor '%s': bad shape", name);
        n_el *= shape[d];
    }
    if (shape[ndim - 1] % info->block_elems)
        return fr_error_set(err, FR_ERR_INVALID,
                            "gguf writer: tensor '%s': innermost dimension %lld is not a multiple "
                            "of the %s block size %d",
                            name, (long long)shape[ndim - 1], info->name, info->block_elems);
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->ts[i].name, name))
            return fr_error_set(err, FR_ERR_INVALID, "gguf writer: duplicate tensor '%s'", name);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        wtensor *p = realloc(w->ts, cap * sizeof *p);
        if (!p) return fr_error_set(err, FR_ERR_NOMEM, "gguf writer: out of memory");
        w->ts = p;
        w->cap_t = cap;
    }
    wtensor *t = &w->ts[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return fr_error_set(err, FR_ERR_NOMEM, "gguf writer: out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->nbytes = (size_t)(n_el / info->block_elems) * (size_t)info->block_bytes;
    t->data = data;
    w->n_t++;
    return FR_OK;
}

/* ---------------------------------------------------------------- output */

static fr_status put_file(fr_gguf_writer *w, const void *p, size_t n, fr_error *err) {
    if (n && fwrite(p, 1, n, w->f) != n) {
        fr_status st =
            fr_error_set(err, FR_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
        abort_file(w);
        return st;
    }
    return FR_OK;
}

static fr_status put_padding(fr_gguf_writer *w, uint64_t pos, fr_error *err) {
    static const uint8_t zeros[256];
    uint64_t pad = (w->alignment - pos % w->alignment) % w->alignment;
    while (pad) {
        size_t k = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        fr_status st = put_file(w, zeros, k, err);
        if (st) return st;
        pad -= k;
    }
    return FR_OK;
}

fr_status fr_gguf_writer_begin_stream(fr_gguf_writer *w, FILE *f, const char *name, fr_error *err) {
    if (w->f) return fr_error_set(err, FR_ERR_INVALID, "gguf writer: begin called twice");
    if (!f || !name)
        return fr_error_set(err, FR_ERR_INVALID, "gguf writer: begin without a stream or name");
    byte_buf h = {0};
    buf_le(&h, FR_GGUF_MAGIC, 4);
    buf_le(&h, 3, 4);
    buf_le(&h, w->n_t, 8);
    buf_le(&h, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++)
        buf_put(&h, w->kvs[i].blob.p, w->kvs[i].blob.len);
    uint64_t rel = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->ts[i];
        rel = (rel + w->alignment - 1) / w->alignment * w->alignment;
        t->rel_offset = rel;
        rel += t->nbytes;
        buf_str(&h, t->name, strlen(t->name));
        buf_le(&h, (uint64_t)t->ndim, 4);
        for (int d = t->ndim - 1; d >= 0; d--)
            buf_le(&h, (uint64_t)t->shape[d], 8);
        buf_le(&h, (uint64_t)fr_dtype_to_ggml(t->dtype), 4);
        buf_le(&h, t->rel_offset, 8);
    }
    if (h.oom) {
        free(h.p);
        return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory for the header", name);
    }
    w->path = strdup(name);
    if (!w->path) {
        free(h.p);
        return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", name);
    }
    w->f = f;
    fr_status st = put_file(w, h.p, h.len, err);
    if (!st) st = put_padding(w, h.len, err);
    free(h.p);
    w->next = 0;
    w->data_pos = 0;
    return st;
}

fr_status fr_gguf_writer_begin(fr_gguf_writer *w, const char *path, fr_error *err) {
    if (w->f) return fr_error_set(err, FR_ERR_INVALID, "gguf writer: begin called twice");
    fr_outfile *o;
    FR_TRY(fr_outfile_open(path, NULL, 0, &o, err));
    fr_status st = fr_gguf_writer_begin_stream(w, fr_outfile_stream(o), path, err);
    if (st) {
        fr_outfile_abort(o);
        return st;
    }
    w->own = o;
    return FR_OK;
}

fr_status fr_gguf_writer_write_data(fr_gguf_writer *w, const void *data, size_t nbytes,
                                    fr_error *err) {
    if (!w->f) return fr_error_set(err, FR_ERR_INVALID, "gguf writer: write_data before begin");
    if (w->next >= w->n_t) {
        fr_status st =
            fr_error_set(err, FR_ERR_INVALID, "%s: more tensor data than tensors", w->path);
        abort_file(w);
        return st;
    }
    const wtensor *t = &w->ts[w->next];
    if (nbytes != t->nbytes || (!data && nbytes)) {
        fr_status st =
            fr_error_set(err, FR_ERR_INVALID, "%s: tensor '%s' needs %zu bytes of data, got %zu",
                         w->path, t->name, t->nbytes, data ? nbytes : 0);
        abort_file(w);
        return st;
    }
    fr_status st = put_padding(w, w->data_pos, err);
    if (st) return st;
    w->data_pos = t->rel_offset;
    if ((st = put_file(w, data, nbytes, err))) return st;
    w->data_pos += nbytes;
    w->next++;
    return FR_OK;
}

fr_status fr_gguf_writer_finish(fr_gguf_writer *w, fr_error *err) {
    if (!w->f) return fr_error_set(err, FR_ERR_INVALID, "gguf writer: finish before begin");
    if (w->next != w->n_t) {
        fr_status st = fr_error_set(err, FR_ERR_INVALID, "%s: only %zu of %zu tensors were written",
                                    w->path, w->next, w->n_t);
        abort_file(w);
        return st;
    }
    fr_outfile *o = w->own;
    FILE *f = w->f;
    w->own = NULL;
    w->f = NULL;
    fr_status st = FR_OK;
    if (o)
        st = fr_outfile_commit(o, err);
    else if (fflush(f) != 0 || ferror(f)) /* the caller finishes its stream; report errors now */
        st = fr_error_set(err, FR_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    free(w->path);
    w->path = NULL;
    return st;
}

fr_status fr_gguf_writer_write(fr_gguf_writer *w, const char *path, fr_error *err) {
    for (size_t i = 0; i < w->n_t; i++)
        if (!w->ts[i].data && w->ts[i].nbytes)
            return fr_error_set(err, FR_ERR_INVALID, "%s: tensor '%s' has no data", path,
                                w->ts[i].name);
    fr_status st = fr_gguf_writer_begin(w, path, err);
    for (size_t i = 0; !st && i < w->n_t; i++)
        st = fr_gguf_writer_write_data(w, w->ts[i].data, w->ts[i].nbytes, err);
    if (!st) st = fr_gguf_writer_finish(w, err);
    return st;
}
