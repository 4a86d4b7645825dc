/* Op micro-benchmarks: GB/s for the memory-bound ops (rms_norm, GEMV, decode attention) and
 * GFLOP/s for GEMM, per backend in FR_BENCH_BACKENDS (comma list, default "cpu"; "cpu:avx2"
 * forces a kernel variant; FR_BENCH_THREADS sets the CPU thread count, default one per core). Each
 * number is the median of several timed repeats.
 *
 * The machine's read bandwidth (a big-array sum on every pool thread) is measured first so the
 * GEMV and attention GB/s show as a percentage of what the memory can deliver. Weights are
 * cycled through enough copies to exceed the last-level cache, as in real decode where every
 * step streams the whole model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dtype.h"
#include "core/membw.h"
#include "core/threadpool.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_kernels.h"

#define REPEATS    9
#define COLD_BYTES (256u << 20) /* weight copies per case sum to at least this much */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}


/* ------------------------------------------------------------------ helpers */

static fr_backend *B;

typedef struct {
    fr_buffer buf;
    fr_tensor t;
} dt;

static void dt_make(dt *d, fr_dtype type, int ndim, const int64_t *shape) {
    memset(d, 0, sizeof *d);
    size_t bytes = (size_t)fr_dtype_get(type)->block_bytes;
    for (int i = 0; i < ndim; i++)
        bytes *= (size_t)shape[i];
    fr_error err = {0};
    if (fr_buffer_alloc(B, bytes, &d->buf, &err) != FR_OK) {
        fprintf(stderr, "bench_ops: %s\n", err.msg);
        exit(1);
    }
    /* random values in (-1, 1) stored in the tensor's dtype */
    unsigned char *host = malloc(bytes);
    uint64_t s = 0x9e3779b97f4a7c15ull ^ bytes;
    const size_t es = (size_t)fr_dtype_get(type)->block_bytes, n = bytes / es;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        const float v = (float)((double)(s >> 11) * 0x1p-53 * 2.0 - 1.0);
        if (type == FR_DTYPE_F16)
            ((uint16_t *)host)[i] = fr_f32_to_f16(v);
        else if (type == FR_DTYPE_BF16)
            ((uint16_t *)host)[i] = fr_f32_to_bf16(v);
        else if (type == FR_DTYPE_I32)
            ((int32_t *)host)[i] = 0;
        else
            ((float *)host)[i] = v;
    }
    fr_buffer_upload(&d->buf, 0, host, bytes, &err);
    free(host);
    d->t = fr_tensor_make(&d->buf, 0, type, ndim, shape);
}

static void dt_set_i32(dt *d, const int32_t *v, int64_t n) {
    fr_error err = {0};
    fr_buffer_upload(&d->buf, 0, v, (size_t)n * 4, &err);
}

typedef fr_status (*bench_fn)(void *arg, int rep, fr_error *err);

/* Median seconds per call; `inner` calls per timed repeat, synced at the end. */
static double time_op(bench_fn fn, void *arg, int inner) {
    fr_error err = {0};
    for (int i = 0; i < inner; i++) /* warm up (and page in) */
        if (fn(arg, i, &err) != FR_OK) {
            fprintf(stderr, "bench_ops: %s\n", err.msg);
            return -1;
        }
    fr_backend_sync(B, &err);
    double t[REPEATS];
    for (int r = 0; r < REPEATS; r++) {
        const double t0 = now_s();
        for (int i = 0; i < inner; i++)
            fn(arg, i, &err);
        fr_backend_sync(B, &err);
        t[r] = (now_s() - t0) / inner;
    }
    return median(t, REPEATS);
}

static double PEAK;
static int THREADS; /* FR_BENCH_THREADS, default one per core */
static char BNAME[64];

