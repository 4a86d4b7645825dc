/* Quantized weights on the CUDA backend: matmul (decode GEMV that dequantizes in registers,
 * prefill through cuBLASLt on dequantized chunks, the SIMT fallback) and embedding, for q8_0,
 * q4_0, q4_1, q5_0, q5_1, q4_k, q5_k and q6_k, against float64 references built from the host
 * dequantizer (fr_dequantize_row of the very bytes uploaded).
 *
 * Shapes are odd on purpose: 1 to 130 output rows, rows of 1, 3, 8 and 33 blocks, activations
 * with padded (and, once, unaligned) row strides, weights placed at a misaligned offset and
 * ending exactly at the end of their buffer (so the GEMV's chunked 16-byte loads must handle
 * both ends of the tensor), outputs with padding that must stay untouched. Every output buffer is
 * poisoned with 0xff bytes (NaN) first, so an element never written fails.
 *
 * Thresholds (NMSE against float64): paths that compute in f32 with f32 weights values (every
 * GEMV, the f32 GEMM) get 1e-8 as in test_ops; a wrong nibble or scale costs ~1e-3. Paths that
 * round the dequantized weights or the output to 16 bits get 1e-6 (f16) and 3e-5 (bf16).
 *
 * The matmul cases run twice: with quant_act f32 (thresholds above) and with the default
 * quant_act q8, where q8_0 / q4_k / q6_k GEMVs quantize activations to 8 bits (threshold 1e-4,
 * and a check that the error is not f32-small, i.e. that the 8-bit kernel really ran).
 *
 * Also: a quantized GEMV recorded into a CUDA graph and replayed is bit-identical to the direct
 * call, and fr_cuda_measure_bandwidth measures something (finite and positive; no speed is
 * asserted). Needs a GPU (label `cuda`). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/testutil.h"
#include "core/dtype.h"
#include "core/quant.h"
#include "kernels/backend.h"
#include "kernels/cuda/cuda_api.h"

static fr_backend *B;
static bool Q8; /* B quantizes GEMV activations to 8 bits (quant_act q8) */
static fr_test_rng RNG = {20251125};

static const fr_dtype QTYPES[] = {FR_DTYPE_Q8_0, FR_DTYPE_Q4_0, FR_DTYPE_Q4_1, FR_DTYPE_Q5_0,
                                  FR_DTYPE_Q5_1, FR_DTYPE_Q4_K, FR_DTYPE_Q5_K, FR_DTYPE_Q6_K};

/* ------------------------------------------------------------------ host helpers */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of host memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static size_t esize(fr_dtype t) {
    return (size_t)fr_dtype_get(t)->block_bytes;
}

/* v as stored in dtype t (f32, f16, bf16) and read back. */
static float rounded(fr_dtype t, float v) {
    if (t == FR_DTYPE_F16) return fr_f16_to_f32(fr_f32_to_f16(v));
    if (t == FR_DTYPE_BF16) return fr_bf16_to_f32(fr_f32_to_bf16(v));
    return v;
}

static void dev_alloc(fr_buffer *b, size_t bytes) {
    fr_error err = {0};
    if (fr_buffer_alloc(B, bytes, b, &err) != FR_OK) {
        fprintf(stderr, "buffer_alloc(%zu): %s\n", bytes, err.msg);
        exit(1);
    }
}

static void upload(fr_buffer *b, const void *src, size_t n) {
    fr_error err = {0};
    fr_status s = fr_buffer_upload(b, 0, src, n, &err);
    CHECK(s == FR_OK, "upload: %s", err.msg);
}

static void download(const fr_buffer *b, void *dst, size_t n) {
    fr_error err = {0};
    fr_status s = fr_buffer_download(b, 0, dst, n, &err);
    CHECK(s == FR_OK, "download: %s", err.msg);
}

/* N rows of K random values quantized to t, placed at byte `off` of a buffer that ends right
 * after the last row; deq gets the host dequantization of the stored bytes. */
static void make_quant(fr_dtype t, int64_t N, int64_t K, size_t off, fr_buffer *buf, fr_tensor *w,
                       float *deq) {
    const size_t rb = fr_dtype_row_bytes(t, K), bytes = off + (size_t)N * rb;
    unsigned char *host = xmalloc(bytes);
    memset(host, 0xa5, off);
    float *row = xmalloc((size_t)K * sizeof(float));
    for (int64_t n = 0; n < N; n++) {
        /* a few rows with a larger spread so scales differ from row to row */
        const float amp = n % 5 == 0 ? 3.0f : 1.0f;
        for (int64_t k = 0; k < K; k++)
            row[k] = amp * fr_test_rng_sym(&RNG);
        fr_error err = {0};
        fr_status s = fr_quantize_row(t, row, host + off + (size_t)n * rb, K, &err);
        CHECK(s == FR_OK, "quantize %s: %s", fr_dtype_name(t), err.msg);
        fr_dequantize_row(t, host + off + (size_t)n * rb, deq + n * K, K);
    }
    dev_alloc(buf, bytes);
    upload(buf, host, bytes);
    *w = fr_tensor_2d(buf, off, t, N, K);
    free(row);
    free(host);
}

