/* Aligned allocation and a bump arena for per-step scratch. */
#ifndef FR_CORE_ALLOC_H
#define FR_CORE_ALLOC_H

#include <stddef.h>

#define FR_ALIGN 64

/* Zero-initialised? No: contents are undefined. Returns NULL on failure or size overflow. */
void *fr_aligned_alloc(size_t size);
void fr_aligned_free(void *p);

/* Rounds n up to a multiple of a (a power of two). */
static inline size_t fr_align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

typedef struct fr_arena {
    char *base;
    size_t size;
    size_t used;
} fr_arena;

int fr_arena_init(fr_arena *a, size_t size); /* 0 on success */
void fr_arena_free(fr_arena *a);
/* Aligned to FR_ALIGN; NULL when the arena is exhausted. */
void *fr_arena_alloc(fr_arena *a, size_t size);
static inline void fr_arena_reset(fr_arena *a) { a->used = 0; }

#endif
