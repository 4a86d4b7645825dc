/* The format-independent weight table: regions (mapped files) and named byte ranges in them. */
#include "model/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static char *keep_string(fr_weight_source *s, const char *str) {
    if (s->n_strings == s->cap_strings) {
        int cap = s->cap_strings ? 2 * s->cap_strings : 64;
        char **p = realloc(s->strings, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        s->strings = p;
        s->cap_strings = cap;
    }
    char *c = strdup(str);
    if (c) s->strings[s->n_strings++] = c;
    return c;
}

fr_weight_source *fr_weights_new(const char *path) {
    fr_weight_source *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->path = strdup(path ? path : "");
    if (!s->path) {
        free(s);
        return NULL;
    }
    return s;
}

void fr_weights_free(fr_weight_source *s) {
    if (!s) return;
    for (int i = 0; i < s->n_regions; i++)
        if (s->maps && s->maps[i]) munmap(s->maps[i], s->map_sizes[i]);
    for (int i = 0; i < s->n_strings; i++)
        free(s->strings[i]);
    free(s->strings);
    free(s->maps);
    free(s->map_sizes);
    free(s->regions);
    free(s->weights);
    free(s->path);
    if (s->release) s->release(s->owner); /* after the regions pointing into it are gone */
    free(s);
}

static int add_region(fr_weight_source *s, void *base, size_t size, const char *file, void *map,
                      size_t map_size) {
    if (s->n_regions == s->cap_regions) {
        int cap = s->cap_regions ? 2 * s->cap_regions : 4;
        fr_weight_region *r = realloc(s->regions, (size_t)cap * sizeof *r);
        if (!r) return -1;
        s->regions = r;
        void **m = realloc(s->maps, (size_t)cap * sizeof *m);
        if (!m) return -1;
        s->maps = m;
        size_t *ms = realloc(s->map_sizes, (size_t)cap * sizeof *ms);
        if (!ms) return -1;
        s->map_sizes = ms;
        s->cap_regions = cap;
    }
    const char *f = keep_string(s, file ? file : "");
    if (!f) return -1;
    s->regions[s->n_regions] = (fr_weight_region){base, size, f};
    s->maps[s->n_regions] = map;
    s->map_sizes[s->n_regions] = map_size;
    return s->n_regions++;
}

int fr_weights_add_region(fr_weight_source *s, void *base, size_t size, const char *file) {
    return add_region(s, base, size, file, NULL, 0);
}

fr_status fr_weights_map_file(fr_weight_source *s, const char *file, int *region, fr_error *err) {
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fr_error_set(err, errno == ENOENT ? FR_ERR_NOT_FOUND : FR_ERR_IO,
                            "%s: cannot open: %s", file, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fr_error_set(err, FR_ERR_IO, "%s: not a regular file", file);
    }
    size_t size = (size_t)st.st_size;
    void *map = NULL;
    if (size > 0) {
        /* MAP_PRIVATE: nothing ever writes through it, but a private mapping keeps a concurrent
         * writer of the file from changing what we validated less surprisingly than MAP_SHARED */
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return fr_error_set(err, FR_ERR_IO, "%s: mmap of %zu bytes failed: %s", file, size,
                                strerror(e));
        }
    }
    close(fd);
    int r = add_region(s, map, size, file, map, size);
    if (r < 0) {
        if (map) munmap(map, size);
        return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", file);
    }
    *region = r;
    return FR_OK;
}

fr_status fr_weights_add(fr_weight_source *s, const char *name, fr_dtype dtype,
                         const char *dtype_name, int ndim, const int64_t *shape, int region,
                         size_t offset, size_t nbytes, fr_error *err) {
    if (region < 0 || region >= s->n_regions)
        return fr_error_set(err, FR_ERR_INVALID, "tensor %s: bad region %d", name, region);
    const fr_weight_region *r = &s->regions[region];
    if (offset > r->size || nbytes > r->size - offset)
        return fr_error_set(err, FR_ERR_FORMAT,
                            "%s: tensor %s: data [%zu, %zu) lies outside the file's %zu bytes",
                            r->file, name, offset, offset + nbytes, r->size);
    if (ndim < 0 || ndim > FR_MAX_DIMS)
        return fr_error_set(err, FR_ERR_UNSUPPORTED, "%s: tensor %s: %d dimensions (at most %d)",
                            r->file, name, ndim, FR_MAX_DIMS);
    if (s->n_weights == s->cap_weights) {
        int cap = s->cap_weights ? 2 * s->cap_weights : 64;
        fr_weight *w = realloc(s->weights, (size_t)cap * sizeof *w);
        if (!w) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", r->file);
        s->weights = w;
        s->cap_weights = cap;
    }
    fr_weight *w = &s->weights[s->n_weights];
    memset(w, 0, sizeof *w);
    w->name = keep_string(s, name);
    const char *dn = dtype_name ? dtype_name : fr_dtype_name(dtype);
    w->dtype_name = keep_string(s, dn ? dn : "?");
    if (!w->name || !w->dtype_name)
        return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", r->file);
    w->dtype = dtype;
    w->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        w->shape[d] = shape[d];
    w->region = region;
    w->offset = offset;
    w->nbytes = nbytes;
    w->data = r->base ? (char *)r->base + offset : NULL;
    s->n_weights++;
    return FR_OK;
}

static int cmp_weight(const void *a, const void *b) {
    return strcmp(((const fr_weight *)a)->name, ((const fr_weight *)b)->name);
}

fr_status fr_weights_finish(fr_weight_source *s, fr_error *err) {
    if (s->n_weights > 1) qsort(s->weights, (size_t)s->n_weights, sizeof *s->weights, cmp_weight);
    for (int i = 1; i < s->n_weights; i++)
        if (!strcmp(s->weights[i].name, s->weights[i - 1].name))
            return fr_error_set(err, FR_ERR_FORMAT, "%s: tensor %s appears twice (in %s and %s)",
                                s->path, s->weights[i].name, fr_weight_file(s, &s->weights[i - 1]),
                                fr_weight_file(s, &s->weights[i]));
    return FR_OK;
}

const fr_weight *fr_weights_find(const fr_weight_source *s, const char *name) {
    int lo = 0, hi = s->n_weights - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, s->weights[mid].name);
        if (c == 0) return &s->weights[mid];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *fr_weight_file(const fr_weight_source *s, const fr_weight *w) {
    if (w->region >= 0 && w->region < s->n_regions) return s->regions[w->region].file;
    return s->path;
}

int64_t fr_weight_nelem(const fr_weight *w) {
    int64_t n = 1;
    for (int d = 0; d < w->ndim; d++)
        n *= w->shape[d];
    return n;
}
