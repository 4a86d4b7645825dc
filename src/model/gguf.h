/* GGUF files (v2 and v3, little-endian): a validating reader over an mmapped file and a writer.
 *
 * The reader checks every count, length, offset, dimension product and type against the file
 * size before use; a file that opens has only in-bounds, non-overlapping, aligned tensors whose
 * byte sizes match their type and shape, unique keys and tensor names, and well-formed values.
 * Errors name the file, the key or tensor and the byte offset at fault.
 *
 * Shapes are presented row-major, outermost first (GGUF stores ne[0] = innermost: reversed here),
 * so a linear weight of ne = [in, out] reads as shape [out, in], as in Hugging Face files.
 * Tensors of GGML types ferrum cannot compute with (Q2_K, IQ*, ...) are still validated and
 * listed, with dtype = FR_DTYPE_COUNT and ggml_type / type_name telling which type they are. */
#ifndef FR_MODEL_GGUF_H
#define FR_MODEL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/dtype.h"
#include "ferrum.h"

#define FR_GGUF_MAGIC             0x46554747u /* "GGUF" read as a little-endian u32 */
#define FR_GGUF_DEFAULT_ALIGNMENT 32
#define FR_GGUF_MAX_DIMS          4
#define FR_GGUF_MAX_ARRAY_DEPTH   8 /* nested arrays deeper than this are rejected */

typedef enum fr_gguf_type {
    FR_GGUF_U8 = 0,
    FR_GGUF_I8 = 1,
    FR_GGUF_U16 = 2,
    FR_GGUF_I16 = 3,
    FR_GGUF_U32 = 4,
    FR_GGUF_I32 = 5,
    FR_GGUF_F32 = 6,
    FR_GGUF_BOOL = 7,
    FR_GGUF_STRING = 8,
    FR_GGUF_ARRAY = 9,
    FR_GGUF_U64 = 10,
    FR_GGUF_I64 = 11,
    FR_GGUF_F64 = 12,
    FR_GGUF_TYPE_COUNT
} fr_gguf_type;

const char *fr_gguf_type_name(fr_gguf_type t); /* "u32", "string", "array", ... */
/* Bytes of one element of a fixed-size type; 0 for string, array and invalid types. */
size_t fr_gguf_type_size(fr_gguf_type t);

/* A string: NUL-terminated copy (so C code may use .s directly), len excludes the NUL; GGUF
 * strings may contain NUL bytes, in which case only len tells the full length. */
typedef struct fr_gguf_str {
    const char *s;
    uint64_t len;
} fr_gguf_str;

typedef struct fr_gguf_value fr_gguf_value;

typedef struct fr_gguf_array {
    fr_gguf_type type; /* element type */
    uint64_t n;
    /* exactly one is set, by element type: */
    const void *data;           /* fixed-size elements, packed little-endian, possibly unaligned */
    const fr_gguf_str *strs;    /* FR_GGUF_STRING */
    const fr_gguf_value *items; /* FR_GGUF_ARRAY: each item is itself an array value */
} fr_gguf_array;

struct fr_gguf_value {
    fr_gguf_type type;
    union {
        uint64_t u; /* u8, u16, u32, u64 */
        int64_t i;  /* i8, i16, i32, i64 */
        double f;   /* f32 (exactly widened), f64 */
        bool b;
        fr_gguf_str str;
        fr_gguf_array arr;
    } v;
};

typedef struct fr_gguf_kv {
    fr_gguf_str key;
    fr_gguf_value value;
    uint64_t offset; /* file offset of the key, for messages */
} fr_gguf_kv;

