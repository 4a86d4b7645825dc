/* ferrum info -m PATH: architecture, sizes, dtypes and the memory a context will need. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ferrum.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ferrum info -m PATH [--ctx N]\n"
               "  -m, --model PATH   Hugging Face folder, .safetensors or GGUF file\n"
               "  -c, --ctx N        context to size the KV cache estimate for (also --ctx-size)\n"
               "                     (default: min(4096, the model's maximum))\n");
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
    if (fr_model_load(path, NULL, &m, &err)) {
        fprintf(stderr, "ferrum info: %s\n", err.msg);
        return 1;
    }
    fr_model_info in;
    fr_model_get_info(m, &in);
    if (ctx == 0) ctx = in.max_context < 4096 ? in.max_context : 4096;
    char wb[32], kv[32], tot[32];
    human((double)in.weight_bytes, wb, sizeof wb);
    human((double)in.kv_bytes_per_token * (double)ctx, kv, sizeof kv);
    human((double)in.weight_bytes + (double)in.kv_bytes_per_token * (double)ctx, tot, sizeof tot);
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
    printf("kv cache:        %zu bytes/token, %s for %ld tokens (f32)\n", in.kv_bytes_per_token, kv,
           ctx);
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
