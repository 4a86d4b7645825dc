/* --kv-type on CUDA: with f32 compute the cache may be f16 or bf16 (kv_append / attn_prepare round
 * into it, attention widens it back; the same ops test_ops checks per dtype), so each fixture runs
 * one prefill and token by token (the recorded decode graph) with each cache type against
 * transformers' float64 logits, at test_kv16's limits (1e-2 f16, 6e-2 bf16: the CPU measured
 * 2.8e-3 and 2.1e-2, from the rounding of the cache alone); an f32 cache stays within 1e-4. AUTO
 * keeps f32 there (CUDA names no kv_auto_dtype) and follows a 16-bit compute type; a cache type
 * other than the 16-bit compute type is refused with FR_ERR_UNSUPPORTED. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fixture.h"
#include "common/testutil.h"
#include "ferrum.h"

static double run(fr_model *m, const fr_test_fixture *f, fr_kv_type kv, bool incremental) {
    fr_session_params sp = fr_session_default_params();
    sp.n_ctx = f->T + f->n_greedy;
    sp.kv_type = kv;
    fr_error err = {0};
    fr_session *s = NULL;
    fr_status st = fr_session_create(m, &sp, &s, &err);
    CHECK(st == FR_OK, "%s kv %s: session: %s", f->name, fr_kv_type_name(kv), err.msg);
    if (st) return INFINITY;
    CHECK(fr_session_kv_type(s) == kv, "%s: got kv %s", f->name,
          fr_kv_type_name(fr_session_kv_type(s)));
    const size_t V = (size_t)f->V;
    float *logits = malloc((size_t)f->T * V * sizeof(float));
    for (size_t i = 0; i < (size_t)f->T * V; i++)
        logits[i] = NAN;
    if (!incremental) {
        st = fr_session_eval(s, f->prompt, f->T, logits, &err);
    } else {
        for (int t = 0; t < f->T && !st; t++)
            st = fr_session_eval(s, &f->prompt[t], 1, logits + (size_t)t * V, &err);
    }
    CHECK(st == FR_OK, "%s kv %s: eval: %s", f->name, fr_kv_type_name(kv), err.msg);
    const double e = fr_test_max_row_err(logits, f->logits, f->T, f->V);
    const double limit = kv == FR_KV_F16 ? 1e-2 : kv == FR_KV_BF16 ? 6e-2 : 1e-4;
    CHECK(e < limit, "%s kv %s %s: logits max row rel error %.3g > %.3g", f->name,
          fr_kv_type_name(kv), incremental ? "incremental" : "prefill", e, limit);
    free(logits);
    fr_session_free(s);
    return e;
}

static void test_fixture(const char *name) {
    fr_test_fixture f;
    if (fr_test_fixture_load(name, false, &f)) return;
    fr_model_params mp = fr_model_default_params();
    mp.backend = "cuda";
    fr_model *m = fr_test_fixture_model(name, &mp);
    if (!m) {
        fr_test_fixture_free(&f);
        return;
    }
    fr_error err = {0};
    fr_status s = FR_OK;
    const fr_kv_type kvs[] = {FR_KV_F32, FR_KV_F16, FR_KV_BF16};
    double e[3][2];
    for (int k = 0; k < 3; k++)
        for (int inc = 0; inc < 2; inc++)
            e[k][inc] = run(m, &f, kvs[k], inc);
    fprintf(stderr,
            "cuda kv %-18s f32 %.3g / %.3g  f16 %.3g / %.3g  bf16 %.3g / %.3g (prefill / "
            "incremental)\n",
            name, e[0][0], e[0][1], e[1][0], e[1][1], e[2][0], e[2][1]);

    /* AUTO: f32 with f32 compute, the compute type with 16-bit compute; a mismatch is refused */
    fr_session_params sp = fr_session_default_params();
    sp.n_ctx = 16;
    sp.kv_type = FR_KV_AUTO;
    fr_session *a = NULL, *b = NULL, *c = NULL;
    CHECK(fr_session_create(m, &sp, &a, &err) == FR_OK, "auto: %s", err.msg);
    CHECK(a && fr_session_kv_type(a) == FR_KV_F32, "%s: AUTO with f32 compute gave %s", name,
          a ? fr_kv_type_name(fr_session_kv_type(a)) : "-");
    sp.compute = FR_COMPUTE_BF16;
    CHECK(fr_session_create(m, &sp, &b, &err) == FR_OK, "auto bf16: %s", err.msg);
    CHECK(b && fr_session_kv_type(b) == FR_KV_BF16, "%s: AUTO with bf16 compute gave %s", name,
          b ? fr_kv_type_name(fr_session_kv_type(b)) : "-");
    sp.kv_type = FR_KV_F16;
    s = fr_session_create(m, &sp, &c, &err);
    CHECK(s == FR_ERR_UNSUPPORTED && !c && strstr(err.msg, "f16") && strstr(err.msg, "bf16"),
          "%s: f16 cache with bf16 compute: %d %s", name, s, err.msg);
    fr_session_free(a);
    fr_session_free(b);
    fr_session_free(c);
    fr_model_free(m);
    fr_test_fixture_free(&f);
}

int main(void) {
    const char *names[] = {"qwen3-tiny", "qwen3-tiny-bf16", "llama3-tiny-f16", "qwen2-tiny",
                           "mistral-tiny-swa"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        test_fixture(names[i]);
    return fr_test_finish("test_cuda_kv16");
}
