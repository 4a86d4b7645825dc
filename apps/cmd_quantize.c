/* ferrum quantize [--threads N] [--quiet] IN OUT TYPE: a Hugging Face folder or a GGUF file ->
 * a GGUF file whose weights are of TYPE (llama.cpp's tensor-type rules, see model/quantize.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commands.h"
#include "ferrum.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ferrum quantize [options] IN OUT TYPE\n"
            "  IN             Hugging Face model folder (config.json, *.safetensors, tokenizer\n"
            "                 files) or a GGUF file (f32/f16/bf16; quantized inputs are\n"
            "                 dequantized first, with a warning)\n"
            "  OUT            the GGUF file to write: a regular file appears only when\n"
            "                 complete and keeps its mode; a FIFO or device is written in\n"
            "                 place; '-' is standard output; the input's files are refused\n"
            "  TYPE           %s\n"
            "  --threads N    worker threads (default: one per core)\n"
            "  --quiet        no per-tensor lines\n"
            "Norms and biases stay f32. With a quantized TYPE the output matrix gets Q6_K (Q8_0\n"
            "when its rows are not whole Q6_K blocks), and Q4_K_M / Q5_K_M keep attn_v and\n"
            "ffn_down of some layers in Q6_K, as llama.cpp's llama-quantize does.\n",
            fr_model_quantize_types());
}

/* TYPE is a word of the ", "-separated list (case-insensitive), so a typo is a usage error. */
static bool type_known(const char *type) {
    const char *list = fr_model_quantize_types();
    size_t n = strlen(type);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && !strncasecmp(p, type, n)) return true;
        if (!e) break;
        p = e + 2;
    }
    return false;
}

int fr_cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {0};
    int n_pos = 0, threads = 0;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(argv[i], "--threads") || !strcmp(argv[i], "-t")) && i + 1 < argc) {
            char *end;
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || v < 1 || v > 1024) {
                fprintf(stderr, "ferrum quantize: --threads wants a number from 1 to 1024\n");
                return 2;
            }
            threads = (int)v;
        } else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
            quiet = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "ferrum quantize: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (n_pos == 3) {
            fprintf(stderr, "ferrum quantize: too many arguments\n");
            usage(stderr);
            return 2;
        } else {
            pos[n_pos++] = argv[i];
        }
    }
    if (n_pos != 3) {
        fprintf(stderr, "ferrum quantize: IN, OUT and TYPE are required\n");
        usage(stderr);
        return 2;
    }
    if (!type_known(pos[2])) {
        fprintf(stderr, "ferrum quantize: unknown TYPE '%s' (one of %s)\n", pos[2],
                fr_model_quantize_types());
        return 2;
    }
    fr_error err = {0};
    if (fr_model_quantize(pos[0], pos[1], pos[2], threads, !quiet, &err)) {
        fprintf(stderr, "ferrum quantize: %s\n", err.msg);
        return 1;
    }
    return 0;
}
