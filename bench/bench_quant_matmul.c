/* Quantized-weight matmul on the CPU backend: GB/s of weight bytes read and % of the machine's
 * read bandwidth, for every quantized type.
 *
 *   bench_quant_matmul [-t THREADS] [-r REPEATS] [-q] [-s gemv|gemm] [-a q8|f32]
 *   (-q: one GEMV shape, for a quick look; -s: only that section; -a: activations of the
 *   kernels, FR_QUANT_ACT_Q8 (default) or FR_QUANT_ACT_F32)
 *
 * Cases: GEMV (M = 1) at N x K = 1024x1024, 4096x1024, 1024x4096, and a GEMM with M = 128 at
 * 1024x1024 (also in GOP/s, 2*M*N*K per second). "cold" cycles through enough copies of the
 * weights to exceed the last-level cache several times (as in decode, where each token streams
 * the whole model from DRAM); "hot" repeats one copy (L2/L3 resident: the kernels' compute
 * ceiling). Numbers are medians of repeated sweeps, with the fastest sweep in parentheses. The peak
 * is a big-array sum (with the same software prefetch as the kernels) on every pool thread, the
 * best of several runs. FR_CPU_ISA=scalar|avx2|avx512 picks a kernel variant. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "core/quant.h"
#include "core/membw.h"
#include "core/threadpool.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/quant_dot.h"

#define COLD_BYTES (192u << 20) /* weight copies per cold case sum to at least this much */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------ peak read bandwidth */

/* With and without software prefetch (whichever the machine rewards): the roofline the GEMV
 * numbers are compared with. */
static double read_bandwidth(int n_threads, double *plain, double *prefetched) {
    *plain = fr_host_read_bandwidth(n_threads, (size_t)1 << 30, 7, false);
    *prefetched = fr_host_read_bandwidth(n_threads, (size_t)1 << 30, 7, true);
    return *plain > *prefetched ? *plain : *prefetched;
}

/* ------------------------------------------------------------------ one case */

typedef struct {
    double sec_per_call, gbs;  /* median */
    double best_sec, best_gbs; /* fastest repeat: on a shared machine, the least disturbed */
} result;

static fr_backend *B;
static int REPEATS = 9;

/* Median time of one matmul x[M,K] * w[N,K]^T over `copies` weight copies. */
static result run(fr_dtype t, int64_t M, int64_t N, int64_t K, bool cold) {
    const size_t rb = fr_dtype_row_bytes(t, K), wbytes = rb * (size_t)N;
    int copies = cold ? (int)((COLD_BYTES + wbytes - 1) / wbytes) : 1;
    if (copies < 1) copies = 1;
    /* one quantized matrix of random values, replicated (the values do not change speed) */
    uint8_t *w = malloc(wbytes * (size_t)copies);
    float *row = malloc(sizeof(float) * (size_t)K);
    uint64_t s = 88172645463325252ull;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            row[k] = (float)((int64_t)(s >> 40) - (1 << 23)) / (float)(1 << 23);
        }
        fr_quantize_row(t, row, w + (size_t)n * rb, K, NULL);
    }
    for (int c = 1; c < copies; c++)
        memcpy(w + (size_t)c * wbytes, w, wbytes);
    float *x = malloc(sizeof(float) * (size_t)(M * K)),
          *out = malloc(sizeof(float) * (size_t)(M * N));
    for (int64_t i = 0; i < M * K; i++)
        x[i] = (float)((i * 7919) % 2001 - 1000) / 1000.0f;

    fr_error err = {0};
    fr_buffer wb = {0}, xb = {0}, ob = {0};
    fr_buffer_from_host(B, w, wbytes * (size_t)copies, &wb, &err);
    fr_buffer_from_host(B, x, sizeof(float) * (size_t)(M * K), &xb, &err);
    fr_buffer_from_host(B, out, sizeof(float) * (size_t)(M * N), &ob, &err);
    fr_tensor xt = fr_tensor_2d(&xb, 0, FR_DTYPE_F32, M, K);
    fr_tensor ot = fr_tensor_2d(&ob, 0, FR_DTYPE_F32, M, N);

    /* calls per sweep: every copy once, and at least ~20 ms of work */
    int calls = copies;
    double times[64];
    for (int r = -1; r < REPEATS; r++) { /* r = -1 warms up and sizes the sweep */
        const double t0 = now_s();
        for (int c = 0; c < calls; c++) {
            fr_tensor wt = fr_tensor_2d(&wb, (size_t)(c % copies) * wbytes, t, N, K);
            if (fr_op_matmul(B, &xt, &wt, NULL, &ot, &err) != FR_OK) {
                fprintf(stderr, "matmul %s: %s\n", fr_dtype_name(t), err.msg);
                exit(1);
            }
        }
        const double dt = now_s() - t0;
        if (r < 0) {
            const double per_call = dt / calls;
            while (calls * per_call < 0.02)
                calls += copies;
            continue;
        }
        times[r] = dt / calls;
    }
    qsort(times, (size_t)REPEATS, sizeof *times, cmp_double);
    fr_buffer_free(&wb);
    fr_buffer_free(&xb);
    fr_buffer_free(&ob);
    free(w);
    free(row);
    free(x);
    free(out);
    result res = {times[REPEATS / 2], (double)wbytes / times[REPEATS / 2] / 1e9, times[0],
                  (double)wbytes / times[0] / 1e9};
    return res;
}

