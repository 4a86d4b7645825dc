/* ferrum logits -m PATH --ids 1,2,3 [--backend cpu] [--compute f32] [--incremental] -o FILE
 * Writes float32 little-endian logits, one vocab-sized row per input id, by the output rules of
 * core/outfile.h: a regular file appears only when complete (a temporary file in the same folder
 * renamed over it, mode kept), a FIFO or device is written in place, "-" is standard output, and
 * a model file as the output is refused. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "core/outfile.h"
#include "ferrum.h"
#include "model/quantize.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ferrum logits -m PATH --ids 1,2,3 -o FILE [options]\n"
               "  -m, --model PATH     Hugging Face folder, .safetensors file or .gguf file\n"
               "  --ids LIST           comma-separated token ids\n"
               "  -o, --output FILE    float32 little-endian logits, [n_ids, vocab]; '-' for\n"
               "                       standard output\n"
               "  --backend NAME       cpu (default) or cuda\n"
               "  --threads N          CPU threads (default: one per core)\n"
               "  --compute TYPE       activation and KV cache precision: f32 (default), bf16 "
               "or f16\n"
               "                       (bf16/f16 need --backend cuda)\n"
               "  --quant-act TYPE     quantized matmuls: q8 (default) or f32 activations\n"
               "  --incremental        prefill the first id, then one decode step per id\n"
               "  --batch N            prefill chunk size (default 256)\n");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* "1,2,3" -> ids; -1 on a malformed list. */
static int parse_ids(const char *s, int32_t **out, int *n) {
    int cap = 16, k = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return -1;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            free(ids);
            return -1;
        }
        if (k == cap) {
            cap *= 2;
            int32_t *grown = realloc(ids, (size_t)cap * sizeof *ids);
            if (!grown) {
                free(ids);
                return -1;
            }
            ids = grown;
        }
        ids[k++] = (int32_t)v;
        p = *end ? end + 1 : end;
        if (*end && !*p) { /* trailing comma */
            free(ids);
            return -1;
        }
    }
    if (k == 0) {
        free(ids);
        return -1;
    }
    *out = ids;
    *n = k;
    return 0;
}

/* little-endian on every host we build for; write bytes explicitly so it holds anywhere */
static bool write_le(FILE *f, const float *data, size_t count) {
    for (size_t i = 0; i < count; i++) {
        uint32_t u;
        memcpy(&u, &data[i], 4);
        unsigned char b[4] = {u & 0xff, (u >> 8) & 0xff, (u >> 16) & 0xff, u >> 24};
        if (fwrite(b, 1, 4, f) != 4) return false;
    }
    return true;
}

int fr_cmd_logits(int argc, char **argv) {
    const char *model_path = NULL, *ids_arg = NULL, *out_path = NULL;
    fr_model_params mp = fr_model_default_params();
    bool incremental = false;
    int batch = 0;
    fr_compute_type compute = FR_COMPUTE_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--incremental")) {
            incremental = true;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_val) {
            model_path = argv[++i];
        } else if (!strcmp(a, "--ids") && has_val) {
            ids_arg = argv[++i];
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has_val) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--backend") && has_val) {
            mp.backend = argv[++i];
        } else if (!strcmp(a, "--threads") && has_val) {
            if (parse_int(argv[++i], 0, 4096, &mp.n_threads)) {
                fprintf(stderr, "ferrum logits: --threads: bad number '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--quant-act") && has_val) {
            if (fr_cli_quant_act("logits", argv[++i], &mp.quant_act)) return 2;
        } else if (!strcmp(a, "--compute") && has_val) {
            if (!fr_compute_type_parse(argv[++i], &compute)) {
                fprintf(stderr, "ferrum logits: --compute: expected f32, bf16 or f16, got '%s'\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--batch") && has_val) {
            if (parse_int(argv[++i], 1, 1 << 20, &batch)) {
                fprintf(stderr, "ferrum logits: --batch: bad number '%s'\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "ferrum logits: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model_path || !ids_arg || !out_path) {
        fprintf(stderr, "ferrum logits: -m, --ids and -o are required\n");
        usage(stderr);
        return 2;
    }
    int32_t *ids;
    int n;
    if (parse_ids(ids_arg, &ids, &n)) {
        fprintf(stderr, "ferrum logits: --ids: expected comma-separated token ids, got '%s'\n",
                ids_arg);
        return 2;
    }
    fr_error err = {0};
    fr_model *model = NULL;
    fr_session *s = NULL;
    fr_outfile *out = NULL;
    float *logits = NULL;
    int rc = 1;
    char **inputs;
    size_t n_inputs;
    if (fr_model_input_files(model_path, &inputs, &n_inputs, &err)) goto fail;
    /* before the model loads, so a refused output costs nothing */
    fr_status ost = fr_outfile_open(out_path, (const char *const *)inputs, n_inputs, &out, &err);
    fr_model_input_files_free(inputs, n_inputs);
    if (ost) goto fail;
    if (fr_model_load(model_path, &mp, &model, &err)) goto fail;
    const size_t V = (size_t)fr_model_vocab_size(model);
    logits = malloc((size_t)n * V * sizeof(float));
    if (!logits) {
        snprintf(err.msg, sizeof err.msg, "out of memory for %d x %zu logits", n, V);
        goto fail;
    }
    fr_session_params sp = fr_session_default_params();
    sp.n_ctx = n;
    sp.n_batch = batch;
    sp.compute = compute;
    if (fr_session_create(model, &sp, &s, &err)) goto fail;
    if (incremental) {
        for (int i = 0; i < n; i++)
            if (fr_session_eval(s, &ids[i], 1, logits + (size_t)i * V, &err)) goto fail;
    } else if (fr_session_eval(s, ids, n, logits, &err)) {
        goto fail;
    }
    if (!write_le(fr_outfile_stream(out), logits, (size_t)n * V)) {
        snprintf(err.msg, sizeof err.msg, "%s: write failed: %s", out_path, strerror(errno));
        goto fail;
    }
    fr_outfile *o = out;
    out = NULL;
    if (fr_outfile_commit(o, &err)) goto fail;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "ferrum logits: %s\n", err.msg);
done:
    fr_outfile_abort(out);
    free(logits);
    free(ids);
    fr_session_free(s);
    fr_model_free(model);
    return rc;
}
