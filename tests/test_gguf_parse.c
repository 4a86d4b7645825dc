/* GGUF reader and writer: a round trip of every value type and several tensor dtypes through our
 * writer and reader (typed getters, conversions, shapes, alignment, streaming), then hostile
 * input: every truncation of a valid file, targeted corruptions of each field kind (each must
 * fail with a message naming the file, the key or tensor and the offset), and random
 * corruptions (each must either fail cleanly or yield a file whose tensors lie in bounds).
 * Each truncated or corrupted image sits in an exact-size heap buffer, so a sanitizer or
 * valgrind run catches any read past the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/testutil.h"
#include "core/quant.h"
#include "model/gguf.h"

static char tmp_dir[] = "/tmp/fr_gguf_parse_XXXXXX";

static const char *tmp_path(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", tmp_dir, name);
    return buf;
}

/* ---------------------------------------------------------------- sample file */

static float t_a[2 * 32];
static uint8_t t_b[144];
static uint8_t t_c[3 * 2 * 34];
static int32_t t_d[5] = {1, -2, 3, -4, 5};

static fr_status build_sample(fr_gguf_writer *w, fr_error *err) {
    static const int32_t arr_i32[] = {1, -2, 3};
    static const uint8_t bools[] = {1, 0};
    static const uint16_t in0[] = {1, 2}, in1[] = {3};
    static const char *strs[] = {"x", "yy", ""};
    fr_gguf_value v;
    fr_status st = FR_OK;
#define SET(T, field, val, key)                                                                    \
    v = (fr_gguf_value){.type = T, .v.field = val};                                                \
    if (!st) st = fr_gguf_writer_set(w, key, &v, err)
    if (!st) st = fr_gguf_writer_set_u32(w, "general.alignment", 32, err);
    SET(FR_GGUF_U8, u, 7, "k.u8");
    SET(FR_GGUF_I8, i, -5, "k.i8");
    SET(FR_GGUF_U16, u, 65000, "k.u16");
    SET(FR_GGUF_I16, i, -300, "k.i16");
    if (!st) st = fr_gguf_writer_set_u32(w, "k.u32", 123456, err);
    if (!st) st = fr_gguf_writer_set_i32(w, "k.i32", -42, err);
    if (!st) st = fr_gguf_writer_set_u64(w, "k.u64", 1ull << 40, err);
    SET(FR_GGUF_I64, i, -(1ll << 40), "k.i64");
    if (!st) st = fr_gguf_writer_set_f32(w, "k.f32", 0.5f, err);
    SET(FR_GGUF_F64, f, 1.25, "k.f64");
    if (!st) st = fr_gguf_writer_set_bool(w, "k.bool", true, err);
    if (!st) st = fr_gguf_writer_set_str(w, "k.str", "hello", err);
    if (!st) st = fr_gguf_writer_set_arr(w, "k.arr_i32", FR_GGUF_I32, arr_i32, 3, err);
    if (!st) st = fr_gguf_writer_set_arr(w, "k.bools", FR_GGUF_BOOL, bools, 2, err);
    if (!st) st = fr_gguf_writer_set_arr_str(w, "k.arr_str", strs, 3, err);
    fr_gguf_value items[2] = {
        {FR_GGUF_ARRAY, .v.arr = {FR_GGUF_U16, 2, in0, NULL, NULL}},
        {FR_GGUF_ARRAY, .v.arr = {FR_GGUF_U16, 1, in1, NULL, NULL}},
    };
    v = (fr_gguf_value){FR_GGUF_ARRAY, .v.arr = {FR_GGUF_ARRAY, 2, NULL, NULL, items}};
    if (!st) st = fr_gguf_writer_set(w, "k.nested", &v, err);
#undef SET
    fr_test_rng rng = {3};
    for (int i = 0; i < 64; i++)
        t_a[i] = fr_test_rng_sym(&rng);
    float src[256];
    for (int i = 0; i < 256; i++)
        src[i] = fr_test_rng_sym(&rng);
    if (!st) st = fr_quantize_row(FR_DTYPE_Q4_K, src, t_b, 256, err);
    if (!st) st = fr_quantize_row(FR_DTYPE_Q8_0, src, t_c, 192, err);
    if (!st) st = fr_gguf_writer_add_tensor(w, "a", FR_DTYPE_F32, 2, (int64_t[]){2, 32}, t_a, err);
    if (!st)
        st = fr_gguf_writer_add_tensor(w, "b", FR_DTYPE_Q4_K, 2, (int64_t[]){1, 256}, t_b, err);
    if (!st) st = fr_gguf_writer_add_tensor(w, "c", FR_DTYPE_Q8_0, 2, (int64_t[]){3, 64}, t_c, err);
    if (!st) st = fr_gguf_writer_add_tensor(w, "d", FR_DTYPE_I32, 1, (int64_t[]){5}, t_d, err);
    return st;
}