int main(int argc, char **argv) {
    int threads = 0;
    bool quick = false, gemv = true, gemm = true;
    fr_quant_act qa = FR_QUANT_ACT_Q8;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc)
            REPEATS = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-a") && i + 1 < argc)
            qa = !strcmp(argv[++i], "f32") ? FR_QUANT_ACT_F32 : FR_QUANT_ACT_Q8;
        else if (!strcmp(argv[i], "-q"))
            quick = true;
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) {
            gemv = !strcmp(argv[++i], "gemv");
            gemm = !gemv;
        } else {
            fprintf(stderr,
                    "usage: bench_quant_matmul [-t THREADS] [-r REPEATS] [-q] [-s gemv|gemm] "
                    "[-a q8|f32]\n");
            return 2;
        }
    }
    if (REPEATS < 1 || REPEATS > 64) REPEATS = 9;
    fr_error err = {0};
    fr_backend_params p = {.n_threads = threads, .quant_act = qa};
    if (fr_backend_create("cpu", &p, &B, &err) != FR_OK) {
        fprintf(stderr, "cpu backend: %s\n", err.msg);
        return 1;
    }
    const fr_cpu_ctx *ctx = B->ctx;
    double plain = 0, prefetched = 0;
    const double peak = read_bandwidth(ctx->n_threads, &plain, &prefetched);
    printf(
        "threads %d, quantized kernels %s, peak read bandwidth %.1f GB/s (1 GiB sum: %.1f plain, "
        "%.1f with prefetch)\n\n",
        ctx->n_threads, fr_cpu_quant_kernels_name(ctx), peak, plain, prefetched);

    static const fr_dtype types[] = {FR_DTYPE_Q8_0, FR_DTYPE_Q4_0, FR_DTYPE_Q4_1, FR_DTYPE_Q5_0,
                                     FR_DTYPE_Q5_1, FR_DTYPE_Q4_K, FR_DTYPE_Q5_K, FR_DTYPE_Q6_K};
    static const int64_t shapes[][2] = {{1024, 1024}, {4096, 1024}, {1024, 4096}};
    const int n_shapes = quick ? 1 : 3;
    if (gemv) {
        printf("GEMV M=1, weight GB/s: median of %d repeats (best repeat), %% of peak for both\n",
               REPEATS);
        printf("%-5s | %-9s | %-24s | %-13s\n", "type", "N x K", "cold (DRAM)", "hot (cache)");
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
            for (int s = 0; s < n_shapes; s++) {
                const result c = run(types[ti], 1, shapes[s][0], shapes[s][1], true);
                const result h = run(types[ti], 1, shapes[s][0], shapes[s][1], false);
                printf("%-5s | %4lldx%-4lld | %5.1f (%5.1f) %3.0f%% (%3.0f%%) | %5.1f (%5.1f)\n",
                       fr_dtype_name(types[ti]), (long long)shapes[s][0], (long long)shapes[s][1],
                       c.gbs, c.best_gbs, 100.0 * c.gbs / peak, 100.0 * c.best_gbs / peak, h.gbs,
                       h.best_gbs);
                fflush(stdout);
            }
    }
    if (gemm) {
        printf("\nGEMM M=128, N x K = 1024x1024 (weights hot: GEMM is compute-bound)\n");
        printf("%-5s | %-17s | %-17s\n", "type", "ms med (best)", "GOP/s med (best)");
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const result g = run(types[ti], 128, 1024, 1024, false);
            const double ops = 2.0 * 128 * 1024 * 1024;
            printf("%-5s | %7.3f (%7.3f) | %6.1f (%6.1f)\n", fr_dtype_name(types[ti]),
                   1e3 * g.sec_per_call, 1e3 * g.best_sec, ops / g.sec_per_call / 1e9,
                   ops / g.best_sec / 1e9);
            fflush(stdout);
        }
    }
    fr_backend_destroy(B);
    return 0;
}
