/* Tensor descriptors: small values that point into a backend buffer. Shapes are row-major:
 * shape[0] is the outermost dimension, shape[ndim-1] the innermost. Strides are in bytes; for
 * quantized types only the row strides (dims < ndim-1) are meaningful and rows are whole blocks. */
#ifndef FR_CORE_TENSOR_H
#define FR_CORE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

#define FR_MAX_DIMS 4

struct fr_backend;

/* A block of memory owned by (or wrapped into) one backend. `data` is a host pointer on the CPU
 * backend and a device pointer on GPU backends; never dereference it outside that backend. */
typedef struct fr_buffer {
    struct fr_backend *backend;
    void *data;
    size_t size;
    bool owned; /* false for wrapped host memory (e.g. an mmapped file) */
    void *impl; /* backend private */
} fr_buffer;

typedef struct fr_tensor {
    fr_dtype dtype;
    int ndim;
    int64_t shape[FR_MAX_DIMS];
    int64_t stride[FR_MAX_DIMS]; /* bytes */
    fr_buffer *buf;
    size_t offset; /* bytes from buf->data */
} fr_tensor;

/* A contiguous tensor of ndim dims at buf+offset. */
fr_tensor fr_tensor_make(fr_buffer *buf, size_t offset, fr_dtype dtype, int ndim,
                         const int64_t *shape);
fr_tensor fr_tensor_1d(fr_buffer *buf, size_t offset, fr_dtype dtype, int64_t n0);
fr_tensor fr_tensor_2d(fr_buffer *buf, size_t offset, fr_dtype dtype, int64_t n0, int64_t n1);
fr_tensor fr_tensor_3d(fr_buffer *buf, size_t offset, fr_dtype dtype, int64_t n0, int64_t n1,
                       int64_t n2);

int64_t fr_tensor_nelem(const fr_tensor *t);
/* Bytes spanned from the first element to one past the last (for bounds checks). */
size_t fr_tensor_span_bytes(const fr_tensor *t);
/* True when elements are densely packed in row-major order. */
bool fr_tensor_is_contiguous(const fr_tensor *t);
/* True when the innermost dim is dense (rows may have any stride). */
bool fr_tensor_rows_dense(const fr_tensor *t);
/* Host address of the first element (CPU buffers only). */
static inline void *fr_tensor_host(const fr_tensor *t) { return (char *)t->buf->data + t->offset; }

/* A view of rows [row0, row0+n) along dim 0. */
fr_tensor fr_tensor_rows(const fr_tensor *t, int64_t row0, int64_t n);

/* Human-readable "f32[3,17]" into buf; returns buf. */
const char *fr_tensor_describe(const fr_tensor *t, char *buf, size_t n);

#endif
