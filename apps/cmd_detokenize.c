/* ferrum detokenize -m PATH [--skip-special] [IDS_JSON | -]: the text of a JSON array of ids,
 * given as an argument or on standard input (as tokenize takes its text). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "ferrum.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ferrum detokenize -m PATH [--skip-special] [IDS_JSON | -]\n"
               "  -m, --model PATH   model folder, tokenizer.json or GGUF file\n"
               "  --skip-special     leave special tokens out of the text\n"
               "  IDS_JSON           a JSON array of token ids, e.g. '[9707, 11, 1879]'; '-' or\n"
               "                     nothing reads it from standard input (tokenize's output)\n"
               "Prints the text exactly, without an added newline.\n");
}

/* Parses "[1, 2, 3]"; returns 0, or 2 with a message on a malformed array. */
static int parse_ids(const char *s, int32_t **ids, size_t *n) {
    cJSON *arr = cJSON_Parse(s);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        fprintf(stderr, "ferrum detokenize: IDS_JSON must be a JSON array of integers\n");
        return 2;
    }
    size_t cnt = (size_t)cJSON_GetArraySize(arr), i = 0;
    *ids = malloc((cnt ? cnt : 1) * sizeof **ids);
    if (!*ids) {
        cJSON_Delete(arr);
        fprintf(stderr, "ferrum detokenize: out of memory\n");
        return 1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        double d = cJSON_IsNumber(it) ? it->valuedouble : -1.0;
        if (!cJSON_IsNumber(it) || d < 0 || d > 2147483647.0 || d != (double)(int32_t)d) {
            fprintf(stderr, "ferrum detokenize: element %zu of IDS_JSON is not a token id\n", i);
            cJSON_Delete(arr);
            free(*ids);
            *ids = NULL;
            return 2;
        }
        (*ids)[i++] = (int32_t)d;
    }
    *n = cnt;
    cJSON_Delete(arr);
    return 0;
}

int fr_cmd_detokenize(int argc, char **argv) {
    const char *path = NULL, *json = NULL;
    bool skip = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) {
            path = argv[++i];
        } else if (!strcmp(argv[i], "--skip-special")) {
            skip = true;
        } else if (!strcmp(argv[i], "--") && i + 1 < argc && !json) {
            json = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "ferrum detokenize: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (json) {
            fprintf(stderr, "ferrum detokenize: more than one IDS_JSON (quote it)\n");
            return 2;
        } else {
            json = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "ferrum detokenize: -m PATH is required\n");
        usage(stderr);
        return 2;
    }
    char *owned = NULL;
    if (!json || !strcmp(json, "-")) {
        size_t len = 0;
        owned = fr_cli_read_file("-", &len);
        if (!owned) {
            fprintf(stderr, "ferrum detokenize: cannot read standard input\n");
            return 1;
        }
        if (memchr(owned, 0, len)) {
            free(owned);
            fprintf(stderr, "ferrum detokenize: standard input holds a NUL byte, not IDS_JSON\n");
            return 2;
        }
        json = owned;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = parse_ids(json, &ids, &n);
    free(owned);
    if (rc) return rc;
    fr_error err = {0};
    fr_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    if (fr_tokenizer_load(path, &tok, &err) ||
        fr_tokenizer_decode(tok, ids, n, skip, &text, &len, &err)) {
        fprintf(stderr, "ferrum detokenize: %s\n", err.msg);
        rc = 1;
    } else if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
        rc = 1;
    }
    free(text);
    free(ids);
    fr_tokenizer_free(tok);
    return rc;
}