/* ------------------------------------------------------------------ matmul */

typedef struct {
    int64_t M, N, K;
    fr_dtype xt, ot;
    size_t woff;  /* weight byte offset in its buffer */
    int64_t xpad; /* extra elements per x row (1 makes rows unaligned) */
    bool bias;
} mm_case;

/* Whether the 8-bit-activation GEMV (matmul_quant.cu) takes this case: its types, weights at
 * the alignment its loads need. */
static bool q8_path(fr_dtype wt, const mm_case *c) {
    if (!Q8 || c->M > 8) return false;
    if (wt == FR_DTYPE_Q8_0 || wt == FR_DTYPE_Q6_K) return c->woff % 2 == 0;
    return wt == FR_DTYPE_Q4_K && c->woff % 16 == 0;
}

static double mm_threshold(fr_dtype wt, const mm_case *c) {
    /* 8-bit activations: a rounding error of up to half a step of max|x|/127 per element, NMSE
     * ~1.5e-5 for these uniform inputs; a wrong nibble or scale still costs >= 1e-3 */
    if (q8_path(wt, c)) return 1e-4;
    double thr = 1e-8;
    const fr_dtype rounded_types[2] = {c->M > 8 ? c->xt : FR_DTYPE_F32, c->ot};
    for (int i = 0; i < 2; i++) {
        if (rounded_types[i] == FR_DTYPE_F16 && thr < 1e-6) thr = 1e-6;
        if (rounded_types[i] == FR_DTYPE_BF16) thr = 3e-5;
    }
    return thr;
}

static void check_matmul(fr_dtype wt, const mm_case *c) {
    const int64_t M = c->M, N = c->N, K = c->K, ldx = K + c->xpad, ldo = N + 3;
    float *wdeq = xmalloc((size_t)(N * K) * sizeof(float));
    fr_buffer wbuf, xbuf, obuf, bbuf = {0};
    fr_tensor w;
    make_quant(wt, N, K, c->woff, &wbuf, &w, wdeq);

    /* activations as the device sees them (rounded to their dtype) */
    const size_t xe = esize(c->xt), oe = esize(c->ot);
    float *xv = xmalloc((size_t)(M * K) * sizeof(float));
    unsigned char *xh = xmalloc((size_t)(M * ldx) * xe);
    memset(xh, 0, (size_t)(M * ldx) * xe);
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++) {
            xv[m * K + k] = rounded(c->xt, fr_test_rng_sym(&RNG));
            fr_test_store(c->xt, xh + (size_t)(m * ldx + k) * xe, xv[m * K + k]);
        }
    dev_alloc(&xbuf, (size_t)(M * ldx) * xe);
    upload(&xbuf, xh, (size_t)(M * ldx) * xe);
    fr_tensor x = fr_tensor_2d(&xbuf, 0, c->xt, M, K);
    x.stride[0] = ldx * (int64_t)xe;

    float *bv = NULL;
    fr_tensor bias;
    if (c->bias) {
        bv = xmalloc((size_t)N * sizeof(float));
        for (int64_t n = 0; n < N; n++)
            bv[n] = fr_test_rng_sym(&RNG);
        dev_alloc(&bbuf, (size_t)N * sizeof(float));
        upload(&bbuf, bv, (size_t)N * sizeof(float));
        bias = fr_tensor_1d(&bbuf, 0, FR_DTYPE_F32, N);
    }

    const size_t obytes = (size_t)(M * ldo) * oe;
    unsigned char *oh = xmalloc(obytes), *poison = xmalloc(obytes);
    memset(poison, 0xff, obytes);
    dev_alloc(&obuf, obytes);
    upload(&obuf, poison, obytes);
    fr_tensor out = fr_tensor_2d(&obuf, 0, c->ot, M, N);
    out.stride[0] = ldo * (int64_t)oe;

    fr_error err = {0};
    fr_status s = fr_op_matmul(B, &x, &w, c->bias ? &bias : NULL, &out, &err);
    if (s == FR_OK) s = fr_backend_sync(B, &err);
    CHECK(s == FR_OK, "%s M=%lld N=%lld K=%lld: %s", fr_dtype_name(wt), (long long)M, (long long)N,
          (long long)K, err.msg);
    download(&obuf, oh, obytes);

    double *ref = xmalloc((size_t)(M * N) * sizeof(double));
    float *got = xmalloc((size_t)(M * N) * sizeof(float));
    bool pad_ok = true;
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) {
            double acc = c->bias ? bv[n] : 0.0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)wdeq[n * K + k] * (double)xv[m * K + k];
            ref[m * N + n] = acc;
            got[m * N + n] = fr_test_load(c->ot, oh + (size_t)(m * ldo + n) * oe);
        }
        if (memcmp(oh + (size_t)(m * ldo + N) * oe, poison, (size_t)(ldo - N) * oe)) pad_ok = false;
    }
    const double e = fr_test_nmse(got, ref, (size_t)(M * N)), thr = mm_threshold(wt, c);
    /* the 8-bit path really ran: float activations would be exact to ~1e-14 */
    if (q8_path(wt, c))
        CHECK(e > 1e-9, "%s M=%lld N=%lld K=%lld: NMSE %.3g, so the q8 GEMV did not run",
              fr_dtype_name(wt), (long long)M, (long long)N, (long long)K, e);
    CHECK(e < thr,
          "%s x %s -> %s M=%lld N=%lld K=%lld woff=%zu xpad=%lld bias=%d: NMSE %.3g >= %.1g",
          fr_dtype_name(wt), fr_dtype_name(c->xt), fr_dtype_name(c->ot), (long long)M, (long long)N,
          (long long)K, c->woff, (long long)c->xpad, c->bias, e, thr);
    CHECK(pad_ok, "%s M=%lld N=%lld: output padding was written", fr_dtype_name(wt), (long long)M,
          (long long)N);

    free(ref);
    free(got);
    free(oh);
    free(poison);
    free(bv);
    free(xh);
    free(xv);
    free(wdeq);
    fr_buffer_free(&obuf);
    fr_buffer_free(&bbuf);
    fr_buffer_free(&xbuf);
    fr_buffer_free(&wbuf);
}

