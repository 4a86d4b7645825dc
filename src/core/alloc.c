#include "core/alloc.h"

#include <stdint.h>
#include <stdlib.h>

void *fr_aligned_alloc(size_t size) {
    if (size == 0) size = FR_ALIGN;
    if (size > SIZE_MAX - FR_ALIGN) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, FR_ALIGN, fr_align_up(size, FR_ALIGN)) != 0) return NULL;
    return p;
}

void fr_aligned_free(void *p) { free(p); }

int fr_arena_init(fr_arena *a, size_t size) {
    a->base = fr_aligned_alloc(size);
    a->size = a->base ? size : 0;
    a->used = 0;
    return a->base ? 0 : -1;
}

void fr_arena_free(fr_arena *a) {
    fr_aligned_free(a->base);
    a->base = NULL;
    a->size = a->used = 0;
}

void *fr_arena_alloc(fr_arena *a, size_t size) {
    size_t start = fr_align_up(a->used, FR_ALIGN);
    if (start > a->size || size > a->size - start) return NULL;
    a->used = start + size;
    return a->base + start;
}
