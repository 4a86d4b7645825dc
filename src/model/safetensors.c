/* safetensors: header parsed with cJSON from the mapped file, every entry validated before use. */
#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The format caps the header at 100 MB; anything larger is not a safetensors file. */
#define ST_MAX_HEADER (100u * 1024u * 1024u)

typedef struct {
    const char *name;
    int size; /* bytes per element */
    fr_dtype dtype;
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"F32", 4, FR_DTYPE_F32},       {"F16", 2, FR_DTYPE_F16},       {"BF16", 2, FR_DTYPE_BF16},
    {"I32", 4, FR_DTYPE_I32},       {"F64", 8, FR_DTYPE_COUNT},     {"I64", 8, FR_DTYPE_COUNT},
    {"U64", 8, FR_DTYPE_COUNT},     {"U32", 4, FR_DTYPE_COUNT},     {"I16", 2, FR_DTYPE_COUNT},
    {"U16", 2, FR_DTYPE_COUNT},     {"I8", 1, FR_DTYPE_COUNT},      {"U8", 1, FR_DTYPE_COUNT},
    {"BOOL", 1, FR_DTYPE_COUNT},    {"F8_E4M3", 1, FR_DTYPE_COUNT}, {"F8_E5M2", 1, FR_DTYPE_COUNT},
    {"F8_E8M0", 1, FR_DTYPE_COUNT},
};

static const st_dtype *find_dtype(const char *name) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (!strcmp(st_dtypes[i].name, name)) return &st_dtypes[i];
    return NULL;
}

/* A JSON number that is a non-negative integer below 2^53 (exact in a double). */
static bool json_u64(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

typedef struct {
    uint64_t begin, end;
    const char *name;
} st_span;

static int cmp_span(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end ? 1 : 0; /* an empty span before its neighbour */
}

static fr_status parse_entry(fr_weight_source *s, const char *file, int region, size_t data_start,
                             uint64_t data_size, const cJSON *e, st_span *span, fr_error *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return fr_error_set(err, FR_ERR_FORMAT, "%s: tensor %s: header entry is not an object",
                            file, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd))
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: tensor %s: field 'dtype' missing or not a string", file, name);
    const st_dtype *dt = find_dtype(jd->valuestring);
    if (!dt)
        return fr_error_set(err, FR_ERR_FORMAT, "%s: tensor %s: unknown dtype '%.32s'", file, name,
                            jd->valuestring);
    if (!cJSON_IsArray(js))
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: tensor %s: field 'shape' missing or not an array", file, name);
    int ndim = cJSON_GetArraySize(js);
    if (ndim > FR_MAX_DIMS)
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "%s: tensor %s: %d dimensions (at most %d)",
                            file, name, ndim, FR_MAX_DIMS);
    int64_t shape[FR_MAX_DIMS] = {0};
    bool any_zero = false;
    for (int d = 0; d < ndim; d++) {
        uint64_t v;
        if (!json_u64(cJSON_GetArrayItem(js, d), &v))
            return fr_error_set(err, FR_ERR_FORMAT,
                                "%s: tensor %s: shape[%d] is not a non-negative integer", file,
                                name, d);
        shape[d] = (int64_t)v;
        any_zero |= v == 0;
    }
    /* element count, refusing anything that cannot fit in the data section (so no overflow) */
    uint64_t nelem = 1;
    for (int d = 0; d < ndim && !any_zero; d++)
        if (__builtin_mul_overflow(nelem, (uint64_t)shape[d], &nelem) || nelem > data_size)
            return fr_error_set(err, FR_ERR_FORMAT,
                                "%s: tensor %s: shape needs more elements than the data section "
                                "has bytes (%llu)",
                                file, name, (unsigned long long)data_size);
    if (any_zero) nelem = 0;
    uint64_t begin, end;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 ||
        !json_u64(cJSON_GetArrayItem(jo, 0), &begin) || !json_u64(cJSON_GetArrayItem(jo, 1), &end))
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: tensor %s: field 'data_offsets' must be two non-negative "
                            "integers",
                            file, name);
    if (begin > end)
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: tensor %s: data_offsets [%llu, %llu) begin after end", file, name,
                            (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: tensor %s: data_offsets [%llu, %llu) run past the end of the "
                            "data section (%llu bytes; file truncated?)",
                            file, name, (unsigned long long)begin, (unsigned long long)end,
                            (unsigned long long)data_size);
    uint64_t want = nelem * (uint64_t)dt->size; /* nelem <= data_size < 2^63: no overflow */
    if (end - begin != want)
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: tensor %s: %s shape needs %llu bytes but data_offsets span %llu",
                            file, name, dt->name, (unsigned long long)want,
                            (unsigned long long)(end - begin));
    span->begin = begin;
    span->end = end;
    span->name = name;
    return fr_weights_add(s, name, dt->dtype, dt->name, ndim, shape, region,
                          data_start + (size_t)begin, (size_t)(end - begin), err);
}