static uint8_t *write_sample(const char *name, size_t *size) {
    char path[512];
    fr_error err;
    fr_gguf_writer *w = NULL;
    fr_status st = fr_gguf_writer_create(&w, &err);
    if (!st) st = build_sample(w, &err);
    if (!st) st = fr_gguf_writer_write(w, tmp_path(name, path, sizeof path), &err);
    fr_gguf_writer_free(w);
    CHECK(st == FR_OK, "writing the sample: %s", err.msg);
    return st ? NULL : fr_test_read_file(path, size);
}

/* ---------------------------------------------------------------- round trip */

static void test_round_trip(void) {
    char path[512];
    fr_error err;
    size_t size;
    uint8_t *bytes = write_sample("sample.gguf", &size);
    if (!bytes) return;
    free(bytes);
    fr_gguf *g;
    fr_status st = fr_gguf_open(tmp_path("sample.gguf", path, sizeof path), &g, &err);
    CHECK(st == FR_OK, "open: %s", err.msg);
    if (st) return;
    CHECK(fr_gguf_version(g) == 3 && fr_gguf_alignment(g) == 32, "version/alignment");
    CHECK(fr_gguf_kv_count(g) == 17, "kv count %zu", fr_gguf_kv_count(g));
    CHECK(!strcmp(fr_gguf_kv_at(g, 1)->key.s, "k.u8"), "kv order");
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f32;
    double f64;
    bool b;
    fr_gguf_str s;
    CHECK(!fr_gguf_get_u32(g, "k.u32", &u32, &err) && u32 == 123456, "u32");
    CHECK(!fr_gguf_get_u32(g, "k.u8", &u32, &err) && u32 == 7, "u8 widens to u32");
    CHECK(!fr_gguf_get_u32(g, "k.u16", &u32, &err) && u32 == 65000, "u16 widens to u32");
    CHECK(!fr_gguf_get_i32(g, "k.i8", &i32, &err) && i32 == -5, "i8 widens to i32");
    CHECK(!fr_gguf_get_i32(g, "k.i16", &i32, &err) && i32 == -300, "i16");
    CHECK(!fr_gguf_get_i32(g, "k.i32", &i32, &err) && i32 == -42, "i32");
    CHECK(!fr_gguf_get_u64(g, "k.u64", &u64, &err) && u64 == 1ull << 40, "u64");
    CHECK(!fr_gguf_get_i64(g, "k.i64", &i64, &err) && i64 == -(1ll << 40), "i64");
    CHECK(!fr_gguf_get_f32(g, "k.f32", &f32, &err) && f32 == 0.5f, "f32");
    CHECK(!fr_gguf_get_f64(g, "k.f64", &f64, &err) && f64 == 1.25, "f64");
    CHECK(!fr_gguf_get_f32(g, "k.u32", &f32, &err) && f32 == 123456.0f, "int as float");
    CHECK(!fr_gguf_get_bool(g, "k.bool", &b, &err) && b, "bool");
    CHECK(!fr_gguf_get_str(g, "k.str", &s, &err) && s.len == 5 && !strcmp(s.s, "hello"), "str");
    CHECK(fr_gguf_get_u32(g, "k.i8", &u32, &err) == FR_ERR_FORMAT && strstr(err.msg, "k.i8"),
          "negative into u32 refused: %s", err.msg);
    CHECK(fr_gguf_get_i32(g, "k.u64", &i32, &err) == FR_ERR_FORMAT, "2^40 into i32 refused");
    CHECK(fr_gguf_get_bool(g, "k.u8", &b, &err) == FR_ERR_FORMAT, "u8 is not bool");
    CHECK(fr_gguf_get_str(g, "k.u8", &s, &err) == FR_ERR_FORMAT, "u8 is not a string");
    CHECK(fr_gguf_get_u32(g, "nope", &u32, &err) == FR_ERR_NOT_FOUND && strstr(err.msg, "nope"),
          "missing key: %s", err.msg);
    const fr_gguf_array *a;
    int32_t iv[3];
    float fv[3];
    CHECK(!fr_gguf_get_arr(g, "k.arr_i32", FR_GGUF_I32, &a, &err) && a->n == 3 &&
              !fr_gguf_arr_to_i32(a, iv, "k.arr_i32", &err) && iv[0] == 1 && iv[1] == -2 &&
              iv[2] == 3 && !fr_gguf_arr_to_f32(a, fv, "k.arr_i32", &err) && fv[1] == -2.0f,
          "i32 array");
    CHECK(fr_gguf_get_arr(g, "k.arr_i32", FR_GGUF_STRING, &a, &err) == FR_ERR_FORMAT,
          "element type enforced");
    CHECK(!fr_gguf_get_arr(g, "k.arr_str", FR_GGUF_STRING, &a, &err) && a->n == 3 &&
              !strcmp(fr_gguf_arr_str(a, 1).s, "yy") && fr_gguf_arr_str(a, 2).len == 0,
          "string array");
    CHECK(!fr_gguf_get_arr(g, "k.bools", FR_GGUF_BOOL, &a, &err) && fr_gguf_arr_i64(a, 0) == 1 &&
              fr_gguf_arr_i64(a, 1) == 0,
          "bool array");
    CHECK(!fr_gguf_get_arr(g, "k.nested", FR_GGUF_ARRAY, &a, &err) && a->n == 2 &&
              a->items[0].v.arr.n == 2 && a->items[1].v.arr.type == FR_GGUF_U16 &&
              fr_gguf_arr_u64(&a->items[0].v.arr, 1) == 2 &&
              fr_gguf_arr_u64(&a->items[1].v.arr, 0) == 3,
          "nested array");
    CHECK(fr_gguf_tensor_count(g) == 4, "tensor count");
    const char *names[] = {"a", "b", "c", "d"};
    const fr_dtype dts[] = {FR_DTYPE_F32, FR_DTYPE_Q4_K, FR_DTYPE_Q8_0, FR_DTYPE_I32};
    const void *datas[] = {t_a, t_b, t_c, t_d};
    const size_t sizes[] = {sizeof t_a, sizeof t_b, sizeof t_c, sizeof t_d};
    for (int i = 0; i < 4; i++) {
        const fr_gguf_tensor *t = fr_gguf_find_tensor(g, names[i]);
        CHECK(t && t == fr_gguf_tensor_at(g, (size_t)i), "tensor %s found in order", names[i]);
        if (!t) continue;
        CHECK(t->dtype == dts[i] && t->nbytes == sizes[i] && !memcmp(t->data, datas[i], sizes[i]),
              "tensor %s dtype/size/data", names[i]);
        CHECK(t->offset % 32 == 0 &&
                  (const uint8_t *)t->data == (const uint8_t *)fr_gguf_base(g) + t->offset,
              "tensor %s aligned", names[i]);
    }
    const fr_gguf_tensor *c = fr_gguf_find_tensor(g, "c");
    CHECK(c && c->ndim == 2 && c->shape[0] == 3 && c->shape[1] == 64 && c->n_elements == 192 &&
              !strcmp(c->type_name, "Q8_0"),
          "row-major shape");
    CHECK(!fr_gguf_find_tensor(g, "e") && !fr_gguf_find(g, "k.nope"), "absent lookups");
    fr_gguf_close(g);

    /* alignment 64 from metadata, key replacement, streaming equals one-shot */
    fr_gguf_writer *w;
    fr_gguf_writer_create(&w, &err);
    st = build_sample(w, &err);
    if (!st) st = fr_gguf_writer_set_u32(w, "general.alignment", 64, &err);
    if (!st) st = fr_gguf_writer_set_str(w, "k.str", "replaced", &err);
    if (!st) st = fr_gguf_writer_begin(w, tmp_path("stream.gguf", path, sizeof path), &err);
    for (int i = 0; i < 4 && !st; i++)
        st = fr_gguf_writer_write_data(w, datas[i], sizes[i], &err);
    if (!st) st = fr_gguf_writer_finish(w, &err);
    fr_gguf_writer_free(w);
    CHECK(st == FR_OK, "streamed write: %s", err.msg);
    st = fr_gguf_open(path, &g, &err);
    CHECK(st == FR_OK, "open streamed: %s", err.msg);
    if (!st) {
        CHECK(fr_gguf_alignment(g) == 64 && fr_gguf_kv_count(g) == 17, "alignment 64");
        CHECK(!fr_gguf_get_str(g, "k.str", &s, &err) && !strcmp(s.s, "replaced") &&
                  !strcmp(fr_gguf_kv_at(g, 12)->key.s, "k.str"),
              "replaced in place");
        for (size_t i = 0; i < fr_gguf_tensor_count(g); i++)
            CHECK(fr_gguf_tensor_at(g, i)->offset % 64 == 0, "64-aligned tensor %zu", i);
        fr_gguf_close(g);
    }
    /* writer refusals */
    fr_gguf_writer_create(&w, &err);
    CHECK(fr_gguf_writer_set_u32(w, "general.alignment", 48, &err) == FR_ERR_INVALID,
          "alignment must be a power of two");
    CHECK(fr_gguf_writer_add_tensor(w, "x", FR_DTYPE_Q4_0, 2, (int64_t[]){2, 48}, t_a, &err) ==
              FR_ERR_INVALID,
          "partial block rejected");
    char long_name[80];
    memset(long_name, 'n', 64);
    long_name[64] = 0;
    CHECK(fr_gguf_writer_add_tensor(w, long_name, FR_DTYPE_F32, 1, (int64_t[]){4}, t_a, &err) ==
              FR_ERR_INVALID,
          "64-byte name rejected");
    CHECK(!fr_gguf_writer_add_tensor(w, "x", FR_DTYPE_F32, 1, (int64_t[]){4}, t_a, &err) &&
              fr_gguf_writer_add_tensor(w, "x", FR_DTYPE_F32, 1, (int64_t[]){4}, t_a, &err) ==
                  FR_ERR_INVALID,
          "duplicate tensor rejected");
    CHECK(!fr_gguf_writer_begin(w, tmp_path("short.gguf", path, sizeof path), &err) &&
              fr_gguf_writer_write_data(w, t_a, 8, &err) == FR_ERR_INVALID &&
              access(path, F_OK) != 0,
          "wrong data size aborts and removes the file");
    fr_gguf_writer_free(w);
}

