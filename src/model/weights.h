/* Weight sources: a format-independent table of named tensors living in host memory (usually an
 * mmapped file). The model binds tensors by their canonical names, which are the Hugging Face
 * names ("model.embed_tokens.weight", "model.layers.3.self_attn.q_proj.weight", "lm_head.weight").
 *
 * A source for another format (GGUF) fills the same table: it translates its own names
 * (token_embd, blk.N.attn_q, ...) into the canonical ones, presents shapes row-major as the model
 * expects them ([out_features, in_features] for linear weights, i.e. GGUF's ne[] reversed), and
 * keeps quantized dtypes as they are (rows are whole quant blocks; matmul/embedding consume them).
 *
 * Memory is described by regions (one per mapped file) so a backend can wrap each region once;
 * every weight is a byte range inside one region, already checked to lie within it. */
#ifndef FR_MODEL_WEIGHTS_H
#define FR_MODEL_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/tensor.h"

typedef struct fr_weight {
    const char *name;       /* canonical (Hugging Face) name */
    fr_dtype dtype;         /* FR_DTYPE_COUNT when the file's dtype has no fr_dtype equivalent */
    const char *dtype_name; /* the file's own spelling ("F16", "I64", "q4_K", ...) for messages */
    int ndim;               /* 0..FR_MAX_DIMS */
    int64_t shape[FR_MAX_DIMS];
    int region;    /* index into fr_weight_source.regions */
    size_t offset; /* bytes from the region's base */
    size_t nbytes; /* exact size of the data */
    void *data;    /* host address = region base + offset */
} fr_weight;

typedef struct fr_weight_region {
    void *base;
    size_t size;
    const char *file; /* path, for messages */
} fr_weight_region;

typedef struct fr_weight_source fr_weight_source;

struct fr_weight_source {
    char *path; /* folder or file the source was opened from */
    fr_weight *weights;
    int n_weights; /* sorted by name once fr_weights_finish ran */
    fr_weight_region *regions;
    int n_regions;
    /* private bookkeeping */
    int cap_weights, cap_regions;
    char **strings;
    int n_strings, cap_strings;
    void **maps; /* munmap on free: maps[i] of map_sizes[i] bytes */
    size_t *map_sizes;
    /* Optional owner of memory added with fr_weights_add_region (e.g. a GGUF reader handle
     * whose mapping the regions point into): release(owner) runs when the source is freed. */
    void *owner;
    void (*release)(void *owner);
};

/* ---- reading ---- */

/* Looks a tensor up by canonical name; NULL when absent. */
const fr_weight *fr_weights_find(const fr_weight_source *s, const char *name);
/* The file a weight came from (for error messages). */
const char *fr_weight_file(const fr_weight_source *s, const fr_weight *w);
/* Number of elements (1 for a scalar). */
int64_t fr_weight_nelem(const fr_weight *w);
void fr_weights_free(fr_weight_source *s);

/* ---- building (used by the format readers) ---- */

fr_weight_source *fr_weights_new(const char *path);
/* Maps a whole file read-only; the mapping is released with the source. Returns the region
 * index in *region. An empty file gives a region of size 0 with base NULL. */
fr_status fr_weights_map_file(fr_weight_source *s, const char *file, int *region, fr_error *err);
/* Adds a region the caller owns (not unmapped on free): for tests and in-memory sources. */
int fr_weights_add_region(fr_weight_source *s, void *base, size_t size, const char *file);
/* Copies name/dtype_name; checks offset+nbytes within the region. */
fr_status fr_weights_add(fr_weight_source *s, const char *name, fr_dtype dtype,
                         const char *dtype_name, int ndim, const int64_t *shape, int region,
                         size_t offset, size_t nbytes, fr_error *err);
/* Sorts by name and rejects duplicate names (naming them). */
fr_status fr_weights_finish(fr_weight_source *s, fr_error *err);

#endif