/* Tensors must not share bytes: a lying header could otherwise alias one tensor onto another. */
static fr_status check_overlaps(const char *file, st_span *spans, int n, fr_error *err) {
    if (n < 2) return FR_OK;
    qsort(spans, (size_t)n, sizeof *spans, cmp_span);
    int last = -1; /* the non-empty span reaching furthest so far */
    for (int i = 0; i < n; i++) {
        if (spans[i].end == spans[i].begin) continue;
        if (last >= 0 && spans[i].begin < spans[last].end)
            return fr_error_set(err, FR_ERR_FORMAT,
                                "%s: tensor %s: data_offsets [%llu, %llu) overlap tensor %s", file,
                                spans[i].name, (unsigned long long)spans[i].begin,
                                (unsigned long long)spans[i].end, spans[last].name);
        if (last < 0 || spans[i].end > spans[last].end) last = i;
    }
    return FR_OK;
}

/* The format's rule (safetensors' README, "no holes"): the tensors, in offset order, tile the data
 * section exactly, from byte 0 to its last byte. Without it a header length off by a few bytes
 * still "fits" and every tensor is read shifted, as garbage; with it a file has one reading.
 * Runs after check_overlaps (spans sorted, none overlapping). */
static fr_status check_coverage(const char *file, const st_span *spans, int n, uint64_t data_size,
                                fr_error *err) {
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (spans[i].begin != at)
            return fr_error_set(err, FR_ERR_FORMAT,
                                "%s: tensor %s: data_offsets [%llu, %llu) leave bytes [%llu, "
                                "%llu) of the data section unused (the format allows no holes; "
                                "wrong header length?)",
                                file, spans[i].name, (unsigned long long)spans[i].begin,
                                (unsigned long long)spans[i].end, (unsigned long long)at,
                                (unsigned long long)spans[i].begin);
        at = spans[i].end;
    }
    if (at != data_size)
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: the tensors cover %llu bytes but the data section after the "
                            "header has %llu (the format allows no trailing bytes; wrong header "
                            "length?)",
                            file, (unsigned long long)at, (unsigned long long)data_size);
    return FR_OK;
}

static int cmp_span_name(const void *a, const void *b) {
    return strcmp(((const st_span *)a)->name, ((const st_span *)b)->name);
}

/* The format forbids repeated keys; cJSON keeps them all, so which one counted would be luck. */
static fr_status check_duplicates(const char *file, st_span *spans, int n, fr_error *err) {
    qsort(spans, (size_t)n, sizeof *spans, cmp_span_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(spans[i].name, spans[i - 1].name))
            return fr_error_set(err, FR_ERR_FORMAT, "%s: tensor %s appears twice in the header",
                                file, spans[i].name);
    return FR_OK;
}

