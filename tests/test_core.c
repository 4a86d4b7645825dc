/* Core: dtype conversions (exhaustive over f16/bf16 bit patterns), tensor descriptors, arena,
 * thread pool. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "common/testutil.h"
#include "core/alloc.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "core/threadpool.h"

/* Reference f32 -> f16 via double arithmetic: pick the nearer of the two neighbouring f16
 * values, ties to even mantissa. */
static uint16_t ref_f32_to_f16(float f) {
    if (isnan(f)) return 0x7e00;
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (a >= 65520.0) return sign | 0x7c00;
    /* enumerate: find the largest finite f16 magnitude <= a */
    uint16_t lo = 0, hi = 0x7bff;
    while (lo < hi) {
        uint16_t mid = (uint16_t)((lo + hi + 1) / 2);
        if (fr_f16_to_f32(mid) <= a) lo = mid;
        else hi = mid - 1;
    }
    double vlo = fr_f16_to_f32(lo);
    if (vlo == a) return sign | lo;
    double vhi = lo == 0x7bff ? 65536.0 : fr_f16_to_f32((uint16_t)(lo + 1));
    uint16_t pick;
    if (a - vlo < vhi - a) pick = lo;
    else if (a - vlo > vhi - a) pick = (uint16_t)(lo + 1);
    else pick = (lo & 1) ? (uint16_t)(lo + 1) : lo;
    return sign | pick;
}

static void test_f16(void) {
    /* f16 -> f32 -> f16 round-trips every non-NaN pattern */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = fr_f16_to_f32((uint16_t)h);
        if (isnan(f)) {
            if (!isnan(fr_f16_to_f32(fr_f32_to_f16(f)))) bad++;
            continue;
        }
        if (fr_f32_to_f16(f) != h) bad++;
    }
    CHECK(bad == 0, "%d f16 patterns do not round-trip", bad);
    CHECK(fr_f16_to_f32(0x3c00) == 1.0f && fr_f16_to_f32(0x0001) == 0x1p-24f, "f16 decode");
    /* f32 -> f16 rounding against the reference on a sweep of f32 values incl. ties */
    fr_test_rng rng = {7};
    bad = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)fr_test_rng_u64(&rng);
        if (i & 1) u = (u & 0x8000e000u) | ((uint32_t)(0x33 + (u >> 3) % 0x15) << 23) | 0x1000u;
        float f = fr_bits_f32(u);
        if (isnan(f)) bad += !isnan(fr_f16_to_f32(fr_f32_to_f16(f)));
        else if (fr_f32_to_f16(f) != ref_f32_to_f16(f)) bad++;
    }
    CHECK(bad == 0, "%d f32->f16 conversions differ from the reference", bad);
}

static void test_bf16(void) {
    CHECK(fr_f32_to_bf16(1.0f) == 0x3f80, "bf16(1)");
    /* tie: 1 + 2^-8 lies halfway between 1 and 1+2^-7 -> even (1.0) */
    CHECK(fr_f32_to_bf16(fr_bits_f32(0x3f808000u)) == 0x3f80, "bf16 tie to even (down)");
    CHECK(fr_f32_to_bf16(fr_bits_f32(0x3f818000u)) == 0x3f82, "bf16 tie to even (up)");
    CHECK(fr_f32_to_bf16(fr_bits_f32(0x3f808001u)) == 0x3f81, "bf16 above tie");
    CHECK(isnan(fr_bf16_to_f32(fr_f32_to_bf16(NAN))), "bf16 nan");
    CHECK(fr_f32_to_bf16(fr_bits_f32(0x7f7fffffu)) == 0x7f80, "bf16 overflow to inf");
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = fr_bf16_to_f32((uint16_t)h);
        if (!isnan(f) && fr_f32_to_bf16(f) != h) bad++;
    }
    CHECK(bad == 0, "%d bf16 patterns do not round-trip", bad);
}

static void test_tensor(void) {
    fr_buffer buf = {.data = (void *)64, .size = 1 << 20};
    fr_tensor t = fr_tensor_3d(&buf, 0, FR_DTYPE_F32, 2, 3, 5);
    CHECK(t.stride[2] == 4 && t.stride[1] == 20 && t.stride[0] == 60, "f32 strides");
    CHECK(fr_tensor_span_bytes(&t) == 120 && fr_tensor_is_contiguous(&t), "f32 span");
    fr_tensor q = fr_tensor_2d(&buf, 0, FR_DTYPE_Q4_K, 3, 512);
    CHECK(q.stride[0] == 288 && fr_tensor_span_bytes(&q) == 864, "q4_k rows");
    CHECK(fr_dtype_row_bytes(FR_DTYPE_Q8_0, 33) == 0, "partial block rejected");
    fr_tensor r = fr_tensor_rows(&t, 1, 1);
    CHECK(r.offset == 60 && r.shape[0] == 1, "row view");
}

static void test_arena(void) {
    fr_arena a;
    CHECK(fr_arena_init(&a, 1000) == 0, "arena init");
    void *p = fr_arena_alloc(&a, 10), *q = fr_arena_alloc(&a, 10);
    CHECK(p && q && ((uintptr_t)q % FR_ALIGN) == 0 && (char *)q - (char *)p == FR_ALIGN, "align");
    CHECK(fr_arena_alloc(&a, 2000) == NULL, "arena exhaustion returns NULL");
    fr_arena_free(&a);
}

typedef struct {
    atomic_llong sum;
} pool_arg;

static void pool_task(void *varg, int64_t task, int thread) {
    pool_arg *a = varg;
    atomic_fetch_add(&a->sum, task + 1);
}

typedef struct {
    atomic_int arrived, met;
    int thread[2];
} rendezvous;

static void rendezvous_task(void *varg, int64_t task, int thread) {
    rendezvous *r = varg;
    r->thread[task] = thread;
    atomic_fetch_add(&r->arrived, 1);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do { /* give up after 10 s so a broken pool fails instead of hanging */
        if (atomic_load(&r->arrived) == 2) {
            atomic_fetch_add(&r->met, 1);
            return;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (t.tv_sec - t0.tv_sec < 10);
}

static void test_threadpool(void) {
    fr_threadpool *p = fr_threadpool_create(4);
    CHECK(p && fr_threadpool_size(p) == 4, "pool create");
    for (int rep = 0; rep < 2000; rep++) {
        pool_arg a = {0};
        int64_t n = 1 + rep % 37;
        fr_threadpool_run(p, n, pool_task, &a);
        if (atomic_load(&a.sum) != n * (n + 1) / 2) {
            CHECK(0, "run %d: sum %lld", rep, (long long)atomic_load(&a.sum));
            break;
        }
    }
    pool_arg a = {0};
    fr_threadpool_run(p, 100000, pool_task, &a);
    CHECK(atomic_load(&a.sum) == 100000LL * 100001 / 2, "big run");
    /* two tasks that each wait for the other to start can only finish on two threads */
    rendezvous r = {0};
    fr_threadpool_run(p, 2, rendezvous_task, &r);
    CHECK(atomic_load(&r.met) == 2 && r.thread[0] != r.thread[1], "tasks ran concurrently");
    fr_threadpool_destroy(p);
}

int main(void) {
    test_f16();
    test_bf16();
    test_tensor();
    test_arena();
    test_threadpool();
    return fr_test_finish("test_core");
}
