/* ferrum tokenize -m PATH [--add-special] [TEXT | -]: token ids as a JSON array. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ferrum.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ferrum tokenize -m PATH [--add-special] [TEXT | -]\n"
               "  -m, --model PATH   model folder, tokenizer.json or GGUF file\n"
               "  --add-special      add the tokenizer's special tokens (e.g. BOS), as Hugging\n"
               "                     Face's add_special_tokens=True\n"
               "  TEXT               text to encode; '-' or nothing reads standard input as is\n"
               "Prints the ids as a JSON array.\n");
}

static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n == cap) {
            char *nb = cap > ((size_t)1 << 40) ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int fr_cmd_tokenize(int argc, char **argv) {
    const char *path = NULL, *text = NULL;
    bool add_special = false, have_text = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) {
            path = argv[++i];
        } else if (!strcmp(argv[i], "--add-special")) {
            add_special = true;
        } else if (!strcmp(argv[i], "--")) {
            if (i + 1 < argc && !have_text) {
                text = argv[++i];
                have_text = true;
            }
            if (i + 1 < argc) {
                fprintf(stderr, "ferrum tokenize: more than one TEXT\n");
                return 2;
            }
        } else if (argv[i][0] == '-' && strcmp(argv[i], "-")) {
            fprintf(stderr, "ferrum tokenize: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (have_text) {
            fprintf(stderr, "ferrum tokenize: more than one TEXT (quote it)\n");
            return 2;
        } else {
            text = argv[i];
            have_text = true;
        }
    }
    if (!path) {
        fprintf(stderr, "ferrum tokenize: -m PATH is required\n");
        usage(stderr);
        return 2;
    }
    char *owned = NULL;
    size_t len = 0;
    if (!have_text || !strcmp(text, "-")) {
        owned = read_stdin(&len);
        if (!owned) {
            fprintf(stderr, "ferrum tokenize: cannot read standard input\n");
            return 1;
        }
        text = owned;
    } else {
        len = strlen(text);
    }
    fr_error err = {0};
    fr_tokenizer *tok = NULL;
    int rc = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    if (fr_tokenizer_load(path, &tok, &err) ||
        fr_tokenizer_encode(tok, text, len, add_special, &ids, &n, &err)) {
        fprintf(stderr, "ferrum tokenize: %s\n", err.msg);
        rc = 1;
    } else {
        putchar('[');
        for (size_t i = 0; i < n; i++)
            printf(i ? ", %d" : "%d", ids[i]);
        printf("]\n");
        if (fflush(stdout) != 0) rc = 1;
    }
    free(ids);
    free(owned);
    fr_tokenizer_free(tok);
    return rc;
}