fr_status fr_safetensors_add_file(fr_weight_source *s, const char *file, fr_error *err) {
    int region;
    fr_status st = fr_weights_map_file(s, file, &region, err);
    if (st) return st;
    const fr_weight_region *r = &s->regions[region];
    const unsigned char *p = r->base;
    if (r->size < 8)
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: %zu bytes is too short for a safetensors header", file, r->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen > ST_MAX_HEADER || hlen > r->size - 8)
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: header length %llu (bytes 0-7) exceeds the file (%zu bytes) or "
                            "the 100 MB limit",
                            file, (unsigned long long)hlen, r->size);
    if (hlen < 2 || p[8] != '{')
        return fr_error_set(err, FR_ERR_FORMAT, "%s: header at byte 8 is not a JSON object", file);
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)p + 8, (size_t)hlen, &parse_end, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = parse_end ? (size_t)(parse_end - (const char *)p) : 8;
        cJSON_Delete(root);
        return fr_error_set(err, FR_ERR_FORMAT, "%s: header JSON is malformed near byte %zu", file,
                            at);
    }
    /* the JSON must end where the length says: only padding may follow it (the format pads
     * with spaces; any JSON whitespace is accepted, as a JSON parser of the whole header would) */
    for (const char *q = parse_end; q < (const char *)p + 8 + hlen; q++) {
        if (*q != ' ' && *q != '\n' && *q != '\r' && *q != '\t') {
            cJSON_Delete(root);
            return fr_error_set(err, FR_ERR_FORMAT,
                                "%s: header JSON ends at byte %zu, but the header length (bytes "
                                "0-7) ends the header at byte %llu; byte %zu is not padding",
                                file, (size_t)(parse_end - (const char *)p),
                                (unsigned long long)(8 + hlen), (size_t)(q - (const char *)p));
        }
    }
    const size_t data_start = 8 + (size_t)hlen;
    const uint64_t data_size = r->size - data_start;
    int n = cJSON_GetArraySize(root);
    st_span *spans = calloc((size_t)(n > 0 ? n : 1), sizeof *spans);
    if (!spans) {
        cJSON_Delete(root);
        return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", file);
    }
    int n_spans = 0;
    for (const cJSON *e = root->child; e && !st; e = e->next) {
        if (!e->string || !strcmp(e->string, "__metadata__")) continue;
        st = parse_entry(s, file, region, data_start, data_size, e, &spans[n_spans], err);
        if (!st) n_spans++;
    }
    if (!st) st = check_overlaps(file, spans, n_spans, err);
    if (!st) st = check_coverage(file, spans, n_spans, data_size, err);
    if (!st) st = check_duplicates(file, spans, n_spans, err);
    free(spans);
    cJSON_Delete(root);
    return st;
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static fr_status read_text(const char *path, char **out, fr_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return fr_error_set(err, FR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size > 64 * 1024 * 1024) {
        fclose(f);
        return fr_error_set(err, FR_ERR_FORMAT, "%s: unreadable or larger than 64 MB", path);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (got != (size_t)st.st_size) {
        free(buf);
        return fr_error_set(err, FR_ERR_IO, "%s: short read", path);
    }
    buf[got] = 0;
    *out = buf;
    return FR_OK;
}

/* Shard names come from a file we do not trust: keep them inside the model folder. */
static bool safe_shard_name(const char *n) {
    return n[0] && n[0] != '.' && !strchr(n, '/') && !strchr(n, '\\') && strlen(n) < 512;
}

static fr_status open_index(fr_weight_source *s, const char *dir, const char *index,
                            fr_error *err) {
    char *text = NULL;
    fr_status st = read_text(index, &text, err);
    if (st) return st;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return fr_error_set(err, FR_ERR_FORMAT, "%s: %s", index,
                            root ? "field 'weight_map' missing or not an object"
                                 : "malformed JSON");
    }
    char path[4096];
    for (const cJSON *e = map->child; e && !st; e = e->next) {
        if (!e->string || !cJSON_IsString(e) || !safe_shard_name(e->valuestring)) {
            st = fr_error_set(err, FR_ERR_FORMAT,
                              "%s: weight_map entry for tensor %s is not a plain file name", index,
                              e->string ? e->string : "?");
            break;
        }
        /* load each distinct shard once, in order of first mention */
        bool seen = false;
        for (const cJSON *p = map->child; p != e && !seen; p = p->next)
            seen = !strcmp(p->valuestring, e->valuestring);
        if (seen) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
        st = fr_safetensors_add_file(s, path, err);
    }
    if (!st) st = fr_weights_finish(s, err);
    /* every tensor the index promises must be in the shard it names */
    for (const cJSON *e = map->child; e && !st; e = e->next) {
        const fr_weight *w = fr_weights_find(s, e->string);
        snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
        if (!w)
            st = fr_error_set(err, FR_ERR_FORMAT, "%s: tensor %s listed in %s is missing", path,
                              e->string, index);
        else if (strcmp(fr_weight_file(s, w), path))
            st = fr_error_set(err, FR_ERR_FORMAT, "%s: tensor %s is listed for %s but found in %s",
                              index, e->string, path, fr_weight_file(s, w));
    }
    cJSON_Delete(root);
    return st;
}

fr_status fr_safetensors_open(const char *path, fr_weight_source **out, fr_error *err) {
    *out = NULL;
    struct stat st_path;
    if (stat(path, &st_path) != 0)
        return fr_error_set(err, FR_ERR_NOT_FOUND, "%s: %s", path, strerror(errno));
    fr_weight_source *s = fr_weights_new(path);
    if (!s) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
    fr_status st;
    if (S_ISDIR(st_path.st_mode)) {
        char index[4096], single[4096];
        snprintf(index, sizeof index, "%s/model.safetensors.index.json", path);
        snprintf(single, sizeof single, "%s/model.safetensors", path);
        if (file_exists(index)) {
            st = open_index(s, path, index, err);
        } else if (file_exists(single)) {
            st = fr_safetensors_add_file(s, single, err);
            if (!st) st = fr_weights_finish(s, err);
        } else {
            st = fr_error_set(err, FR_ERR_NOT_FOUND,
                              "%s: no model.safetensors or model.safetensors.index.json", path);
        }
    } else {
        st = fr_safetensors_add_file(s, path, err);
        if (!st) st = fr_weights_finish(s, err);
    }
    if (st) {
        fr_weights_free(s);
        return st;
    }
    *out = s;
    return FR_OK;
}
