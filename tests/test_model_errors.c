/* Hostile model folders: copies of a fixture with one thing broken each. The library must refuse
 * each one with a message naming the file and the tensor or field; the CLI must exit 1 and leave
 * no output file behind. Also the CLI's good path (prefill and --incremental agree with the
 * Hugging Face reference) and its usage errors (exit 2). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/testutil.h"
#include "engine/session.h"
#include "ferrum.h"

static char root_dir[] = "/tmp/fr_test_model_errors_XXXXXX";
static char fixture_dir[1024];
static const char *ferrum_bin;

static int copy_file(const char *from, const char *to) {
    size_t n;
    char *data = fr_test_read_file(from, &n);
    if (!data) return -1;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(data, 1, n, f) == n;
    if (f) ok = fclose(f) == 0 && ok;
    free(data);
    return ok ? 0 : -1;
}

static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, n, f) == n;
    if (f) ok = fclose(f) == 0 && ok;
    return ok ? 0 : -1;
}

/* A fresh copy of the fixture model in root_dir/NAME; returns the folder path. */
static const char *make_case(const char *name, char *dir, size_t n) {
    snprintf(dir, n, "%s/%s", root_dir, name);
    mkdir(dir, 0755);
    const char *files[] = {"config.json", "generation_config.json", "model.safetensors"};
    for (int i = 0; i < 3; i++) {
        char from[1200], to[1200];
        snprintf(from, sizeof from, "%s/%s", fixture_dir, files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        CHECK(copy_file(from, to) == 0, "copy %s", from);
    }
    return dir;
}

/* ---- editing the copies ---- */

typedef void (*json_edit)(cJSON *root);

static void edit_config(const char *dir, json_edit fn) {
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = fr_test_read_file(path, NULL);
    cJSON *root = cJSON_Parse(text);
    free(text);
    fn(root);
    char *out = cJSON_Print(root);
    CHECK(write_bytes(path, out, strlen(out)) == 0, "write %s", path);
    free(out);
    cJSON_Delete(root);
}

/* Rewrites the safetensors header (data section kept byte for byte). */
static void edit_header(const char *dir, json_edit fn) {
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t n;
    unsigned char *file = fr_test_read_file(path, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | file[i];
    cJSON *root = cJSON_ParseWithLength((const char *)file + 8, (size_t)hl);
    fn(root);
    char *h = cJSON_PrintUnformatted(root);
    size_t nh = strlen(h), data = n - 8 - (size_t)hl;
    unsigned char *out = malloc(8 + nh + data);
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)((uint64_t)nh >> (8 * i));
    memcpy(out + 8, h, nh);
    memcpy(out + 8 + nh, file + 8 + hl, data);
    CHECK(write_bytes(path, out, 8 + nh + data) == 0, "write %s", path);
    free(out);
    free(h);
    cJSON_Delete(root);
    free(file);
}

static cJSON *tensor(cJSON *root, const char *name) {
    return cJSON_GetObjectItem(root, name);
}
static void set_pair(cJSON *arr, double a, double b) {
    cJSON_ReplaceItemInArray(arr, 0, cJSON_CreateNumber(a));
    cJSON_ReplaceItemInArray(arr, 1, cJSON_CreateNumber(b));
}
static double data_end(cJSON *root) {
    double end = 0;
    for (cJSON *e = root->child; e; e = e->next) {
        cJSON *o = cJSON_GetObjectItem(e, "data_offsets");
        if (o && cJSON_GetArrayItem(o, 1)->valuedouble > end)
            end = cJSON_GetArrayItem(o, 1)->valuedouble;
    }
    return end;
}

static void cfg_drop_heads(cJSON *r) {
    cJSON_DeleteItemFromObject(r, "num_attention_heads");
}
static void cfg_unknown_arch(cJSON *r) {
    cJSON *a = cJSON_GetObjectItem(r, "architectures");
    cJSON_ReplaceItemInArray(a, 0, cJSON_CreateString("FooBarForCausalLM"));
}
static void cfg_vocab(cJSON *r) {
    cJSON_ReplaceItemInObject(r, "vocab_size", cJSON_CreateNumber(500));
}
static void cfg_heads_string(cJSON *r) {
    cJSON_ReplaceItemInObject(r, "num_hidden_layers", cJSON_CreateString("two"));
}
static void hdr_drop_up(cJSON *r) {
    /* renamed rather than deleted: its bytes stay indexed (the format allows no holes) */
    cJSON *e = cJSON_DetachItemFromObject(r, "model.layers.1.mlp.up_proj.weight");
    cJSON_AddItemToObject(r, "model.layers.1.mlp.up_proj.weight_renamed", e);
}
static void hdr_transpose_q(cJSON *r) {
    set_pair(cJSON_GetObjectItem(tensor(r, "model.layers.0.self_attn.q_proj.weight"), "shape"), 64,
             128);
}
static void hdr_norm_longer(cJSON *r) {
    cJSON *o = cJSON_GetObjectItem(tensor(r, "model.norm.weight"), "data_offsets");
    set_pair(o, cJSON_GetArrayItem(o, 0)->valuedouble, cJSON_GetArrayItem(o, 1)->valuedouble + 4);
}
static void hdr_norm_shape_short(cJSON *r) {
    cJSON *s = cJSON_GetObjectItem(tensor(r, "model.norm.weight"), "shape");
    cJSON_ReplaceItemInArray(s, 0, cJSON_CreateNumber(63));
}
static void hdr_norm_past_end(cJSON *r) {
    double end = data_end(r);
    set_pair(cJSON_GetObjectItem(tensor(r, "model.norm.weight"), "data_offsets"), end, end + 256);
}
static void hdr_overlap(cJSON *r) {
    cJSON *a =
        cJSON_GetObjectItem(tensor(r, "model.layers.0.input_layernorm.weight"), "data_offsets");
    cJSON *b =
        cJSON_GetObjectItem(tensor(r, "model.layers.1.input_layernorm.weight"), "data_offsets");
    set_pair(b, cJSON_GetArrayItem(a, 0)->valuedouble, cJSON_GetArrayItem(a, 1)->valuedouble);
}
static void hdr_bad_dtype(cJSON *r) {
    cJSON_ReplaceItemInObject(tensor(r, "model.layers.0.mlp.gate_proj.weight"), "dtype",
                              cJSON_CreateString("F33"));
}
static void hdr_int_dtype(cJSON *r) {
    cJSON_ReplaceItemInObject(tensor(r, "model.layers.0.mlp.gate_proj.weight"), "dtype",
                              cJSON_CreateString("I32"));
}
static void hdr_negative_shape(cJSON *r) {
    cJSON *s = cJSON_GetObjectItem(tensor(r, "model.norm.weight"), "shape");
    cJSON_ReplaceItemInArray(s, 0, cJSON_CreateNumber(-64));
}

/* ---- running the CLI ---- */

static int run(const char *args, const char *stderr_path) {
    char cmd[12288];
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>'%s'", ferrum_bin, args, stderr_path);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* No out.f32 and no temporary out.f32.tmp.* left in dir. */
static bool no_output_left(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return false;
    bool clean = true;
    for (struct dirent *e; (e = readdir(d));)
        if (!strncmp(e->d_name, "out.f32", 7)) clean = false;
    closedir(d);
    return clean;
}

/* The library and the CLI both refuse `dir`, naming every string in want[]. */
static void expect_refusal(const char *label, const char *dir, const char *const *want) {
    fr_error err = {0};
    fr_model *m = NULL;
    fr_status s = fr_model_load(dir, NULL, &m, &err);
    CHECK(s != FR_OK && m == NULL, "%s: loaded a broken model", label);
    fprintf(stderr, "%-17s -> %s\n", label, err.msg);
    for (int i = 0; want[i]; i++)
        CHECK(strstr(err.msg, want[i]) != NULL, "%s: message lacks '%s': %s", label, want[i],
              err.msg);
    fr_model_free(m);

    char args[2048], errp[1200];
    snprintf(errp, sizeof errp, "%s/stderr.txt", dir);
    snprintf(args, sizeof args, "logits -m '%s' --ids 1,2,3 -o '%s/out.f32'", dir, dir);
    int rc = run(args, errp);
    CHECK(rc == 1, "%s: ferrum logits exit code %d", label, rc);
    char *msg = fr_test_read_file(errp, NULL);
    for (int i = 0; msg && want[i]; i++)
        CHECK(strstr(msg, want[i]) != NULL, "%s: CLI message lacks '%s': %s", label, want[i], msg);
    free(msg);
    CHECK(no_output_left(dir), "%s: output file left behind", label);
    snprintf(args, sizeof args, "info -m '%s'", dir);
    rc = run(args, errp);
    CHECK(rc == 1, "%s: ferrum info exit code %d", label, rc);
}

static void test_broken_models(void) {
    char dir[1200];
    const char *st = "model.safetensors";

    make_case("no_field", dir, sizeof dir);
    edit_config(dir, cfg_drop_heads);
    expect_refusal("missing field", dir, (const char *[]){"config.json", "num_attention_heads", 0});

    make_case("unknown_arch", dir, sizeof dir);
    edit_config(dir, cfg_unknown_arch);
    expect_refusal("unknown arch", dir,
                   (const char *[]){"config.json", "architectures", "FooBarForCausalLM", 0});

    make_case("field_type", dir, sizeof dir);
    edit_config(dir, cfg_heads_string);
    expect_refusal("field type", dir, (const char *[]){"config.json", "num_hidden_layers", 0});

    make_case("bad_json", dir, sizeof dir);
    char path[1300];
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_bytes(path, "{\"architectures\": [", 19);
    expect_refusal("malformed config", dir, (const char *[]){"config.json", "malformed", 0});

    make_case("no_config", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    expect_refusal("no config", dir, (const char *[]){"config.json", 0});

    make_case("no_weights", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    expect_refusal("no weights", dir, (const char *[]){"model.safetensors", 0});

    /* the header's length field claims more bytes than the file has */
    make_case("header_len", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t n;
    unsigned char *file = fr_test_read_file(path, &n);
    uint64_t lie = (uint64_t)n + 100;
    for (int i = 0; i < 8; i++)
        file[i] = (unsigned char)(lie >> (8 * i));
    write_bytes(path, file, n);
    free(file);
    expect_refusal("header length", dir, (const char *[]){st, "header length", 0});

    make_case("tensor_size", dir, sizeof dir);
    edit_header(dir, hdr_norm_longer);
    expect_refusal("tensor size lie", dir, (const char *[]){st, "model.norm.weight", 0});

    make_case("shape_bytes", dir, sizeof dir);
    edit_header(dir, hdr_norm_shape_short);
    expect_refusal("shape vs offsets", dir,
                   (const char *[]){st, "model.norm.weight", "252 bytes", 0});

    make_case("past_end", dir, sizeof dir);
    edit_header(dir, hdr_norm_past_end);
    expect_refusal("offsets past end", dir, (const char *[]){st, "model.norm.weight", "past", 0});

    make_case("overlap", dir, sizeof dir);
    edit_header(dir, hdr_overlap);
    expect_refusal("overlap", dir, (const char *[]){st, "input_layernorm.weight", "overlap", 0});

    make_case("truncated", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    file = fr_test_read_file(path, &n);
    write_bytes(path, file, n * 6 / 10);
    free(file);
    expect_refusal("truncated", dir, (const char *[]){st, "tensor model.", "truncated", 0});

    make_case("tiny_file", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_bytes(path, "\x05\0\0", 3);
    expect_refusal("3-byte file", dir, (const char *[]){st, "too short", 0});

    make_case("missing_tensor", dir, sizeof dir);
    edit_header(dir, hdr_drop_up);
    expect_refusal("missing tensor", dir,
                   (const char *[]){st, "model.layers.1.mlp.up_proj.weight", "missing", 0});

    make_case("shape", dir, sizeof dir);
    edit_header(dir, hdr_transpose_q);
    expect_refusal("shape mismatch", dir,
                   (const char *[]){st, "model.layers.0.self_attn.q_proj.weight", "[64, 128]",
                                    "[128, 64]", 0});

    make_case("vocab", dir, sizeof dir);
    edit_config(dir, cfg_vocab);
    expect_refusal("vocab mismatch", dir,
                   (const char *[]){st, "model.embed_tokens.weight", "vocab_size", 0});

    make_case("dtype", dir, sizeof dir);
    edit_header(dir, hdr_bad_dtype);
    expect_refusal("unknown dtype", dir,
                   (const char *[]){st, "model.layers.0.mlp.gate_proj.weight", "F33", 0});

    make_case("int_dtype", dir, sizeof dir);
    edit_header(dir, hdr_int_dtype);
    expect_refusal("integer weights", dir,
                   (const char *[]){st, "model.layers.0.mlp.gate_proj.weight", "I32", 0});

    make_case("neg_shape", dir, sizeof dir);
    edit_header(dir, hdr_negative_shape);
    expect_refusal("negative shape", dir, (const char *[]){st, "model.norm.weight", "shape", 0});
}

/* ---- issue 16: exact safetensors headers, unaligned tensor data, non-finite logits, failures
 * without an fr_error ---- */

/* ASan refuses a multi-terabyte allocation by aborting unless told to return NULL, as malloc does;
 * the session test below needs the NULL. Ignored by builds without ASan. */
__attribute__((used)) const char *__asan_default_options(void) {
    return "allocator_may_return_null=1";
}

/* A copy of fixture `model` in root_dir/name. */
static const char *make_case_of(const char *model, const char *name, char *dir, size_t n) {
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", fixture_dir);
    fr_test_data_path(model, fixture_dir, sizeof fixture_dir);
    make_case(name, dir, n);
    snprintf(fixture_dir, sizeof fixture_dir, "%s", saved);
    return dir;
}

/* Rewrites dir/model.safetensors: the header's JSON (compact) followed by `tail`, the length field
 * off by `delta` from the header's real length, the data section as it was and `extra` zero bytes
 * after it. `edit` (may be NULL) changes the JSON first. Returns the new header length. */
static size_t rewrite_st(const char *dir, json_edit edit, const char *tail, int delta,
                         size_t extra) {
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t n;
    unsigned char *file = fr_test_read_file(path, &n);
    if (!file) return 0;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | file[i];
    cJSON *root = cJSON_ParseWithLength((const char *)file + 8, (size_t)hl);
    if (edit) edit(root);
    char *json = cJSON_PrintUnformatted(root);
    const size_t nj = strlen(json), nt = strlen(tail), nh = nj + nt, data = n - 8 - (size_t)hl;
    unsigned char *out = calloc(1, 8 + nh + data + extra);
    const uint64_t field = (uint64_t)((int64_t)nh + delta);
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(field >> (8 * i));
    memcpy(out + 8, json, nj);
    memcpy(out + 8 + nj, tail, nt);
    memcpy(out + 8 + nh, file + 8 + hl, data);
    CHECK(write_bytes(path, out, 8 + nh + data + extra) == 0, "write %s", path);
    free(out);
    free(json);
    cJSON_Delete(root);
    free(file);
    return nh;
}

static void hdr_add_duplicate(cJSON *r) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "dtype", "F32");
    cJSON_AddItemToObject(e, "shape", cJSON_CreateIntArray((const int[]){0}, 1));
    cJSON_AddItemToObject(e, "data_offsets", cJSON_CreateIntArray((const int[]){0, 0}, 2));
    cJSON_AddItemToObject(r, "model.norm.weight", e); /* cJSON keeps both keys */
}
static void hdr_drop_tensor(cJSON *r) {
    cJSON_DeleteItemFromObject(r, "model.layers.1.mlp.up_proj.weight");
}
static void cfg_huge_context(cJSON *r) {
    cJSON_ReplaceItemInObject(r, "max_position_embeddings", cJSON_CreateNumber(1 << 30));
}

/* Logits of ids 1..4 (4 rows) from the model in dir; NULL with a CHECK failure when it fails. */
static float *logits_of(const char *dir, int *V) {
    fr_error err = {0};
    fr_model *m = NULL;
    fr_session *s = NULL;
    float *out = NULL;
    CHECK(fr_model_load(dir, NULL, &m, &err) == FR_OK, "load %s: %s", dir, err.msg);
    if (m) CHECK(fr_session_create(m, NULL, &s, &err) == FR_OK, "session: %s", err.msg);
    if (s) {
        *V = fr_model_vocab_size(m);
        out = malloc(sizeof(float) * 4 * (size_t)*V);
        const int32_t ids[4] = {1, 2, 3, 4};
        if (fr_session_eval(s, ids, 4, out, &err) != FR_OK) {
            CHECK(false, "eval %s: %s", dir, err.msg);
            free(out);
            out = NULL;
        }
    }
    fr_session_free(s);
    fr_model_free(m);
    return out;
}

static void test_header_exactness(void) {
    char dir[1200];
    const char *st = "model.safetensors";
    /* the format allows padding after the JSON: a header length that is no multiple of 4 leaves
     * every tensor unaligned in the mapping; the kernels must read them as they are (UBSan
     * flagged the AVX2 GEMM's float loads) and give the same logits */
    static const char *const MODELS[] = {"fixtures/models/qwen3-tiny",
                                         "fixtures/models/qwen3-tiny-bf16",
                                         "fixtures/models/llama3-tiny-f16"};
    for (int k = 0; k < 3; k++) {
        char name[64], orig[1200];
        snprintf(name, sizeof name, "unaligned%d", k);
        make_case_of(MODELS[k], name, dir, sizeof dir);
        fr_test_data_path(MODELS[k], orig, sizeof orig);
        size_t nh = rewrite_st(dir, NULL, "", 0, 0);
        const char *pads[] = {"", " ", "  ", "   ", "    ", "     ", "      ", "       "};
        nh = rewrite_st(dir, NULL, pads[(8 + 1 - nh % 8) % 8], 0, 0); /* 8 + nh = 1 mod 8 */
        CHECK((8 + nh) % 8 == 1, "%s: data at %zu", name, 8 + nh);
        /* every kernel table (a table this CPU lacks falls back to the best it has) */
        static const char *const ISAS[] = {"scalar", "avx2", "avx512"};
        for (int isa = 0; isa < 3; isa++) {
            setenv("FR_CPU_ISA", ISAS[isa], 1);
            int V = 0, V2 = 0;
            float *want = logits_of(orig, &V), *got = logits_of(dir, &V2);
            if (want && got) {
                int differ = 0;
                for (int i = 0; i < 4 * V; i++)
                    differ += memcmp(&want[i], &got[i], sizeof(float)) != 0;
                CHECK(V == V2 && differ == 0,
                      "%s (%s kernels): %d of %d logits differ with unaligned tensors", MODELS[k],
                      ISAS[isa], differ, 4 * V);
            }
            free(want);
            free(got);
        }
        unsetenv("FR_CPU_ISA");
    }

    /* the header length must be exact: one byte short still parses when the JSON was padded,
     * and then every tensor was read one byte early, as garbage */
    make_case("hdr_short", dir, sizeof dir);
    rewrite_st(dir, NULL, "    ", -1, 0);
    expect_refusal("header 1 short", dir, (const char *[]){st, "header length", 0});
    fr_model *m = NULL;
    CHECK(fr_model_load(dir, NULL, &m, NULL) != FR_OK && !m,
          "header 1 short: loaded without an fr_error");
    make_case("hdr_long", dir, sizeof dir);
    rewrite_st(dir, NULL, "    ", +1, 0);
    expect_refusal("header 1 long", dir, (const char *[]){st, "not padding", 0});
    make_case("hdr_tail", dir, sizeof dir);
    rewrite_st(dir, NULL, "  x ", 0, 0);
    expect_refusal("junk after JSON", dir, (const char *[]){st, "not padding", 0});
    make_case("trailing", dir, sizeof dir);
    rewrite_st(dir, NULL, "", 0, 8);
    expect_refusal("trailing bytes", dir, (const char *[]){st, "trailing bytes", 0});
    make_case("hole", dir, sizeof dir);
    rewrite_st(dir, hdr_drop_tensor, "", 0, 0);
    expect_refusal("hole", dir, (const char *[]){st, "no holes", 0});
    make_case("duplicate", dir, sizeof dir);
    rewrite_st(dir, hdr_add_duplicate, "", 0, 0);
    expect_refusal("duplicate key", dir, (const char *[]){st, "model.norm.weight", "twice", 0});
    /* padding with spaces (as the safetensors writer does) is fine */
    make_case("padded", dir, sizeof dir);
    rewrite_st(dir, NULL, "       ", 0, 0);
    fr_error err = {0};
    CHECK(fr_model_load(dir, NULL, &m, &err) == FR_OK, "padded header refused: %s", err.msg);
    fr_model_free(m);
}

static bool count_token(void *user, int32_t id) {
    (void)id;
    (*(int *)user)++;
    return true;
}

static void test_non_finite(void) {
    /* every weight byte 0xFF (NaN): the logits are all NaN, which used to come out as token 0
     * over and over (empty text, exit 0) */
    char dir[1200], path[1300];
    make_case("nan_weights", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t n;
    unsigned char *file = fr_test_read_file(path, &n);
    if (!file) return;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | file[i];
    memset(file + 8 + hl, 0xFF, n - 8 - (size_t)hl);
    write_bytes(path, file, n);
    free(file);

    fr_error err = {0};
    fr_model *m = NULL;
    CHECK(fr_model_load(dir, NULL, &m, &err) == FR_OK, "NaN weights load: %s", err.msg);
    for (int device = 0; m && device < 2; device++) {
        fr_session *s = NULL;
        fr_sampler *smp = NULL;
        CHECK(fr_session_create(m, NULL, &s, &err) == FR_OK, "session: %s", err.msg);
        fr_sampler_params sp = fr_sampler_default_params();
        sp.temperature = device ? 0.8f : 0.0f;
        CHECK(fr_sampler_create(&sp, fr_model_vocab_size(m), &smp, &err) == FR_OK, "sampler: %s",
              err.msg);
        if (s && smp) {
            /* the host sampler, and the sample op with only the id coming back */
            fr_session_set_device_sampling(s, device);
            int n_tok = 0;
            fr_generate_params gp = fr_generate_default_params();
            gp.max_tokens = 8;
            gp.on_token = count_token;
            gp.user = &n_tok;
            const int32_t prompt[3] = {1, 2, 3};
            err.msg[0] = 0;
            fr_status st = fr_generate(s, smp, NULL, prompt, 3, &gp, NULL, &err);
            CHECK(st == FR_ERR_RANGE && strstr(err.msg, "non-finite") && n_tok == 0,
                  "NaN logits (%s sampling): status %d, %d tokens, \"%s\"",
                  device ? "device" : "host", (int)st, n_tok, err.msg);
            fr_session_reset(s);
            st = fr_generate(s, smp, NULL, prompt, 3, &gp, NULL, NULL);
            CHECK(st == FR_ERR_RANGE, "NaN logits without fr_error: status %d", (int)st);
        }
        fr_sampler_free(smp);
        fr_session_free(s);
    }
    fr_model_free(m);

    /* the CLI exits nonzero, saying why */
    char args[2048], errp[1400];
    snprintf(errp, sizeof errp, "%s/stderr.txt", dir);
    snprintf(args, sizeof args, "run -m '%s' --ids 1,2,3 --print-ids -n 4 --temp 0", dir);
    int rc = run(args, errp);
    char *msg = fr_test_read_file(errp, NULL);
    CHECK(rc == 1 && msg && strstr(msg, "non-finite"), "ferrum run on NaN weights: exit %d, %s", rc,
          msg ? msg : "(no stderr)");
    free(msg);
}

static void test_failures_without_error(void) {
    /* a KV cache allocation that fails (2^30 positions: 512 GiB at 16 bits, 1 TiB at 32) is a
     * failure whether or not the caller passed an fr_error (fr_error_prefix returned FR_OK for
     * NULL) */
    char dir[1200];
    make_case("huge_ctx", dir, sizeof dir);
    edit_config(dir, cfg_huge_context);
    fr_error err = {0};
    fr_model *m = NULL;
    CHECK(fr_model_load(dir, NULL, &m, &err) == FR_OK, "huge context model: %s", err.msg);
    /* where the system hands out such a block anyway (overcommit "always", or an ASan build
     * reserving it), the cache would be created and the RoPE table after it filled: the check
     * runs only where the same allocator refuses the smaller of the two cache sizes */
    void *probe = NULL;
    const bool refused = posix_memalign(&probe, 2u << 20, (size_t)1 << 39) != 0;
    free(probe);
    printf("failed KV allocation without fr_error: %s\n",
           refused ? "checked" : "not checked (this allocator hands out 512 GiB)");
    if (m && refused) {
        fr_session_params p = fr_session_default_params();
        p.n_ctx = 1 << 30;
        p.n_batch = 1;
        fr_session *s = NULL;
        fr_status st = fr_session_create(m, &p, &s, NULL);
        CHECK(st == FR_ERR_NOMEM && !s, "failed KV allocation without fr_error: status %d",
              (int)st);
        fr_session_free(s);
        st = fr_session_create(m, &p, &s, &err);
        CHECK(st == FR_ERR_NOMEM && !s && strstr(err.msg, "KV cache") && err.code == st,
              "failed KV allocation: %d \"%s\"", (int)st, err.msg);
        fr_session_free(s);
    }
    fr_model_free(m);
}

/* ---- the CLI's good path and usage errors ---- */

static float *read_floats(const char *path, size_t want) {
    size_t n;
    float *f = fr_test_read_file(path, &n);
    if (f && n != want * 4) {
        free(f);
        return NULL;
    }
    return f;
}

static void test_cli(void) {
    char path[1024];
    char *text = fr_test_read_file(
        fr_test_data_path("fixtures/refs/qwen2-tiny.json", path, sizeof path), NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    CHECK(j != NULL, "qwen2-tiny refs");
    if (!j) return;
    char ids[2048] = "";
    int T = 0;
    for (cJSON *e = cJSON_GetObjectItem(j, "prompt_ids")->child; e; e = e->next, T++) {
        size_t k = strlen(ids);
        snprintf(ids + k, sizeof ids - k, "%s%d", T ? "," : "", (int)e->valuedouble);
    }
    cJSON_Delete(j);
    const int V = 512;
    float *ref = read_floats(
        fr_test_data_path("fixtures/refs/qwen2-tiny.logits.f32", path, sizeof path), (size_t)T * V);
    CHECK(ref != NULL, "reference logits");
    char model[1024], dir[1200], args[8192], errp[1300], out[1300];
    fr_test_data_path("fixtures/models/qwen2-tiny", model, sizeof model);
    snprintf(dir, sizeof dir, "%s/cli", root_dir);
    mkdir(dir, 0755);
    snprintf(errp, sizeof errp, "%s/stderr.txt", dir);

    float *rows[2] = {0};
    for (int inc = 0; inc < 2; inc++) {
        snprintf(out, sizeof out, "%s/logits%d.f32", dir, inc);
        snprintf(args, sizeof args, "logits -m '%s' --ids %s -o '%s' --backend cpu%s", model, ids,
                 out, inc ? " --incremental" : "");
        int rc = run(args, errp);
        CHECK(rc == 0, "ferrum logits%s exit code %d", inc ? " --incremental" : "", rc);
        rows[inc] = read_floats(out, (size_t)T * V);
        CHECK(rows[inc] != NULL, "logits file %s missing or of the wrong size", out);
        double worst = 0;
        for (int t = 0; rows[inc] && ref && t < T; t++) {
            double e = fr_test_rel_l2(rows[inc] + (size_t)t * V, ref + (size_t)t * V, V);
            if (!(e <= worst)) worst = e;
        }
        CHECK(rows[inc] && worst < 1e-4, "CLI logits%s max row rel error %.3g",
              inc ? " --incremental" : "", worst);
    }
    if (rows[0] && rows[1]) {
        double worst = 0;
        for (int t = 0; t < T; t++) {
            double e = fr_test_rel_l2(rows[1] + (size_t)t * V, rows[0] + (size_t)t * V, V);
            if (!(e <= worst)) worst = e;
        }
        CHECK(worst < 1e-5, "prefill and --incremental disagree: %.3g", worst);
    }
    free(rows[0]);
    free(rows[1]);
    free(ref);

    /* info prints the architecture and the parameter count */
    char outp[1300], cmd[8192];
    snprintf(outp, sizeof outp, "%s/info.txt", dir);
    snprintf(cmd, sizeof cmd, "'%s' info -m '%s' >'%s' 2>'%s'", ferrum_bin, model, outp, errp);
    int st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "ferrum info failed");
    char *info = fr_test_read_file(outp, NULL);
    /* qwen2-tiny: 2 * 512 * 64 untied + 2 layers of (q,k,v,o + biases + mlp + norms) + norm */
    const long C = 64, F = 160, H = 4, Hkv = 2, D = 16, L = 2, Vv = 512;
    long per = H * D * C + 2 * Hkv * D * C + C * H * D + H * D + 2 * Hkv * D + 3 * F * C + 2 * C;
    char count[64];
    snprintf(count, sizeof count, "%ld", 2 * Vv * C + L * per + C);
    CHECK(info && strstr(info, "Qwen2ForCausalLM") && strstr(info, count),
          "info output lacks the architecture or parameter count %s:\n%s", count, info);
    free(info);

    /* usage errors exit 2; runtime errors exit 1 and leave nothing */
    struct {
        const char *args;
        int rc;
    } cases[] = {
        {"logits --help", 0},
        {"info --help", 0},
        {"info", 2},
        {"logits -m M --ids 1,,2 -o D/out.f32", 2},
        {"logits -m M --ids 1,2, -o D/out.f32", 2},
        {"logits -m M --ids -3 -o D/out.f32", 2},
        {"logits -m M --ids 1,2", 2},
        {"logits -m M --ids 1,2 -o D/out.f32 --bogus", 2},
        {"logits -m M --ids 1,2 -o D/out.f32 --threads x", 2},
        {"logits -m M --ids 1,512 -o D/out.f32", 1},
        {"logits -m M --ids 1,2 -o D/out.f32 --backend nosuch", 1},
        {"logits -m M/nothing-here --ids 1,2 -o D/out.f32", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* expand M and D */
        char a[4096] = "";
        for (const char *p = cases[i].args; *p; p++) {
            size_t k = strlen(a);
            if (*p == 'M' && (p[1] == ' ' || p[1] == '/' || !p[1]))
                snprintf(a + k, sizeof a - k, "%s", model);
            else if (*p == 'D' && p[1] == '/')
                snprintf(a + k, sizeof a - k, "%s", dir);
            else
                snprintf(a + k, sizeof a - k, "%c", *p);
        }
        int rc = run(a, errp);
        CHECK(rc == cases[i].rc, "'ferrum %s' exit code %d, expected %d", cases[i].args, rc,
              cases[i].rc);
        CHECK(no_output_left(dir), "'ferrum %s' left an output file", cases[i].args);
    }
    snprintf(args, sizeof args, "logits -m '%s' --ids 1,2 -o '%s/no/such/dir/out.f32'", model, dir);
    CHECK(run(args, errp) == 1, "writing into a missing folder must fail with 1");
}

int main(void) {
    ferrum_bin = getenv("FERRUM");
    CHECK(ferrum_bin != NULL, "FERRUM (path of the ferrum binary) is not set");
    CHECK(mkdtemp(root_dir) != NULL, "mkdtemp");
    fr_test_data_path("fixtures/models/qwen3-tiny", fixture_dir, sizeof fixture_dir);
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/config.json", fixture_dir);
    CHECK(access(probe, R_OK) == 0, "fixture %s is missing", probe);
    if (ferrum_bin && access(probe, R_OK) == 0) {
        test_broken_models();
        test_header_exactness();
        test_non_finite();
        test_failures_without_error();
        test_cli();
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root_dir);
    CHECK(system(cmd) == 0, "cleanup");
    return fr_test_finish("test_model_errors");
}