typedef struct fr_gguf_tensor {
    const char *name;
    fr_dtype dtype;                  /* FR_DTYPE_COUNT when ferrum cannot compute with ggml_type */
    uint32_t ggml_type;              /* the id stored in the file */
    const char *type_name;           /* GGML's name of ggml_type ("Q4_K") */
    int ndim;                        /* 0..4 */
    int64_t shape[FR_GGUF_MAX_DIMS]; /* row-major, outermost first; unused entries are 1 */
    int64_t n_elements;
    uint64_t offset; /* absolute file offset of the data */
    size_t nbytes;
    const void *data; /* into the mapping */
} fr_gguf_tensor;

typedef struct fr_gguf fr_gguf;

/* Maps and validates `path`. */
fr_status fr_gguf_open(const char *path, fr_gguf **out, fr_error *err);
/* Validates a caller-owned buffer (kept, not copied; it must outlive the handle); `name` is used
 * in messages. */
fr_status fr_gguf_open_memory(const void *data, size_t size, const char *name, fr_gguf **out,
                              fr_error *err);
void fr_gguf_close(fr_gguf *g);

const char *fr_gguf_path(const fr_gguf *g);
uint32_t fr_gguf_version(const fr_gguf *g);
uint32_t fr_gguf_alignment(const fr_gguf *g);
uint64_t fr_gguf_data_offset(const fr_gguf *g); /* start of the tensor data section */
const void *fr_gguf_base(const fr_gguf *g);     /* the mapping, fr_gguf_size() bytes */
size_t fr_gguf_size(const fr_gguf *g);

/* ---- metadata: iteration in file order and lookup ---- */
size_t fr_gguf_kv_count(const fr_gguf *g);
const fr_gguf_kv *fr_gguf_kv_at(const fr_gguf *g, size_t i);
const fr_gguf_value *fr_gguf_find(const fr_gguf *g, const char *key); /* NULL if absent */

/* Typed getters. FR_ERR_NOT_FOUND when absent, FR_ERR_FORMAT when the stored type does not
 * convert: integers convert between widths and signedness only when the value fits; f32 accepts
 * any float or integer type, f64 likewise; bool accepts only bool. */
fr_status fr_gguf_get_u32(const fr_gguf *g, const char *key, uint32_t *out, fr_error *err);
fr_status fr_gguf_get_i32(const fr_gguf *g, const char *key, int32_t *out, fr_error *err);
fr_status fr_gguf_get_u64(const fr_gguf *g, const char *key, uint64_t *out, fr_error *err);
fr_status fr_gguf_get_i64(const fr_gguf *g, const char *key, int64_t *out, fr_error *err);
fr_status fr_gguf_get_f32(const fr_gguf *g, const char *key, float *out, fr_error *err);
fr_status fr_gguf_get_f64(const fr_gguf *g, const char *key, double *out, fr_error *err);
fr_status fr_gguf_get_bool(const fr_gguf *g, const char *key, bool *out, fr_error *err);
fr_status fr_gguf_get_str(const fr_gguf *g, const char *key, fr_gguf_str *out, fr_error *err);
/* An array value; `elem` requires that element type (FR_GGUF_TYPE_COUNT accepts any). */
fr_status fr_gguf_get_arr(const fr_gguf *g, const char *key, fr_gguf_type elem,
                          const fr_gguf_array **out, fr_error *err);

/* Array elements, converted (index must be < a->n; the element type must be numeric/bool for
 * the numeric getters and string for _str; a mismatch yields 0 / an empty string). */
int64_t fr_gguf_arr_i64(const fr_gguf_array *a, uint64_t i);
uint64_t fr_gguf_arr_u64(const fr_gguf_array *a, uint64_t i);
double fr_gguf_arr_f64(const fr_gguf_array *a, uint64_t i);
fr_gguf_str fr_gguf_arr_str(const fr_gguf_array *a, uint64_t i);
/* Copies a whole integer array into int32 / float (FR_ERR_FORMAT naming the key and index when
 * an element does not fit). out must hold a->n elements. */
fr_status fr_gguf_arr_to_i32(const fr_gguf_array *a, int32_t *out, const char *what, fr_error *err);
fr_status fr_gguf_arr_to_f32(const fr_gguf_array *a, float *out, const char *what, fr_error *err);