static void report(const char *op, const char *shape, const char *dtype, double sec, double bytes,
                   double flops) {
    if (sec <= 0) return;
    const double gbs = bytes / sec / 1e9, gfl = flops / sec / 1e9;
    printf("%-12s %-14s %-26s %-6s %10.1f %8.2f %6.0f%% %9.2f\n", BNAME, op, shape, dtype,
           sec * 1e6, gbs, PEAK > 0 ? 100.0 * gbs / PEAK : 0.0, gfl);
}

/* ------------------------------------------------------------------ cases */

typedef struct {
    dt x, w, out;
    float eps;
} norm_case;

static fr_status run_norm(void *arg, int rep, fr_error *err) {
    norm_case *c = arg;
    return fr_op_rms_norm(B, &c->x.t, &c->w.t, c->eps, &c->out.t, err);
}

static void bench_rms_norm(int64_t T, int64_t C) {
    norm_case c = {.eps = 1e-6f};
    dt_make(&c.x, FR_DTYPE_F32, 2, (int64_t[]){T, C});
    dt_make(&c.w, FR_DTYPE_F32, 1, (int64_t[]){C});
    dt_make(&c.out, FR_DTYPE_F32, 2, (int64_t[]){T, C});
    const double sec = time_op(run_norm, &c, T == 1 ? 2000 : 50);
    char shape[64];
    snprintf(shape, sizeof shape, "T=%lld C=%lld", (long long)T, (long long)C);
    report("rms_norm", shape, "f32", sec, 4.0 * (2.0 * T * C + C), 4.0 * T * C);
    fr_buffer_free(&c.x.buf);
    fr_buffer_free(&c.w.buf);
    fr_buffer_free(&c.out.buf);
}

typedef struct {
    dt x, out;
    dt *w;
    int nw;
} mm_case;

static fr_status run_mm(void *arg, int rep, fr_error *err) {
    mm_case *c = arg;
    return fr_op_matmul(B, &c->x.t, &c->w[rep % c->nw].t, NULL, &c->out.t, err);
}

static void bench_matmul(int64_t M, int64_t N, int64_t K, fr_dtype wt) {
    mm_case c = {0};
    const double wbytes = (double)N * K * fr_dtype_get(wt)->block_bytes;
    c.nw = M <= 8 ? (int)(COLD_BYTES / wbytes) + 1 : 1;
    c.w = calloc((size_t)c.nw, sizeof *c.w);
    dt_make(&c.x, FR_DTYPE_F32, 2, (int64_t[]){M, K});
    dt_make(&c.out, FR_DTYPE_F32, 2, (int64_t[]){M, N});
    for (int i = 0; i < c.nw; i++)
        dt_make(&c.w[i], wt, 2, (int64_t[]){N, K});
    const double flops = 2.0 * M * N * K;
    const int inner = M <= 8 ? c.nw * 2 : (flops > 1e9 ? 1 : 3);
    const double sec = time_op(run_mm, &c, inner);
    char shape[64];
    snprintf(shape, sizeof shape, "%s M=%lld N=%lld K=%lld", M <= 8 ? "gemv" : "gemm", (long long)M,
             (long long)N, (long long)K);
    report("matmul", shape, fr_dtype_name(wt), sec, wbytes + 4.0 * (M * K + M * N), flops);
    for (int i = 0; i < c.nw; i++)
        fr_buffer_free(&c.w[i].buf);
    free(c.w);
    fr_buffer_free(&c.x.buf);
    fr_buffer_free(&c.out.buf);
}

typedef struct {
    dt q, k, v, pos, out;
    fr_attention_params p;
} attn_case;

static fr_status run_attn(void *arg, int rep, fr_error *err) {
    attn_case *c = arg;
    return fr_op_attention(B, &c->q.t, &c->k.t, &c->v.t, &c->pos.t, &c->p, &c->out.t, err);
}

