/* ferrum: one binary, one sub-command per file (apps/cmd_*.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/quant_dot.h"

/* CMake passes these to this file only (CMakeLists.txt); a build without them still says so. */
#ifndef FR_VERSION
#define FR_VERSION "unknown"
#endif
#ifndef FR_GIT_COMMIT
#define FR_GIT_COMMIT "unknown"
#endif
#ifndef FR_BUILD_TYPE
#define FR_BUILD_TYPE "unknown"
#endif

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command commands[] = {
    {"run", fr_cmd_run, "generate text from a prompt"},
    {"chat", fr_cmd_chat, "interactive chat with the model's template"},
    {"bench", fr_cmd_bench, "prompt and generation speed, GB/s against the roofline"},
    {"info", fr_cmd_info, "architecture, sizes and dtypes of a model"},
    {"logits", fr_cmd_logits, "write the logits of a token sequence to a file"},
    {"tokenize", fr_cmd_tokenize, "text -> token ids (JSON)"},
    {"detokenize", fr_cmd_detokenize, "token ids (JSON) -> text"},
    {"template", fr_cmd_template, "render a chat with the model's template"},
    {"quantize", fr_cmd_quantize, "convert a model to a GGUF of another type"},
    {"serve", fr_cmd_serve, "OpenAI-compatible HTTP server"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: ferrum COMMAND [options]   (ferrum COMMAND --help for details; an option\n"
               "                                   taking a value also accepts --option=VALUE)\n"
               "       ferrum --version\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].fn) fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
}

/* The kernel tables a CPU backend picks on this machine (CPUID, lowered by FR_CPU_ISA): what
 * "CPU features used" means, rather than everything the CPU has. The backend keeps them in its
 * context, so one is created for the question. */
static void print_cpu_kernels(void) {
    fr_backend *be = NULL;
    fr_error err = {0};
    fr_backend_params bp = {.n_threads = 1};
    if (fr_backend_create("cpu", &bp, &be, &err)) {
        printf("cpu kernels: unknown (%s)\n", err.msg);
        return;
    }
    const fr_cpu_ctx *ctx = be->ctx;
    printf("cpu kernels: %s (float), %s (quantized weights x 8-bit activations)\n", ctx->k->name,
           fr_cpu_quant_kernels_name(ctx));
    fr_backend_destroy(be);
#if defined(__x86_64__) || defined(__i386__)
    /* f16c is left out: clang 14's __builtin_cpu_supports does not know it; the builtin needs a
     * literal name, hence the macro */
    __builtin_cpu_init();
#define FEAT(name)                                                                                 \
    { name, __builtin_cpu_supports(name) }
    const struct {
        const char *name;
        int has;
    } feats[] = {FEAT("sse4.2"),     FEAT("avx"),       FEAT("avx2"),     FEAT("fma"),
                 FEAT("avx512f"),    FEAT("avx512bw"),  FEAT("avx512vl"), FEAT("avx512dq"),
                 FEAT("avx512bf16"), FEAT("avx512vnni")};
#undef FEAT
    printf("cpu features:");
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++)
        if (feats[i].has) printf(" %s", feats[i].name);
    printf("\n");
#endif
}

static int version(void) {
    printf("ferrum %s\n", FR_VERSION);
    printf("commit:      %s\n", FR_GIT_COMMIT);
    printf("build type:  %s\n", FR_BUILD_TYPE);
#if defined(__clang__)
    printf("compiler:    clang %s\n", __clang_version__);
#elif defined(__GNUC__)
    printf("compiler:    gcc %s\n", __VERSION__);
#endif
    printf("backends:    cpu%s\n", fr_backend_available("cuda") ? " cuda" : "");
    print_cpu_kernels();
    return fflush(stdout) ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) return version();
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        if (!commands[i].fn) {
            fprintf(stderr, "ferrum: command '%s' is not available in this build\n", argv[1]);
            return 2;
        }
        char **args;
        int n;
        if (fr_cli_split_args(argc - 1, argv + 1, &args, &n)) {
            fprintf(stderr, "ferrum: out of memory\n");
            return 1;
        }
        int rc = commands[i].fn(n, args);
        free(args);
        return rc;
    }
    fprintf(stderr, "ferrum: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
