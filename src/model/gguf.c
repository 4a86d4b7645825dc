/* GGUF reader. The file is hostile input: the parser never reads a byte without first checking
 * that it lies inside the file, sizes every allocation by what the remaining bytes can actually
 * encode (so a forged count cannot make us allocate more than a small multiple of the file), and
 * reports the byte offset of the field at fault. Strings are copied (NUL-terminated) into an
 * arena owned by the handle; fixed-size arrays and tensor data stay in the mapping. */
#include "model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/quant.h"

/* ---------------------------------------------------------------- small helpers */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
} arena_chunk;

struct fr_gguf {
    char *path;
    const uint8_t *base;
    size_t size;
    void *map; /* non-NULL when we own an mmap of map_size bytes */
    size_t map_size;
    uint32_t version, alignment;
    uint64_t data_offset;
    fr_gguf_kv *kvs;
    size_t n_kv;
    fr_gguf_tensor *tensors;
    size_t n_tensors;
    uint32_t *kv_index, *tensor_index; /* open addressing: slot = position + 1, 0 = empty */
    size_t kv_index_cap, tensor_index_cap;
    arena_chunk *chunks;
};

static void *arena_alloc(fr_gguf *g, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_chunk *c = g->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ((size_t)1 << 20) ? n : ((size_t)1 << 20);
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = g->chunks;
        c->used = 0;
        c->cap = cap;
        g->chunks = c;
    }
    void *p = c->mem + c->used;
    c->used += n;
    return p;
}

