/* ferrum: one binary, one sub-command per file (apps/cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "commands.h"

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
    fprintf(f, "usage: ferrum COMMAND [options]   (ferrum COMMAND --help for details)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].fn) fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
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
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        if (!commands[i].fn) {
            fprintf(stderr, "ferrum: command '%s' is not available in this build\n", argv[1]);
            return 2;
        }
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "ferrum: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