/* ---------------------------------------------------------------- hostile input */

/* Opens an exact-size copy of img; returns the status and leaves the message in err. */
static fr_status open_copy(const uint8_t *img, size_t n, fr_error *err) {
    uint8_t *buf = malloc(n ? n : 1);
    memcpy(buf, img, n);
    fr_gguf *g = NULL;
    fr_status st = fr_gguf_open_memory(buf, n, "mut.gguf", &g, err);
    if (!st) {
        /* whatever parsed must be self-consistent and in bounds */
        for (size_t i = 0; i < fr_gguf_tensor_count(g); i++) {
            const fr_gguf_tensor *t = fr_gguf_tensor_at(g, i);
            CHECK(t->offset <= n && t->nbytes <= n - t->offset && strlen(t->name) < n,
                  "accepted tensor out of bounds");
            if (t->dtype != FR_DTYPE_COUNT && t->ndim > 0)
                CHECK(fr_dtype_row_bytes(t->dtype, t->n_elements) == t->nbytes, "size mismatch");
        }
        for (size_t i = 0; i < fr_gguf_kv_count(g); i++)
            CHECK(strlen(fr_gguf_kv_at(g, i)->key.s) <= fr_gguf_kv_at(g, i)->key.len, "key");
        fr_gguf_close(g);
    }
    free(buf);
    return st;
}

