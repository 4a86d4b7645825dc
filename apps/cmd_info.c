/* ferrum info -m PATH: architecture, sizes, dtypes and the memory a context will need. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ferrum.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ferrum info -m PATH [--ctx N] [--kv-type TYPE]\n"
            "  -m, --model PATH   Hugging Face folder, .safetensors or GGUF file\n"
            "  -c, --ctx N        context to size the KV cache estimate for (also --ctx-size)\n"
            "                     (default: min(4096, the model's maximum))\n"
            "  --kv-type TYPE     KV cache type to size it for: f16, bf16, f32 or auto (default,\n"
            "                     what run and chat use: f16 where the CPU converts it in\n"
            "                     hardware, else f32)\n");
}

static void human(double bytes, char *buf, size_t n) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, n, u ? "%.2f %s" : "%.0f %s", bytes, unit[u]);
}

int fr_cmd_info(int argc, char **argv) {
    const char *path = NULL;
    long ctx = 0;
    fr_model_params mp = fr_model_default_params();
    mp.kv_type = FR_KV_AUTO; /* as fr_cli_init: the cache run and chat would allocate */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) {
            path = argv[++i];
        } else if ((!strcmp(argv[i], "--ctx") || !strcmp(argv[i], "-c") ||
                    !strcmp(argv[i], "--ctx-size")) &&
                   i + 1 < argc) {
            char *end;
            errno = 0;
            ctx = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || ctx < 1 || ctx > (1L << 30)) {
                fprintf(stderr, "ferrum info: %s: bad number '%s'\n", argv[i - 1], argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--kv-type") && i + 1 < argc) {
            if (!fr_kv_type_parse(argv[++i], &mp.kv_type) || mp.kv_type == FR_KV_DEFAULT) {
                fprintf(stderr,
                        "ferrum info: --kv-type: expected f16, bf16, f32 or auto, got '%s'\n",
                        argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "ferrum info: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "ferrum info: -m PATH is required\n");
        usage(stderr);
        return 2;
    }
    fr_error err = {0};
    fr_model *m = NULL;
    if (fr_model_load(path, &mp, &m, &err)) {
        fprintf(stderr, "ferrum info: %s\n", err.msg);
        return 1;
    }
    fr_model_info in;
    fr_model_get_info(m, &in);
    if (ctx == 0) ctx = in.max_context < 4096 ? in.max_context : 4096;
    /* the type "auto" resolves to is the session's business: ask a one-token session */
    fr_session_params sp = fr_session_default_params();
    sp.n_ctx = 1;
    fr_session *s = NULL;
    if (fr_session_create(m, &sp, &s, &err)) {
        fprintf(stderr, "ferrum info: %s\n", err.msg);
        fr_model_free(m);
        return 1;
    }
    const fr_kv_type kt = fr_session_kv_type(s);
    fr_session_free(s);
    /* kv_bytes_per_token counts f32 elements */
    const double kv_token = (double)in.kv_bytes_per_token * (kt == FR_KV_F32 ? 1.0 : 0.5);
    char wb[32], kv[32], tot[32];
    human((double)in.weight_bytes, wb, sizeof wb);
    human(kv_token * (double)ctx, kv, sizeof kv);
    human((double)in.weight_bytes + kv_token * (double)ctx, tot, sizeof tot);
    printf("model:           %s\n", path);
    printf("architecture:    %s (%s)\n", in.arch, in.family);
    printf("layers:          %d\n", in.n_layers);
    printf("hidden size:     %d\n", in.hidden);
    printf("heads:           %d query, %d key/value, head_dim %d\n", in.n_heads, in.n_kv_heads,
           in.head_dim);
    printf("intermediate:    %d\n", in.intermediate);
    printf("vocabulary:      %d\n", in.vocab);
    printf("max context:     %d\n", in.max_context);
    printf("rope theta:      %g\n", in.rope_theta);
    if (in.sliding_window) printf("sliding window:  %d\n", in.sliding_window);
    printf("features:        %s%s%s%s\n", in.qk_norm ? "qk-norm " : "",
           in.qkv_bias ? "qkv-bias " : "", in.layer_scale ? "layer-scale " : "",
           in.tied_embeddings ? "tied-embeddings" : "untied-embeddings");
    printf("parameters:      %lld (%.3f B)\n", (long long)in.n_params, in.n_params / 1e9);
    printf("weight dtypes:   %s\n", in.weight_dtypes);
    printf("weight bytes:    %zu (%s)\n", in.weight_bytes, wb);
    printf("kv cache:        %.0f bytes/token, %s for %ld tokens (%s)\n", kv_token, kv, ctx,
           fr_kv_type_name(kt));
    printf("memory needed:   %s (weights + kv cache, without activations)\n", tot);
    const int32_t *eos;
    int n_eos = fr_model_eos_ids(m, &eos);
    printf("eos ids:        ");
    for (int i = 0; i < n_eos; i++)
        printf(" %d", eos[i]);
    printf("%s\n", n_eos ? "" : " (none)");
    fr_model_free(m);
    return 0;
}
