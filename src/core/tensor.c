#include "core/tensor.h"

#include <stdio.h>

fr_tensor fr_tensor_make(fr_buffer *buf, size_t offset, fr_dtype dtype, int ndim,
                         const int64_t *shape) {
    fr_tensor t = {0};
    t.dtype = dtype;
    t.ndim = ndim;
    t.buf = buf;
    t.offset = offset;
    const fr_dtype_info *info = fr_dtype_get(dtype);
    int64_t stride = info ? info->block_bytes : 0;
    for (int d = ndim - 1; d >= 0; d--) {
        t.shape[d] = shape[d];
        if (d == ndim - 1 && info && info->block_elems > 1) {
            t.stride[d] = 0; /* no per-element stride inside blocks */
            stride = (int64_t)fr_dtype_row_bytes(dtype, shape[d]);
        } else {
            t.stride[d] = stride;
            stride *= shape[d];
        }
    }
    for (int d = ndim; d < FR_MAX_DIMS; d++) {
        t.shape[d] = 1;
        t.stride[d] = 0;
    }
    return t;
}

fr_tensor fr_tensor_1d(fr_buffer *buf, size_t offset, fr_dtype dtype, int64_t n0) {
    return fr_tensor_make(buf, offset, dtype, 1, (int64_t[]){n0});
}
fr_tensor fr_tensor_2d(fr_buffer *buf, size_t offset, fr_dtype dtype, int64_t n0, int64_t n1) {
    return fr_tensor_make(buf, offset, dtype, 2, (int64_t[]){n0, n1});
}
fr_tensor fr_tensor_3d(fr_buffer *buf, size_t offset, fr_dtype dtype, int64_t n0, int64_t n1,
                       int64_t n2) {
    return fr_tensor_make(buf, offset, dtype, 3, (int64_t[]){n0, n1, n2});
}

int64_t fr_tensor_nelem(const fr_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

size_t fr_tensor_span_bytes(const fr_tensor *t) {
    if (fr_tensor_nelem(t) == 0) return 0;
    const int last = t->ndim - 1;
    size_t span = fr_dtype_get(t->dtype)->block_elems > 1
                      ? fr_dtype_row_bytes(t->dtype, t->shape[last])
                      : (size_t)((t->shape[last] - 1) * t->stride[last]) +
                            (size_t)fr_dtype_get(t->dtype)->block_bytes;
    for (int d = 0; d < last; d++) span += (size_t)((t->shape[d] - 1) * t->stride[d]);
    return span;
}

bool fr_tensor_is_contiguous(const fr_tensor *t) {
    fr_tensor c = fr_tensor_make(t->buf, t->offset, t->dtype, t->ndim, t->shape);
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] > 1 && c.stride[d] != t->stride[d]) return false;
    return true;
}

bool fr_tensor_rows_dense(const fr_tensor *t) {
    const fr_dtype_info *i = fr_dtype_get(t->dtype);
    if (i->block_elems > 1) return true;
    return t->shape[t->ndim - 1] <= 1 || t->stride[t->ndim - 1] == i->block_bytes;
}

fr_tensor fr_tensor_rows(const fr_tensor *t, int64_t row0, int64_t n) {
    fr_tensor v = *t;
    v.offset += (size_t)(row0 * t->stride[0]);
    v.shape[0] = n;
    return v;
}

const char *fr_tensor_describe(const fr_tensor *t, char *buf, size_t n) {
    int k = snprintf(buf, n, "%s[", fr_dtype_name(t->dtype));
    for (int d = 0; d < t->ndim && k > 0 && (size_t)k < n; d++)
        k += snprintf(buf + k, n - (size_t)k, d ? ",%lld" : "%lld", (long long)t->shape[d]);
    if (k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, "]");
    return buf;
}