static size_t find(const uint8_t *img, size_t n, const char *s, size_t len) {
    for (size_t i = 0; i + len <= n; i++)
        if (!memcmp(img + i, s, len)) return i;
    return (size_t)-1;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Offset of the first byte after the key named s (its value type field). */
static size_t after_key(const uint8_t *img, size_t n, const char *key) {
    size_t k = strlen(key);
    for (size_t i = 8; i + k <= n; i++)
        if (!memcmp(img + i, key, k) && img[i - 8] == k && !img[i - 7]) return i + k;
    return (size_t)-1;
}

/* Offset of a tensor info's n_dims field (tensor names are single letters here). */
static size_t tensor_info(const uint8_t *img, size_t n, char name) {
    const size_t first = find(img, n, "\x01\0\0\0\0\0\0\0a", 9);
    size_t p = first;
    for (char c = 'a'; c <= 'd' && p < n; c++) {
        if (c == name) return p + 9;
        uint32_t nd = img[p + 9];
        p += 9 + 4 + 8 * nd + 4 + 8;
    }
    return (size_t)-1;
}

typedef struct mutation {
    const char *what, *expect;
    void (*apply)(uint8_t *img, size_t n);
} mutation;

#define MUT(name, body)                                                                            \
    static void name(uint8_t *img, size_t n) {                                                     \
        body;                                                                                      \
    }
MUT(m_magic, img[0] = 'X')
MUT(m_v1, put_le(img + 4, 1, 4))
MUT(m_v4, put_le(img + 4, 4, 4))
MUT(m_be, put_le(img + 4, 0x03000000u, 4))
MUT(m_ntensors, put_le(img + 8, 0xffffffffffffffffull, 8))
MUT(m_nkv, put_le(img + 16, 1ull << 40, 8))
MUT(m_keylen, put_le(img + after_key(img, n, "k.u32") - 5 - 8, 1ull << 62, 8))
MUT(m_keylen_eof, put_le(img + after_key(img, n, "k.u32") - 5 - 8, n, 8))
MUT(m_vtype, put_le(img + after_key(img, n, "k.u32"), 13, 4))
MUT(m_bool, img[after_key(img, n, "k.bool") + 4] = 2)
MUT(m_strlen, put_le(img + after_key(img, n, "k.str") + 4, 0x7fffffffffffffffull, 8))
MUT(m_arr_type, put_le(img + after_key(img, n, "k.arr_i32") + 4, 13, 4))
MUT(m_arr_len, put_le(img + after_key(img, n, "k.arr_i32") + 8, 1ull << 61, 8))
MUT(m_arr_str_len, put_le(img + after_key(img, n, "k.arr_str") + 8, 1ull << 60, 8))
MUT(m_nested_len, put_le(img + after_key(img, n, "k.nested") + 8, 1ull << 59, 8))
MUT(m_bool_arr, img[after_key(img, n, "k.bools") + 4 + 4 + 8] = 7)
MUT(m_align3, put_le(img + after_key(img, n, "general.alignment") + 4, 3, 4))
MUT(m_align0, put_le(img + after_key(img, n, "general.alignment") + 4, 0, 4))
MUT(m_align_type, put_le(img + after_key(img, n, "general.alignment"), 5, 4))
MUT(m_dupkey, memcpy(img + after_key(img, n, "k.u16") - 3, "i16", 3))
MUT(m_ndims, put_le(img + tensor_info(img, n, 'c'), 5, 4))
MUT(m_dim_huge, put_le(img + tensor_info(img, n, 'd') + 4, 1ull << 63, 8))
MUT(m_dim_overflow, put_le(img + tensor_info(img, n, 'c') + 4, 1ull << 40, 8);
    put_le(img + tensor_info(img, n, 'c') + 12, 1ull << 40, 8))
MUT(m_type, put_le(img + tensor_info(img, n, 'a') + 4 + 16, 99, 4))
MUT(m_type_block, put_le(img + tensor_info(img, n, 'a') + 4 + 16, FR_GGML_Q4_K, 4))
MUT(m_off_eof, put_le(img + tensor_info(img, n, 'd') + 4 + 8 + 4, 1ull << 50, 8))
MUT(m_off_wrap, put_le(img + tensor_info(img, n, 'd') + 4 + 8 + 4, 0xffffffffffffffe0ull, 8))
MUT(m_off_misaligned, img[tensor_info(img, n, 'c') + 4 + 16 + 4] += 1)
MUT(m_overlap, memcpy(img + tensor_info(img, n, 'c') + 4 + 16 + 4,
                      img + tensor_info(img, n, 'b') + 4 + 16 + 4, 8))
MUT(m_dup_tensor, img[tensor_info(img, n, 'b') - 1] = 'a')
MUT(m_nul_name, img[tensor_info(img, n, 'b') - 1] = 0)
MUT(m_tensor_past_end, put_le(img + tensor_info(img, n, 'd') + 4, 1000, 8))
/* general.alignment 1 and f32 tensor 'a' at an address = 1 mod 4 (the data section then starts
 * right after the last tensor info, 'd': n_dims, 1 dimension, type, offset) */
static void m_elem_misaligned(uint8_t *img, size_t n) {
    put_le(img + after_key(img, n, "general.alignment") + 4, 1, 4);
    const size_t data = tensor_info(img, n, 'd') + 4 + 8 + 4 + 8;
    put_le(img + tensor_info(img, n, 'a') + 4 + 16 + 4, (5 - data % 4) % 4, 8);
}

static void test_mutations(void) {
    size_t n;
    uint8_t *base = write_sample("mut_base.gguf", &n);
    if (!base) return;
    fr_error err;
    CHECK(open_copy(base, n, &err) == FR_OK, "the base image opens: %s", err.msg);
    uint8_t *v2 = malloc(n);
    memcpy(v2, base, n);
    put_le(v2 + 4, 2, 4); /* v2 has the same layout as v3 */
    CHECK(open_copy(v2, n, &err) == FR_OK, "a v2 file opens: %s", err.msg);
    free(v2);
    /* every truncation fails (the writer leaves no padding after the last tensor) */
    int accepted = 0, unnamed = 0;
    for (size_t len = 0; len < n; len++) {
        if (open_copy(base, len, &err) == FR_OK)
            accepted++;
        else if (!strstr(err.msg, "mut.gguf: offset "))
            unnamed++;
    }
    CHECK(accepted == 0, "%d truncations of %zu were accepted", accepted, n);
    CHECK(unnamed == 0, "%d truncation errors lack file and offset", unnamed);

    const mutation muts[] = {
        {"bad magic", "not a GGUF", m_magic},
        {"version 1", "version 1", m_v1},
        {"version 4", "version 4", m_v4},
        {"big-endian", "big-endian", m_be},
        {"tensor count 2^64-1", "tensor count", m_ntensors},
        {"metadata count 2^40", "metadata count", m_nkv},
        {"key length 2^62", "string length", m_keylen},
        {"key length = file size", "string length", m_keylen_eof},
        {"value type 13", "key 'k.u32': unknown value type 13", m_vtype},
        {"bool 2", "key 'k.bool': bool value is 2", m_bool},
        {"string length 2^63-1", "key 'k.str'", m_strlen},
        {"array element type 13", "unknown array element type 13", m_arr_type},
        {"array length 2^61", "key 'k.arr_i32': array of", m_arr_len},
        {"string array length 2^60", "array of 1152921504606846976 string", m_arr_str_len},
        {"nested array length 2^59", "array of 576460752303423488 array", m_nested_len},
        {"bool array element 7", "bool array element 0 is 7", m_bool_arr},
        {"alignment 3", "not a power of two", m_align3},
        {"alignment 0", "not a power of two", m_align0},
        {"alignment as i32", "must be u32", m_align_type},
        {"duplicate key", "key 'k.i16': duplicate key", m_dupkey},
        {"5 dimensions", "tensor 'c'", m_ndims},
        {"dimension 2^63", "tensor 'd'", m_dim_huge},
        {"dimension product overflow", "overflows", m_dim_overflow},
        {"type 99", "unknown GGML type id 99", m_type},
        {"Q4_K with 32 columns", "not a multiple of the Q4_K block size", m_type_block},
        {"offset past EOF", "tensor 'd'", m_off_eof},
        {"offset wrapping", "outside", m_off_wrap},
        {"misaligned offset", "not a multiple of the alignment", m_off_misaligned},
        {"overlapping tensors", "overlaps", m_overlap},
        {"duplicate tensor name", "duplicate tensor name", m_dup_tensor},
        {"NUL in tensor name", "NUL", m_nul_name},
        {"tensor past the end", "outside", m_tensor_past_end},
        {"f32 at an odd address", "which F32 data needs (general.alignment 1)", m_elem_misaligned},
    };
    uint8_t *img = malloc(n);
    for (size_t i = 0; i < sizeof muts / sizeof muts[0]; i++) {
        memcpy(img, base, n);
        muts[i].apply(img, n);
        fr_status st = open_copy(img, n, &err);
        CHECK(st != FR_OK, "%s: accepted", muts[i].what);
        if (st == FR_OK) continue;
        CHECK(strstr(err.msg, muts[i].expect) && strstr(err.msg, "mut.gguf: offset "),
              "%s: message '%s' lacks '%s' or the offset", muts[i].what, err.msg, muts[i].expect);
    }
    /* nesting deeper than the limit, built by hand */
    uint8_t deep[256];
    size_t p = 0;
    put_le(deep, FR_GGUF_MAGIC, 4), put_le(deep + 4, 3, 4), put_le(deep + 8, 0, 8);
    put_le(deep + 16, 1, 8), put_le(deep + 24, 1, 8), deep[32] = 'k', p = 33;
    put_le(deep + p, FR_GGUF_ARRAY, 4), p += 4;
    for (int level = 0; level < FR_GGUF_MAX_ARRAY_DEPTH + 2; level++)
        put_le(deep + p, FR_GGUF_ARRAY, 4), put_le(deep + p + 4, 1, 8), p += 12;
    put_le(deep + p, FR_GGUF_U8, 4), put_le(deep + p + 4, 0, 8), p += 12;
    CHECK(open_copy(deep, p, &err) == FR_ERR_FORMAT && strstr(err.msg, "nested deeper"),
          "deep nesting: %s", err.msg);

    /* random corruption of the header region: clean failure or a consistent file */
    const size_t header = find(base, n, "\x01\0\0\0\0\0\0\0d", 9) + 9 + 4 + 8 + 4 + 8;
    fr_test_rng rng = {77};
    int ok = 0, failed = 0;
    for (int it = 0; it < 4000; it++) {
        memcpy(img, base, n);
        int k = 1 + (int)(fr_test_rng_u64(&rng) % 3);
        for (int j = 0; j < k; j++) {
            size_t at = (size_t)(fr_test_rng_u64(&rng) % header);
            uint64_t r = fr_test_rng_u64(&rng);
            switch (r % 4) {
            case 0:
                img[at] = (uint8_t)(r >> 8);
                break;
            case 1:
                img[at] ^= (uint8_t)(1u << ((r >> 8) % 8));
                break;
            case 2:
                if (at + 8 <= n) put_le(img + at, r >> 2, 8);
                break;
            default:
                img[at] = 0xff;
                break;
            }
        }
        size_t len = fr_test_rng_u64(&rng) % 8 ? n : (size_t)(fr_test_rng_u64(&rng) % n);
        if (open_copy(img, len, &err) == FR_OK)
            ok++;
        else
            failed++;
    }
    fprintf(stderr, "  random corruptions: %d accepted (consistent), %d rejected\n", ok, failed);
    CHECK(failed > 0 && ok + failed == 4000, "fuzz ran");
    free(img);
    free(base);
}

int main(void) {
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_mutations();
    char path[512];
    const char *files[] = {"sample.gguf", "stream.gguf", "mut_base.gguf", "short.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        remove(tmp_path(files[i], path, sizeof path));
    rmdir(tmp_dir);
    return fr_test_finish("test_gguf_parse");
}