static void bench_attention(int64_t H, int64_t Hkv, int64_t D, int64_t ctx, fr_dtype ct) {
    attn_case c = {.p = {0, 0}};
    const int64_t L = ctx;
    dt_make(&c.q, FR_DTYPE_F32, 3, (int64_t[]){H, 1, D});
    dt_make(&c.k, ct, 3, (int64_t[]){Hkv, L, D});
    dt_make(&c.v, ct, 3, (int64_t[]){Hkv, L, D});
    dt_make(&c.pos, FR_DTYPE_I32, 1, (int64_t[]){1});
    dt_make(&c.out, FR_DTYPE_F32, 3, (int64_t[]){1, H, D});
    const int32_t p = (int32_t)(ctx - 1);
    dt_set_i32(&c.pos, &p, 1);
    const double sec = time_op(run_attn, &c, 20);
    const double bytes = 2.0 * Hkv * ctx * D * fr_dtype_get(ct)->block_bytes;
    char shape[64];
    snprintf(shape, sizeof shape, "decode H=%lld/%lld D=%lld ctx=%lld", (long long)H,
             (long long)Hkv, (long long)D, (long long)ctx);
    report("attention", shape, fr_dtype_name(ct), sec, bytes, 4.0 * H * ctx * D);
    fr_buffer_free(&c.q.buf);
    fr_buffer_free(&c.k.buf);
    fr_buffer_free(&c.v.buf);
    fr_buffer_free(&c.pos.buf);
    fr_buffer_free(&c.out.buf);
}

static void bench_backend(const char *name, const char *isa) {
    if (isa) setenv("FR_CPU_ISA", isa, 1);
    fr_error err = {0};
    fr_backend_params params = {.n_threads = THREADS};
    if (fr_backend_create(name, &params, &B, &err) != FR_OK) {
        fprintf(stderr, "bench_ops: backend %s: %s\n", name, err.msg);
        return;
    }
    /* on CPU, name the kernel variant CPUID (or FR_CPU_ISA) picked */
    if (!strcmp(name, "cpu")) isa = ((fr_cpu_ctx *)B->ctx)->k->name;
    snprintf(BNAME, sizeof BNAME, "%s%s%s%s", name, isa ? "[" : "", isa ? isa : "", isa ? "]" : "");
    bench_rms_norm(1, 4096);
    bench_rms_norm(64, 4096);
    const fr_dtype wts[] = {FR_DTYPE_F32, FR_DTYPE_F16, FR_DTYPE_BF16};
    for (int i = 0; i < 3; i++) {
        bench_matmul(1, 4096, 4096, wts[i]);
        bench_matmul(1, 1024, 4096, wts[i]);
        bench_matmul(1, 3072, 1024, wts[i]);
        bench_matmul(4, 4096, 4096, wts[i]);
        bench_matmul(8, 4096, 4096, wts[i]);
    }
    for (int i = 0; i < 3; i++)
        bench_matmul(128, 2048, 2048, wts[i]);
    bench_attention(16, 8, 128, 2048, FR_DTYPE_F32);
    bench_attention(16, 8, 128, 2048, FR_DTYPE_F16);
    bench_attention(32, 8, 128, 2048, FR_DTYPE_BF16);
    fr_backend_destroy(B);
    unsetenv("FR_CPU_ISA");
}

int main(void) {
    const char *th = getenv("FR_BENCH_THREADS");
    THREADS = th && atoi(th) > 0 ? atoi(th) : fr_cpu_count();
    const int threads = THREADS;
    PEAK = fr_host_read_bandwidth(threads, (size_t)1 << 30, 7, true);
    printf("read bandwidth (sum of a 1 GiB array, %d threads, best of 7): %.2f GB/s\n\n", threads,
           PEAK);
    printf("%-12s %-14s %-26s %-6s %10s %8s %7s %9s\n", "backend", "op", "shape", "dtype",
           "us/call", "GB/s", "%peak", "GFLOP/s");
    const char *env = getenv("FR_BENCH_BACKENDS");
    char list[256];
    snprintf(list, sizeof list, "%s", env && *env ? env : "cpu");
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        if (colon) *colon = 0;
        bench_backend(tok, colon ? colon + 1 : NULL);
    }
    return 0;
}