/* ---- tensors: iteration in file order and lookup ---- */
size_t fr_gguf_tensor_count(const fr_gguf *g);
const fr_gguf_tensor *fr_gguf_tensor_at(const fr_gguf *g, size_t i);
const fr_gguf_tensor *fr_gguf_find_tensor(const fr_gguf *g, const char *name); /* NULL absent */

/* ---- writer (gguf_write.c): v3 files, alignment 32 unless general.alignment (u32) says
 * otherwise. Keys and tensors keep insertion order; setting an existing key replaces it. ---- */
typedef struct fr_gguf_writer fr_gguf_writer;

fr_status fr_gguf_writer_create(fr_gguf_writer **out, fr_error *err);
void fr_gguf_writer_free(fr_gguf_writer *w);

/* Any value, deep-copied (nested arrays included), e.g. straight from a reader's fr_gguf_kv. */
fr_status fr_gguf_writer_set(fr_gguf_writer *w, const char *key, const fr_gguf_value *v,
                             fr_error *err);
fr_status fr_gguf_writer_set_u32(fr_gguf_writer *w, const char *key, uint32_t v, fr_error *err);
fr_status fr_gguf_writer_set_i32(fr_gguf_writer *w, const char *key, int32_t v, fr_error *err);
fr_status fr_gguf_writer_set_u64(fr_gguf_writer *w, const char *key, uint64_t v, fr_error *err);
fr_status fr_gguf_writer_set_f32(fr_gguf_writer *w, const char *key, float v, fr_error *err);
fr_status fr_gguf_writer_set_bool(fr_gguf_writer *w, const char *key, bool v, fr_error *err);
fr_status fr_gguf_writer_set_str(fr_gguf_writer *w, const char *key, const char *v, fr_error *err);
/* Array of fixed-size elements (host order = little-endian), e.g. FR_GGUF_I32 token types. */
fr_status fr_gguf_writer_set_arr(fr_gguf_writer *w, const char *key, fr_gguf_type elem,
                                 const void *data, uint64_t n, fr_error *err);
fr_status fr_gguf_writer_set_arr_str(fr_gguf_writer *w, const char *key, const char *const *strs,
                                     uint64_t n, fr_error *err);

/* Declares a tensor (shape row-major, outermost first; the innermost dimension must be a whole
 * number of blocks). `data` (nbytes = fr_dtype_row_bytes * rows) is borrowed until the file is
 * written; pass NULL to stream it later with fr_gguf_writer_write_data. */
fr_status fr_gguf_writer_add_tensor(fr_gguf_writer *w, const char *name, fr_dtype dtype, int ndim,
                                    const int64_t *shape, const void *data, fr_error *err);

/* Writes everything in one go (every tensor must have data). */
fr_status fr_gguf_writer_write(fr_gguf_writer *w, const char *path, fr_error *err);

/* Streaming: begin writes header, metadata and tensor infos; then each tensor's bytes in
 * declaration order; finish closes the file (and checks every tensor was written). The bytes go
 * out strictly in order (no seeks), so any stream will do. begin opens `path` by the rules of
 * core/outfile.h (a temporary file renamed into place by finish; on any error it is removed and
 * an existing file at `path` is left intact). begin_stream writes to the caller's `f` (`name` is
 * for messages); finish then only flushes it, and the caller commits or aborts its output. */
fr_status fr_gguf_writer_begin(fr_gguf_writer *w, const char *path, fr_error *err);
fr_status fr_gguf_writer_begin_stream(fr_gguf_writer *w, FILE *f, const char *name, fr_error *err);
fr_status fr_gguf_writer_write_data(fr_gguf_writer *w, const void *data, size_t nbytes,
                                    fr_error *err);
fr_status fr_gguf_writer_finish(fr_gguf_writer *w, fr_error *err);

#endif