/* q8_0 rows of whole 16-byte chunks (K % 256 == 0, aligned): the chunk GEMV, over several
 * rounds of loads per warp (K = 4096 is 272 chunks), with and without split-K; a row of one
 * partial round; misaligned weights (the per-block kernel) for comparison. */
static void test_matmul_q8_0_rows(void) {
    const mm_case cases[] = {
        {1, 70, 4096, FR_DTYPE_F32, FR_DTYPE_F32, 0, 8, true},
        {1, 5000, 4096, FR_DTYPE_BF16, FR_DTYPE_BF16, 0, 8, false},
        {3, 33, 2048, FR_DTYPE_BF16, FR_DTYPE_F32, 0, 8, false},
        {6, 40, 768, FR_DTYPE_F16, FR_DTYPE_F32, 0, 8, true},
        {2, 17, 4096, FR_DTYPE_F32, FR_DTYPE_F32, 2, 8, false},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        check_matmul(FR_DTYPE_Q8_0, &cases[k]);
}

static void test_matmul(void) {
    for (size_t i = 0; i < sizeof QTYPES / sizeof QTYPES[0]; i++) {
        const fr_dtype t = QTYPES[i];
        const int64_t be = fr_dtype_get(t)->block_elems;
        const mm_case cases[] = {
            /* decode GEMV: one block per row; three blocks, misaligned weights, bias; a row of
             * 33 blocks (tiles plus a partial tile); 16-bit activations; unaligned x rows */
            {1, 37, be, FR_DTYPE_F32, FR_DTYPE_F32, 0, 8, false},
            {1, 130, 3 * be, FR_DTYPE_F32, FR_DTYPE_F32, 2, 8, true},
            {3, 7, 33 * be, FR_DTYPE_F32, FR_DTYPE_F32, 6, 8, false},
            {8, 19, 8 * be, FR_DTYPE_F32, FR_DTYPE_F32, 34, 8, true},
            {5, 21, 3 * be, FR_DTYPE_F32, FR_DTYPE_F32, 0, 1, false},
            {2, 9, 8 * be, FR_DTYPE_BF16, FR_DTYPE_F32, 2, 8, false},
            {4, 9, 3 * be, FR_DTYPE_F16, FR_DTYPE_F32, 0, 8, true},
            {1, 11, 3 * be, FR_DTYPE_F32, FR_DTYPE_BF16, 0, 8, false},
            /* prefill: cuBLASLt on f32 dequantized rows; 16-bit tensor cores; SIMT fallback
             * (f32 activations with a 16-bit output) */
            {37, 67, 3 * be, FR_DTYPE_F32, FR_DTYPE_F32, 2, 8, true},
            {19, 33, 8 * be, FR_DTYPE_BF16, FR_DTYPE_F32, 0, 8, false},
            {40, 17, 3 * be, FR_DTYPE_F16, FR_DTYPE_F16, 0, 8, false},
            {37, 29, 3 * be, FR_DTYPE_F32, FR_DTYPE_BF16, 6, 8, true},
        };
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
            check_matmul(t, &cases[k]);
    }
    test_matmul_q8_0_rows();
    /* a weight larger than the 64 MB conversion scratch at f32: two chunks and a tail */
    const mm_case big = {12, 2100, 8192, FR_DTYPE_F32, FR_DTYPE_F32, 0, 8, false};
    check_matmul(FR_DTYPE_Q4_0, &big);
}

/* ------------------------------------------------------------------ embedding */

static void test_embedding(fr_dtype t) {
    const int64_t be = fr_dtype_get(t)->block_elems, V = 23, C = 3 * be;
    float *deq = xmalloc((size_t)(V * C) * sizeof(float));
    fr_buffer tbuf, ibuf, obuf;
    fr_tensor table;
    make_quant(t, V, C, 2, &tbuf, &table, deq);
    const int32_t ids[] = {0, (int32_t)V - 1, 5, -1, (int32_t)V, 11};
    const int64_t T = (int64_t)(sizeof ids / sizeof ids[0]);
    dev_alloc(&ibuf, sizeof ids);
    upload(&ibuf, ids, sizeof ids);
    fr_tensor idt = fr_tensor_1d(&ibuf, 0, FR_DTYPE_I32, T);
    const size_t obytes = (size_t)(T * C) * sizeof(float);
    unsigned char *poison = xmalloc(obytes);
    memset(poison, 0xff, obytes);
    dev_alloc(&obuf, obytes);
    upload(&obuf, poison, obytes);
    fr_tensor out = fr_tensor_2d(&obuf, 0, FR_DTYPE_F32, T, C);
    fr_error err = {0};
    fr_status s = fr_op_embedding(B, &table, &idt, &out, &err);
    if (s == FR_OK) s = fr_backend_sync(B, &err);
    CHECK(s == FR_OK, "embedding %s: %s", fr_dtype_name(t), err.msg);
    float *got = xmalloc(obytes);
    download(&obuf, got, obytes);
    double *ref = xmalloc((size_t)(T * C) * sizeof(double));
    for (int64_t i = 0; i < T; i++)
        for (int64_t c = 0; c < C; c++)
            ref[i * C + c] = ids[i] >= 0 && ids[i] < V ? deq[ids[i] * C + c] : 0.0;
    /* decoding is the same arithmetic as the host's (up to a fused multiply-add) */
    const double e = fr_test_nmse(got, ref, (size_t)(T * C));
    CHECK(e < 1e-12, "embedding %s: NMSE %.3g", fr_dtype_name(t), e);
    bool zeros = true;
    for (int64_t c = 0; c < C; c++)
        if (got[3 * C + c] != 0.0f || got[4 * C + c] != 0.0f) zeros = false;
    CHECK(zeros, "embedding %s: out-of-range ids must give zero rows", fr_dtype_name(t));
    free(ref);
    free(got);
    free(poison);
    free(deq);
    fr_buffer_free(&obuf);
    fr_buffer_free(&ibuf);
    fr_buffer_free(&tbuf);
}

/* ------------------------------------------------------------------ graph replay */

static void test_graph(fr_dtype t) {
    const int64_t be = fr_dtype_get(t)->block_elems, N = 45, K = 5 * be;
    float *deq = xmalloc((size_t)(N * K) * sizeof(float));
    fr_buffer wbuf, xbuf, obuf;
    fr_tensor w;
    make_quant(t, N, K, 4, &wbuf, &w, deq);
    float *xv = xmalloc((size_t)K * sizeof(float));
    for (int64_t k = 0; k < K; k++)
        xv[k] = fr_test_rng_sym(&RNG);
    dev_alloc(&xbuf, (size_t)K * sizeof(float));
    upload(&xbuf, xv, (size_t)K * sizeof(float));
    dev_alloc(&obuf, (size_t)N * sizeof(float));
    fr_tensor x = fr_tensor_2d(&xbuf, 0, FR_DTYPE_F32, 1, K);
    fr_tensor out = fr_tensor_2d(&obuf, 0, FR_DTYPE_F32, 1, N);
    float *direct = xmalloc((size_t)N * sizeof(float)),
          *replay = xmalloc((size_t)N * sizeof(float));
    unsigned char *poison = xmalloc((size_t)N * sizeof(float));
    memset(poison, 0xff, (size_t)N * sizeof(float));

    fr_error err = {0};
    fr_status s = fr_op_matmul(B, &x, &w, NULL, &out, &err);
    if (!s) s = fr_backend_sync(B, &err);
    CHECK(s == FR_OK, "graph %s direct: %s", fr_dtype_name(t), err.msg);
    download(&obuf, direct, (size_t)N * sizeof(float));
    upload(&obuf, poison, (size_t)N * sizeof(float));
    void *g = NULL;
    s = fr_graph_capture_begin(B, &err);
    if (!s) {
        fr_status op = fr_op_matmul(B, &x, &w, NULL, &out, &err);
        fr_error end_err = {0};
        s = fr_graph_capture_end(B, &g, op ? &end_err : &err);
        if (op) s = op;
    }
    if (!s) s = fr_graph_launch(B, g, &err);
    if (!s) s = fr_backend_sync(B, &err);
    CHECK(s == FR_OK, "graph %s replay: %s", fr_dtype_name(t), err.msg);
    download(&obuf, replay, (size_t)N * sizeof(float));
    CHECK(!memcmp(direct, replay, (size_t)N * sizeof(float)),
          "graph %s: replayed GEMV differs from the direct call", fr_dtype_name(t));
    fr_graph_free(B, g);
    free(poison);
    free(direct);
    free(replay);
    free(xv);
    free(deq);
    fr_buffer_free(&obuf);
    fr_buffer_free(&xbuf);
    fr_buffer_free(&wbuf);
}

/* ------------------------------------------------------------------ bandwidth */

static void test_bandwidth(void) {
    fr_error err = {0};
    double gbps = 0;
    fr_status s = fr_cuda_measure_bandwidth(B, (size_t)256 << 20, &gbps, &err);
    CHECK(s == FR_OK, "bandwidth: %s", err.msg);
    CHECK(isfinite(gbps) && gbps > 0, "bandwidth: %g GB/s", gbps);
    fprintf(stderr, "cuda read bandwidth: %.0f GB/s (256 MiB buffer)\n", gbps);
    fr_backend *cpu = NULL;
    if (fr_backend_create("cpu", NULL, &cpu, &err) == FR_OK) {
        s = fr_cuda_measure_bandwidth(cpu, 0, &gbps, &err);
        CHECK(s == FR_ERR_INVALID, "bandwidth on the cpu backend: %d", s);
        fr_backend_destroy(cpu);
    }
}

int main(void) {
    fr_error err = {0};
    /* float activations first (every GEMV exact to f32), then the default 8-bit ones */
    fr_backend_params bp = {.quant_act = FR_QUANT_ACT_F32};
    fr_status s = fr_backend_create("cuda", &bp, &B, &err);
    CHECK(s == FR_OK, "cuda backend: %s", err.msg);
    if (s) return fr_test_finish("test_cuda_quant");
    test_matmul();
    for (size_t i = 0; i < sizeof QTYPES / sizeof QTYPES[0]; i++) {
        test_embedding(QTYPES[i]);
        test_graph(QTYPES[i]);
    }
    test_bandwidth();
    fr_backend_destroy(B);

    s = fr_backend_create("cuda", NULL, &B, &err);
    CHECK(s == FR_OK, "cuda backend (quant_act q8): %s", err.msg);
    if (s) return fr_test_finish("test_cuda_quant");
    Q8 = true;
    test_matmul();
    for (size_t i = 0; i < sizeof QTYPES / sizeof QTYPES[0]; i++)
        test_graph(QTYPES[i]);
    fr_backend_destroy(B);

    /* the q8_0 chunk GEMV with 4 chunks in flight per lane (FR_CUDA_Q80_U, read at creation) */
    setenv("FR_CUDA_Q80_U", "4", 1);
    s = fr_backend_create("cuda", NULL, &B, &err);
    unsetenv("FR_CUDA_Q80_U");
    CHECK(s == FR_OK, "cuda backend (FR_CUDA_Q80_U=4): %s", err.msg);
    if (s) return fr_test_finish("test_cuda_quant");
    test_matmul_q8_0_rows();
    fr_backend_destroy(B);
    return fr_test_finish("test_cuda_quant");
}