static uint64_t hash_bytes(const char *s, uint64_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint64_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static size_t index_capacity(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    return cap;
}

static const char *type_names[FR_GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};
static const uint8_t type_sizes[FR_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *fr_gguf_type_name(fr_gguf_type t) {
    return (int)t >= 0 && t < FR_GGUF_TYPE_COUNT ? type_names[t] : "invalid";
}

size_t fr_gguf_type_size(fr_gguf_type t) {
    return (int)t >= 0 && t < FR_GGUF_TYPE_COUNT ? type_sizes[t] : 0;
}

static uint64_t load_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* ---------------------------------------------------------------- parser state */

typedef struct reader {
    fr_gguf *g;
    size_t pos;
    fr_error *err;
    const char *what_kind; /* "key" / "tensor" / NULL: what `what` names in messages */
    const char *what;
} reader;

__attribute__((format(printf, 4, 5))) static fr_status fail(reader *r, fr_status code,
                                                            uint64_t offset, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->what_kind)
        return fr_error_set(r->err, code, "%s: offset %llu: %s '%.200s': %s", r->g->path,
                            (unsigned long long)offset, r->what_kind, r->what, msg);
    return fr_error_set(r->err, code, "%s: offset %llu: %s", r->g->path, (unsigned long long)offset,
                        msg);
}

static size_t remaining(const reader *r) {
    return r->g->size - r->pos;
}

static fr_status need(reader *r, uint64_t n, const char *field) {
    if (n > remaining(r))
        return fail(r, FR_ERR_FORMAT, r->pos,
                    "%s needs %llu bytes but the file has only %zu left (file size %zu)", field,
                    (unsigned long long)n, remaining(r), r->g->size);
    return FR_OK;
}

static fr_status read_uint(reader *r, int nbytes, uint64_t *out, const char *field) {
    fr_status st = need(r, (uint64_t)nbytes, field);
    if (st) return st;
    *out = load_le(r->g->base + r->pos, nbytes);
    r->pos += (size_t)nbytes;
    return FR_OK;
}

static fr_status read_str(reader *r, fr_gguf_str *out, const char *field) {
    const size_t at = r->pos;
    uint64_t len;
    fr_status st = read_uint(r, 8, &len, field);
    if (st) return st;
    if (len > remaining(r))
        return fail(r, FR_ERR_FORMAT, at,
                    "%s: string length %llu exceeds the %zu bytes left in the file", field,
                    (unsigned long long)len, remaining(r));
    char *s = arena_alloc(r->g, (size_t)len + 1);
    if (!s) return fail(r, FR_ERR_NOMEM, at, "%s: out of memory", field);
    memcpy(s, r->g->base + r->pos, (size_t)len);
    s[len] = '\0';
    r->pos += (size_t)len;
    out->s = s;
    out->len = len;
    return FR_OK;
}

static fr_status read_value(reader *r, fr_gguf_type type, fr_gguf_value *out, int depth);

static fr_status read_array(reader *r, fr_gguf_array *a, int depth) {
    const size_t at = r->pos;
    uint64_t t, n;
    fr_status st = read_uint(r, 4, &t, "array element type");
    if (st) return st;
    if (t >= FR_GGUF_TYPE_COUNT)
        return fail(r, FR_ERR_FORMAT, at, "unknown array element type %llu", (unsigned long long)t);
    if ((st = read_uint(r, 8, &n, "array length"))) return st;
    a->type = (fr_gguf_type)t;
    a->n = n;
    a->data = NULL;
    a->strs = NULL;
    a->items = NULL;
    const size_t esz = type_sizes[t];
    if (esz) {
        if (n > remaining(r) / esz)
            return fail(r, FR_ERR_FORMAT, at,
                        "array of %llu %s elements needs more than the %zu bytes left",
                        (unsigned long long)n, type_names[t], remaining(r));
        a->data = r->g->base + r->pos;
        if (t == FR_GGUF_BOOL) {
            for (uint64_t i = 0; i < n; i++) {
                uint8_t b = r->g->base[r->pos + i];
                if (b > 1)
                    return fail(r, FR_ERR_FORMAT, r->pos + i, "bool array element %llu is %u",
                                (unsigned long long)i, b);
            }
        }
        r->pos += (size_t)(n * esz);
        return FR_OK;
    }
    if (t == FR_GGUF_ARRAY && depth >= FR_GGUF_MAX_ARRAY_DEPTH)
        return fail(r, FR_ERR_FORMAT, at, "arrays nested deeper than %d levels",
                    FR_GGUF_MAX_ARRAY_DEPTH);
    /* smallest encoding of one element: a string is an 8-byte length, an array 4 + 8 bytes */
    const size_t min_elem = t == FR_GGUF_STRING ? 8 : 12;
    if (n > remaining(r) / min_elem)
        return fail(r, FR_ERR_FORMAT, at,
                    "array of %llu %s elements needs more than the %zu bytes left",
                    (unsigned long long)n, type_names[t], remaining(r));
    if (t == FR_GGUF_STRING) {
        fr_gguf_str *strs = arena_alloc(r->g, (size_t)n * sizeof *strs + 1);
        if (!strs)
            return fail(r, FR_ERR_NOMEM, at, "out of memory for %llu strings",
                        (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++)
            if ((st = read_str(r, &strs[i], "array string"))) return st;
        a->strs = strs;
    } else {
        fr_gguf_value *items = arena_alloc(r->g, (size_t)n * sizeof *items + 1);
        if (!items)
            return fail(r, FR_ERR_NOMEM, at, "out of memory for %llu arrays",
                        (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++)
            if ((st = read_value(r, FR_GGUF_ARRAY, &items[i], depth + 1))) return st;
        a->items = items;
    }
    return FR_OK;
}

static fr_status read_value(reader *r, fr_gguf_type type, fr_gguf_value *out, int depth) {
    const size_t at = r->pos;
    uint64_t u;
    fr_status st;
    out->type = type;
    switch (type) {
    case FR_GGUF_U8:
    case FR_GGUF_U16:
    case FR_GGUF_U32:
    case FR_GGUF_U64:
        if ((st = read_uint(r, type_sizes[type], &u, type_names[type]))) return st;
        out->v.u = u;
        return FR_OK;
    case FR_GGUF_I8:
    case FR_GGUF_I16:
    case FR_GGUF_I32:
    case FR_GGUF_I64: {
        const int bits = 8 * type_sizes[type];
        if ((st = read_uint(r, type_sizes[type], &u, type_names[type]))) return st;
        /* sign-extend from the stored width */
        out->v.i = bits == 64 ? (int64_t)u : (int64_t)(u << (64 - bits)) >> (64 - bits);
        return FR_OK;
    }
    case FR_GGUF_F32: {
        if ((st = read_uint(r, 4, &u, "f32"))) return st;
        uint32_t b = (uint32_t)u;
        float f;
        memcpy(&f, &b, 4);
        out->v.f = f;
        return FR_OK;
    }
    case FR_GGUF_F64: {
        if ((st = read_uint(r, 8, &u, "f64"))) return st;
        memcpy(&out->v.f, &u, 8);
        return FR_OK;
    }
    case FR_GGUF_BOOL:
        if ((st = read_uint(r, 1, &u, "bool"))) return st;
        if (u > 1) return fail(r, FR_ERR_FORMAT, at, "bool value is %llu", (unsigned long long)u);
        out->v.b = u != 0;
        return FR_OK;
    case FR_GGUF_STRING:
        return read_str(r, &out->v.str, "string value");
    case FR_GGUF_ARRAY:
        return read_array(r, &out->v.arr, depth);
    default:
        break;
    }
    return fail(r, FR_ERR_FORMAT, at, "unknown value type %d", (int)type);
}

/* ---------------------------------------------------------------- indexes */

static const fr_gguf_str *kv_name(const fr_gguf *g, size_t i) {
    return &g->kvs[i].key;
}

static int64_t index_find(const uint32_t *index, size_t cap, const fr_gguf *g, bool tensors,
                          const char *s, uint64_t len) {
    if (!index) return -1;
    size_t slot = (size_t)hash_bytes(s, len) & (cap - 1);
    for (;;) {
        uint32_t e = index[slot];
        if (!e) return -1;
        if (tensors) {
            const char *name = g->tensors[e - 1].name;
            if (strlen(name) == len && !memcmp(name, s, (size_t)len)) return e - 1;
        } else {
            const fr_gguf_str *k = kv_name(g, e - 1);
            if (k->len == len && !memcmp(k->s, s, (size_t)len)) return e - 1;
        }
        slot = (slot + 1) & (cap - 1);
    }
}

static void index_insert(uint32_t *index, size_t cap, const char *s, uint64_t len, size_t pos) {
    size_t slot = (size_t)hash_bytes(s, len) & (cap - 1);
    while (index[slot])
        slot = (slot + 1) & (cap - 1);
    index[slot] = (uint32_t)(pos + 1);
}

/* ---------------------------------------------------------------- header, kv, tensors */

static fr_status parse_header(reader *r, uint64_t *n_tensors, uint64_t *n_kv) {
    fr_gguf *g = r->g;
    if (g->size < 24)
        return fail(r, FR_ERR_FORMAT, 0, "file of %zu bytes is too small for a GGUF header",
                    g->size);
    uint64_t magic = 0, version = 0;
    read_uint(r, 4, &magic, "magic");
    if (magic != FR_GGUF_MAGIC)
        return fail(r, FR_ERR_FORMAT, 0, "not a GGUF file (magic %02x %02x %02x %02x)", g->base[0],
                    g->base[1], g->base[2], g->base[3]);
    read_uint(r, 4, &version, "version");
    if (version == 1)
        return fail(r, FR_ERR_UNSUPPORTED, 4,
                    "GGUF version 1 is not supported (32-bit counts; re-convert to v2/v3)");
    if (version == 0x02000000u || version == 0x03000000u)
        return fail(r, FR_ERR_UNSUPPORTED, 4, "big-endian GGUF is not supported");
    if (version != 2 && version != 3)
        return fail(r, FR_ERR_UNSUPPORTED, 4, "unsupported GGUF version %llu",
                    (unsigned long long)version);
    g->version = (uint32_t)version;
    read_uint(r, 8, n_tensors, "tensor count");
    read_uint(r, 8, n_kv, "metadata count");
    return FR_OK;
}

static fr_status parse_kvs(reader *r, uint64_t n_kv) {
    fr_gguf *g = r->g;
    /* the smallest key/value is an empty key (8) + type (4) + a one-byte value */
    if (n_kv > remaining(r) / 13)
        return fail(r, FR_ERR_FORMAT, 16, "metadata count %llu is impossible in %zu bytes",
                    (unsigned long long)n_kv, remaining(r));
    g->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kvs);
    g->kv_index_cap = index_capacity((size_t)n_kv);
    g->kv_index = calloc(g->kv_index_cap, sizeof *g->kv_index);
    if (!g->kvs || !g->kv_index) return fail(r, FR_ERR_NOMEM, 16, "out of memory");
    for (uint64_t i = 0; i < n_kv; i++) {
        fr_gguf_kv *kv = &g->kvs[i];
        kv->offset = r->pos;
        r->what_kind = NULL;
        fr_status st = read_str(r, &kv->key, "metadata key");
        if (st) return st;
        r->what_kind = "key";
        r->what = kv->key.s;
        if (index_find(g->kv_index, g->kv_index_cap, g, false, kv->key.s, kv->key.len) >= 0)
            return fail(r, FR_ERR_FORMAT, kv->offset, "duplicate key");
        const size_t at = r->pos;
        uint64_t type;
        if ((st = read_uint(r, 4, &type, "value type"))) return st;
        if (type >= FR_GGUF_TYPE_COUNT)
            return fail(r, FR_ERR_FORMAT, at, "unknown value type %llu", (unsigned long long)type);
        if ((st = read_value(r, (fr_gguf_type)type, &kv->value, 0))) return st;
        index_insert(g->kv_index, g->kv_index_cap, kv->key.s, kv->key.len, (size_t)i);
        g->n_kv++;
    }
    r->what_kind = NULL;
    g->alignment = FR_GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = index_find(g->kv_index, g->kv_index_cap, g, false, "general.alignment", 17);
    if (ai >= 0) {
        const fr_gguf_kv *kv = &g->kvs[ai];
        r->what_kind = "key";
        r->what = kv->key.s;
        if (kv->value.type != FR_GGUF_U32)
            return fail(r, FR_ERR_FORMAT, kv->offset, "must be u32, not %s",
                        type_names[kv->value.type]);
        uint64_t a = kv->value.v.u;
        if (a == 0 || (a & (a - 1)))
            return fail(r, FR_ERR_FORMAT, kv->offset, "alignment %llu is not a power of two",
                        (unsigned long long)a);
        g->alignment = (uint32_t)a;
        r->what_kind = NULL;
    }
    return FR_OK;
}

static fr_status parse_tensor_info(reader *r, fr_gguf_tensor *t, uint64_t *rel_offset) {
    const size_t start = r->pos;
    fr_gguf_str name;
    r->what_kind = NULL;
    fr_status st = read_str(r, &name, "tensor name");
    if (st) return st;
    r->what_kind = "tensor";
    r->what = name.s;
    if (strlen(name.s) != name.len)
        return fail(r, FR_ERR_FORMAT, start, "tensor name contains a NUL byte");
    t->name = name.s;
    size_t at = r->pos;
    uint64_t ndim, dims[FR_GGUF_MAX_DIMS], type;
    if ((st = read_uint(r, 4, &ndim, "dimension count"))) return st;
    if (ndim > FR_GGUF_MAX_DIMS)
        return fail(r, FR_ERR_FORMAT, at, "%llu dimensions (at most %d)", (unsigned long long)ndim,
                    FR_GGUF_MAX_DIMS);
    int64_t n_el = 1;
    for (uint64_t d = 0; d < ndim; d++) {
        at = r->pos;
        if ((st = read_uint(r, 8, &dims[d], "dimension"))) return st;
        if (dims[d] > (uint64_t)INT64_MAX)
            return fail(r, FR_ERR_FORMAT, at, "dimension %llu is %llu", (unsigned long long)d,
                        (unsigned long long)dims[d]);
        if (dims[d] && n_el > INT64_MAX / (int64_t)dims[d])
            return fail(r, FR_ERR_FORMAT, at, "element count overflows at dimension %llu",
                        (unsigned long long)d);
        n_el *= (int64_t)dims[d];
    }
    at = r->pos;
    if ((st = read_uint(r, 4, &type, "tensor type"))) return st;
    int be, bb;
    const char *tname;
    if (type > UINT32_MAX || !fr_ggml_type_info((uint32_t)type, &be, &bb, &tname))
        return fail(r, FR_ERR_FORMAT, at, "unknown GGML type id %llu", (unsigned long long)type);
    t->ggml_type = (uint32_t)type;
    t->type_name = tname;
    if (!fr_dtype_from_ggml(t->ggml_type, &t->dtype)) t->dtype = FR_DTYPE_COUNT;
    if (ndim > 0 && dims[0] % (uint64_t)be)
        return fail(r, FR_ERR_FORMAT, at,
                    "innermost dimension %llu is not a multiple of the %s block size %d",
                    (unsigned long long)dims[0], tname, be);
    if (n_el % be)
        return fail(r, FR_ERR_FORMAT, at, "%lld elements are not whole %s blocks", (long long)n_el,
                    tname);
    if ((uint64_t)(n_el / be) > SIZE_MAX / (uint64_t)bb)
        return fail(r, FR_ERR_FORMAT, at, "byte size overflows");
    t->nbytes = (size_t)(n_el / be) * (size_t)bb;
    t->n_elements = n_el;
    t->ndim = (int)ndim;
    for (int d = 0; d < FR_GGUF_MAX_DIMS; d++)
        t->shape[d] = 1;
    for (int d = 0; d < (int)ndim; d++)
        t->shape[d] = (int64_t)dims[ndim - 1 - (uint64_t)d];
    at = r->pos;
    if ((st = read_uint(r, 8, rel_offset, "tensor data offset"))) return st;
    if (*rel_offset % r->g->alignment)
        return fail(r, FR_ERR_FORMAT, at, "data offset %llu is not a multiple of the alignment %u",
                    (unsigned long long)*rel_offset, r->g->alignment);
    return FR_OK;
}

/* The address alignment a tensor's data needs: an element's size for plain types (at most 4:
 * nothing reads 8-byte types), and for block types the largest power of two (at most 4) dividing
 * the block size, which covers the f16/f32 scales the blocks start with. */
static uint64_t tensor_alignment(uint32_t ggml_type) {
    int be = 1, bb = 1;
    const char *name;
    if (!fr_ggml_type_info(ggml_type, &be, &bb, &name)) return 1;
    uint64_t a = 1;
    while (a < 4 && bb % (int)(2 * a) == 0)
        a *= 2;
    return a;
}

typedef struct span {
    uint64_t offset;
    size_t index;
} span;

static int cmp_span(const void *a, const void *b) {
    uint64_t x = ((const span *)a)->offset, y = ((const span *)b)->offset;
    return x < y ? -1 : x > y;
}

static fr_status parse_tensors(reader *r, uint64_t n_tensors, uint64_t count_offset) {
    fr_gguf *g = r->g;
    /* smallest tensor info: empty name (8) + ndim (4) + type (4) + offset (8) */
    if (n_tensors > remaining(r) / 24 || n_tensors >= UINT32_MAX)
        return fail(r, FR_ERR_FORMAT, count_offset, "tensor count %llu is impossible here",
                    (unsigned long long)n_tensors);
    size_t n = (size_t)n_tensors;
    g->tensors = calloc(n ? n : 1, sizeof *g->tensors);
    g->tensor_index_cap = index_capacity(n);
    g->tensor_index = calloc(g->tensor_index_cap, sizeof *g->tensor_index);
    uint64_t *rel = calloc(n ? n : 1, sizeof *rel);
    size_t *info_at = calloc(n ? n : 1, sizeof *info_at);
    span *order = calloc(n ? n : 1, sizeof *order);
    fr_status st = FR_OK;
    if (!g->tensors || !g->tensor_index || !rel || !info_at || !order) {
        st = fail(r, FR_ERR_NOMEM, count_offset, "out of memory for %zu tensors", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        info_at[i] = r->pos;
        if ((st = parse_tensor_info(r, &g->tensors[i], &rel[i]))) goto done;
        const char *name = g->tensors[i].name;
        if (index_find(g->tensor_index, g->tensor_index_cap, g, true, name, strlen(name)) >= 0) {
            st = fail(r, FR_ERR_FORMAT, info_at[i], "duplicate tensor name");
            goto done;
        }
        index_insert(g->tensor_index, g->tensor_index_cap, name, strlen(name), i);
        g->n_tensors++;
    }
    r->what_kind = NULL;
    /* the data section starts at the next multiple of the alignment */
    const uint64_t a = g->alignment;
    g->data_offset = ((uint64_t)r->pos + a - 1) / a * a;
    for (size_t i = 0; i < n; i++) {
        fr_gguf_tensor *t = &g->tensors[i];
        r->what_kind = "tensor";
        r->what = t->name;
        const uint64_t avail = g->data_offset <= g->size ? g->size - g->data_offset : 0;
        if (g->data_offset > g->size && t->nbytes) {
            st = fail(r, FR_ERR_FORMAT, info_at[i],
                      "data section would start at %llu, past the end of the file (%zu bytes)",
                      (unsigned long long)g->data_offset, g->size);
            goto done;
        }
        if (rel[i] > avail || t->nbytes > avail - rel[i]) {
            st = fail(r, FR_ERR_FORMAT, info_at[i],
                      "data [%llu, +%zu) lies outside the %llu-byte data section (file offset "
                      "%llu, file size %zu)",
                      (unsigned long long)rel[i], t->nbytes, (unsigned long long)avail,
                      (unsigned long long)g->data_offset, g->size);
            goto done;
        }
        t->offset = g->data_offset + rel[i];
        /* tensors are read in place (the mapping is page aligned): an element or a block's f16
         * scale at an address its type cannot be loaded from would be undefined behaviour in the
         * kernels. Only general.alignment below 4 allows it. */
        const uint64_t need = tensor_alignment(t->ggml_type);
        if (t->nbytes && t->offset % need) {
            st = fail(r, FR_ERR_FORMAT, info_at[i],
                      "data at file offset %llu is not a multiple of %llu, which %s data needs "
                      "(general.alignment %u)",
                      (unsigned long long)t->offset, (unsigned long long)need, t->type_name,
                      g->alignment);
            goto done;
        }
        t->data = g->base + (t->nbytes ? t->offset : 0);
        order[i] = (span){t->offset, i};
    }
    r->what_kind = NULL;
    qsort(order, n, sizeof *order, cmp_span);
    const fr_gguf_tensor *prev = NULL;
    for (size_t k = 0; k < n; k++) {
        const fr_gguf_tensor *t = &g->tensors[order[k].index];
        if (!t->nbytes) continue;
        if (prev && prev->offset + prev->nbytes > t->offset) {
            r->what_kind = "tensor";
            r->what = t->name;
            st = fail(r, FR_ERR_FORMAT, info_at[order[k].index],
                      "data at file offset %llu overlaps tensor '%.200s' (%llu + %zu bytes)",
                      (unsigned long long)t->offset, prev->name, (unsigned long long)prev->offset,
                      prev->nbytes);
            goto done;
        }
        prev = t;
    }
done:
    free(rel);
    free(info_at);
    free(order);
    return st;
}

static fr_status parse(fr_gguf *g, fr_error *err) {
    reader r = {.g = g, .pos = 0, .err = err};
    uint64_t n_tensors = 0, n_kv = 0;
    fr_status st = parse_header(&r, &n_tensors, &n_kv);
    if (st) return st;
    if ((st = parse_kvs(&r, n_kv))) return st;
    return parse_tensors(&r, n_tensors, 8);
}

/* ---------------------------------------------------------------- open / close */

static fr_gguf *gguf_new(const char *name) {
    fr_gguf *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->path = strdup(name ? name : "<memory>");
    if (!g->path) {
        free(g);
        return NULL;
    }
    return g;
}

fr_status fr_gguf_open_memory(const void *data, size_t size, const char *name, fr_gguf **out,
                              fr_error *err) {
    *out = NULL;
    fr_gguf *g = gguf_new(name);
    if (!g) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", name ? name : "gguf");
    g->base = data;
    g->size = data ? size : 0;
    fr_status st = parse(g, err);
    if (st) {
        fr_gguf_close(g);
        return st;
    }
    *out = g;
    return FR_OK;
}

fr_status fr_gguf_open(const char *path, fr_gguf **out, fr_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return fr_error_set(err, e == ENOENT ? FR_ERR_NOT_FOUND : FR_ERR_IO, "%s: %s", path,
                            strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return fr_error_set(err, FR_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return fr_error_set(err, FR_ERR_IO, "%s: file too large to map", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 24) {
        close(fd);
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: offset 0: file of %zu bytes is too small for a GGUF header", path,
                            size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return fr_error_set(err, FR_ERR_IO, "%s: mmap of %zu bytes failed: %s", path, size,
                            strerror(e));
    fr_gguf *g = gguf_new(path);
    if (!g) {
        munmap(map, size);
        return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
    }
    g->map = map;
    g->map_size = size;
    g->base = map;
    g->size = size;
    fr_status st = parse(g, err);
    if (st) {
        fr_gguf_close(g);
        return st;
    }
    *out = g;
    return FR_OK;
}

void fr_gguf_close(fr_gguf *g) {
    if (!g) return;
    if (g->map) munmap(g->map, g->map_size);
    while (g->chunks) {
        arena_chunk *next = g->chunks->next;
        free(g->chunks);
        g->chunks = next;
    }
    free(g->kvs);
    free(g->tensors);
    free(g->kv_index);
    free(g->tensor_index);
    free(g->path);
    free(g);
}

const char *fr_gguf_path(const fr_gguf *g) {
    return g->path;
}
uint32_t fr_gguf_version(const fr_gguf *g) {
    return g->version;
}
uint32_t fr_gguf_alignment(const fr_gguf *g) {
    return g->alignment;
}
uint64_t fr_gguf_data_offset(const fr_gguf *g) {
    return g->data_offset;
}
const void *fr_gguf_base(const fr_gguf *g) {
    return g->base;
}
size_t fr_gguf_size(const fr_gguf *g) {
    return g->size;
}

size_t fr_gguf_kv_count(const fr_gguf *g) {
    return g->n_kv;
}
const fr_gguf_kv *fr_gguf_kv_at(const fr_gguf *g, size_t i) {
    return i < g->n_kv ? &g->kvs[i] : NULL;
}

const fr_gguf_value *fr_gguf_find(const fr_gguf *g, const char *key) {
    int64_t i = index_find(g->kv_index, g->kv_index_cap, g, false, key, strlen(key));
    return i >= 0 ? &g->kvs[i].value : NULL;
}

size_t fr_gguf_tensor_count(const fr_gguf *g) {
    return g->n_tensors;
}
const fr_gguf_tensor *fr_gguf_tensor_at(const fr_gguf *g, size_t i) {
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const fr_gguf_tensor *fr_gguf_find_tensor(const fr_gguf *g, const char *name) {
    int64_t i = index_find(g->tensor_index, g->tensor_index_cap, g, true, name, strlen(name));
    return i >= 0 ? &g->tensors[i] : NULL;
}

/* ---------------------------------------------------------------- typed getters */

static bool is_unsigned(fr_gguf_type t) {
    return t == FR_GGUF_U8 || t == FR_GGUF_U16 || t == FR_GGUF_U32 || t == FR_GGUF_U64;
}
static bool is_signed(fr_gguf_type t) {
    return t == FR_GGUF_I8 || t == FR_GGUF_I16 || t == FR_GGUF_I32 || t == FR_GGUF_I64;
}

static fr_status lookup(const fr_gguf *g, const char *key, const fr_gguf_value **v, fr_error *err) {
    *v = fr_gguf_find(g, key);
    if (!*v) return fr_error_set(err, FR_ERR_NOT_FOUND, "%s: key '%s' not found", g->path, key);
    return FR_OK;
}

static fr_status wrong_type(const fr_gguf *g, const char *key, const fr_gguf_value *v,
                            const char *want, fr_error *err) {
    return fr_error_set(err, FR_ERR_FORMAT, "%s: key '%s' is %s, expected %s", g->path, key,
                        fr_gguf_type_name(v->type), want);
}

/* Any integer value within [lo, hi] (as signed or unsigned, whichever it is stored as). */
static fr_status get_int(const fr_gguf *g, const char *key, int64_t lo, uint64_t hi,
                         const char *want, bool *neg, uint64_t *mag, fr_error *err) {
    const fr_gguf_value *v;
    fr_status st = lookup(g, key, &v, err);
    if (st) return st;
    if (is_unsigned(v->type)) {
        *neg = false;
        *mag = v->v.u;
    } else if (is_signed(v->type)) {
        *neg = v->v.i < 0;
        *mag = *neg ? (uint64_t)0 - (uint64_t)v->v.i : (uint64_t)v->v.i;
    } else {
        return wrong_type(g, key, v, want, err);
    }
    bool ok = *neg ? (lo < 0 && *mag <= (uint64_t)0 - (uint64_t)lo) : *mag <= hi;
    if (!ok)
        return fr_error_set(err, FR_ERR_FORMAT, "%s: key '%s': value %s%llu does not fit %s",
                            g->path, key, *neg ? "-" : "", (unsigned long long)*mag, want);
    return FR_OK;
}

fr_status fr_gguf_get_u32(const fr_gguf *g, const char *key, uint32_t *out, fr_error *err) {
    bool neg = false;
    uint64_t m = 0;
    fr_status st = get_int(g, key, 0, UINT32_MAX, "u32", &neg, &m, err);
    if (!st) *out = (uint32_t)m;
    return st;
}

fr_status fr_gguf_get_u64(const fr_gguf *g, const char *key, uint64_t *out, fr_error *err) {
    bool neg = false;
    uint64_t m = 0;
    fr_status st = get_int(g, key, 0, UINT64_MAX, "u64", &neg, &m, err);
    if (!st) *out = m;
    return st;
}

fr_status fr_gguf_get_i32(const fr_gguf *g, const char *key, int32_t *out, fr_error *err) {
    bool neg = false;
    uint64_t m = 0;
    fr_status st = get_int(g, key, INT32_MIN, INT32_MAX, "i32", &neg, &m, err);
    if (!st) *out = neg ? (int32_t)(-(int64_t)m) : (int32_t)m;
    return st;
}

fr_status fr_gguf_get_i64(const fr_gguf *g, const char *key, int64_t *out, fr_error *err) {
    bool neg = false;
    uint64_t m = 0;
    fr_status st = get_int(g, key, INT64_MIN, INT64_MAX, "i64", &neg, &m, err);
    if (!st) *out = neg ? (int64_t)((uint64_t)0 - m) : (int64_t)m;
    return st;
}

fr_status fr_gguf_get_f64(const fr_gguf *g, const char *key, double *out, fr_error *err) {
    const fr_gguf_value *v;
    fr_status st = lookup(g, key, &v, err);
    if (st) return st;
    if (v->type == FR_GGUF_F32 || v->type == FR_GGUF_F64)
        *out = v->v.f;
    else if (is_unsigned(v->type))
        *out = (double)v->v.u;
    else if (is_signed(v->type))
        *out = (double)v->v.i;
    else
        return wrong_type(g, key, v, "a number", err);
    return FR_OK;
}

fr_status fr_gguf_get_f32(const fr_gguf *g, const char *key, float *out, fr_error *err) {
    double d;
    fr_status st = fr_gguf_get_f64(g, key, &d, err);
    if (!st) *out = (float)d;
    return st;
}

fr_status fr_gguf_get_bool(const fr_gguf *g, const char *key, bool *out, fr_error *err) {
    const fr_gguf_value *v;
    fr_status st = lookup(g, key, &v, err);
    if (st) return st;
    if (v->type != FR_GGUF_BOOL) return wrong_type(g, key, v, "bool", err);
    *out = v->v.b;
    return FR_OK;
}

fr_status fr_gguf_get_str(const fr_gguf *g, const char *key, fr_gguf_str *out, fr_error *err) {
    const fr_gguf_value *v;
    fr_status st = lookup(g, key, &v, err);
    if (st) return st;
    if (v->type != FR_GGUF_STRING) return wrong_type(g, key, v, "string", err);
    *out = v->v.str;
    return FR_OK;
}

fr_status fr_gguf_get_arr(const fr_gguf *g, const char *key, fr_gguf_type elem,
                          const fr_gguf_array **out, fr_error *err) {
    const fr_gguf_value *v;
    fr_status st = lookup(g, key, &v, err);
    if (st) return st;
    if (v->type != FR_GGUF_ARRAY) return wrong_type(g, key, v, "array", err);
    if (elem != FR_GGUF_TYPE_COUNT && v->v.arr.type != elem)
        return fr_error_set(err, FR_ERR_FORMAT, "%s: key '%s' is an array of %s, expected %s",
                            g->path, key, fr_gguf_type_name(v->v.arr.type),
                            fr_gguf_type_name(elem));
    *out = &v->v.arr;
    return FR_OK;
}

/* ---------------------------------------------------------------- array elements */

static bool arr_scalar(const fr_gguf_array *a, uint64_t i, fr_gguf_value *out) {
    if (i >= a->n || !a->data) return false;
    const size_t esz = type_sizes[a->type];
    const uint8_t *p = (const uint8_t *)a->data + i * esz;
    uint64_t u = load_le(p, (int)esz);
    out->type = a->type;
    switch (a->type) {
    case FR_GGUF_U8:
    case FR_GGUF_U16:
    case FR_GGUF_U32:
    case FR_GGUF_U64:
        out->v.u = u;
        break;
    case FR_GGUF_I8:
    case FR_GGUF_I16:
    case FR_GGUF_I32:
    case FR_GGUF_I64: {
        const int bits = 8 * (int)esz;
        out->v.i = bits == 64 ? (int64_t)u : (int64_t)(u << (64 - bits)) >> (64 - bits);
        break;
    }
    case FR_GGUF_F32: {
        uint32_t b = (uint32_t)u;
        float f;
        memcpy(&f, &b, 4);
        out->v.f = f;
        break;
    }
    case FR_GGUF_F64:
        memcpy(&out->v.f, &u, 8);
        break;
    case FR_GGUF_BOOL:
        out->v.b = u != 0;
        break;
    default:
        return false;
    }
    return true;
}

int64_t fr_gguf_arr_i64(const fr_gguf_array *a, uint64_t i) {
    fr_gguf_value v;
    if (!arr_scalar(a, i, &v)) return 0;
    if (is_unsigned(v.type)) return (int64_t)v.v.u;
    if (is_signed(v.type)) return v.v.i;
    if (v.type == FR_GGUF_BOOL) return v.v.b;
    return (int64_t)v.v.f;
}

uint64_t fr_gguf_arr_u64(const fr_gguf_array *a, uint64_t i) {
    fr_gguf_value v;
    if (!arr_scalar(a, i, &v)) return 0;
    if (is_unsigned(v.type)) return v.v.u;
    if (is_signed(v.type)) return (uint64_t)v.v.i;
    if (v.type == FR_GGUF_BOOL) return v.v.b;
    return v.v.f > 0 ? (uint64_t)v.v.f : 0;
}

double fr_gguf_arr_f64(const fr_gguf_array *a, uint64_t i) {
    fr_gguf_value v;
    if (!arr_scalar(a, i, &v)) return 0;
    if (is_unsigned(v.type)) return (double)v.v.u;
    if (is_signed(v.type)) return (double)v.v.i;
    if (v.type == FR_GGUF_BOOL) return v.v.b;
    return v.v.f;
}

fr_gguf_str fr_gguf_arr_str(const fr_gguf_array *a, uint64_t i) {
    if (a->type != FR_GGUF_STRING || !a->strs || i >= a->n) return (fr_gguf_str){"", 0};
    return a->strs[i];
}

fr_status fr_gguf_arr_to_i32(const fr_gguf_array *a, int32_t *out, const char *what,
                             fr_error *err) {
    if (!is_unsigned(a->type) && !is_signed(a->type) && a->type != FR_GGUF_BOOL)
        return fr_error_set(err, FR_ERR_FORMAT, "%s: array of %s, expected integers", what,
                            fr_gguf_type_name(a->type));
    for (uint64_t i = 0; i < a->n; i++) {
        fr_gguf_value v = {0};
        arr_scalar(a, i, &v);
        bool fits = is_unsigned(v.type) ? v.v.u <= INT32_MAX
                    : is_signed(v.type) ? v.v.i >= INT32_MIN && v.v.i <= INT32_MAX
                                        : true;
        if (!fits)
            return fr_error_set(err, FR_ERR_FORMAT, "%s: element %llu does not fit in int32", what,
                                (unsigned long long)i);
        out[i] = (int32_t)fr_gguf_arr_i64(a, i);
    }
    return FR_OK;
}

fr_status fr_gguf_arr_to_f32(const fr_gguf_array *a, float *out, const char *what, fr_error *err) {
    if (!a->data || a->type == FR_GGUF_BOOL)
        return fr_error_set(err, FR_ERR_FORMAT, "%s: array of %s, expected numbers", what,
                            fr_gguf_type_name(a->type));
    for (uint64_t i = 0; i < a->n; i++)
        out[i] = (float)fr_gguf_arr_f64(a, i);
    return FR_OK;
}
