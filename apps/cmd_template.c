/* ferrum template -m PATH --messages FILE.json [--tools FILE.json] [--no-generation-prompt]
 * [--var KEY=VALUE]...: prints the prompt the model's chat template renders, byte for byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "commands.h"
#include "ferrum.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ferrum template -m PATH --messages FILE.json [options]\n"
               "  -m, --model PATH          model folder, tokenizer_config.json or GGUF file\n"
               "  --messages FILE.json      JSON array of {\"role\", \"content\", ...}\n"
               "  --tools FILE.json         JSON array of tool schemas (default: none)\n"
               "  --no-generation-prompt    render without add_generation_prompt\n"
               "  --var KEY=VALUE           template variable, repeatable; VALUE is read as JSON\n"
               "                            when it parses (false, 3, [1]), else as a string\n"
               "Prints the rendered prompt exactly, without a trailing newline.\n");
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = !strcmp(path, "-") ? stdin : fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            char *nb = cap > ((size_t)1 << 32) ? NULL : realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    if (f != stdin) fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* Appends "KEY": VALUE to a JSON object under construction; VALUE verbatim when it is valid
 * JSON (so 1 and 1.0 stay distinct), else as a JSON string. */
static bool add_var(char **json, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return false;
    size_t klen = (size_t)(eq - kv);
    char *key = strndup(kv, klen);
    if (!key) return false;
    const char *val = eq + 1;
    cJSON *probe = cJSON_Parse(val);
    char *val_json = NULL;
    if (probe) {
        val_json = strdup(val);
    } else {
        cJSON *sj = cJSON_CreateString(val);
        val_json = sj ? cJSON_PrintUnformatted(sj) : NULL;
        cJSON_Delete(sj);
    }
    cJSON_Delete(probe);
    cJSON *kj = cJSON_CreateString(key);
    char *key_json = kj ? cJSON_PrintUnformatted(kj) : NULL;
    cJSON_Delete(kj);
    bool ok = val_json && key_json;
    if (ok) {
        size_t old = strlen(*json), add = strlen(key_json) + strlen(val_json) + 4;
        char *nj = realloc(*json, old + add);
        ok = nj != NULL;
        if (ok) {
            snprintf(nj + old, add, "%s%s:%s", old > 1 ? "," : "", key_json, val_json);
            *json = nj;
        }
    }
    free(key);
    free(val_json);
    free(key_json);
    return ok;
}

int fr_cmd_template(int argc, char **argv) {
    const char *path = NULL, *messages_path = NULL, *tools_path = NULL;
    bool gen_prompt = true;
    char *vars = strdup("{");
    int rc = 2;
    char *messages = NULL, *tools = NULL, *out = NULL;
    fr_chat_template *t = NULL;
    if (!vars) return 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            rc = 0;
            goto done;
        } else if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) {
            path = argv[++i];
        } else if (!strcmp(argv[i], "--messages") && i + 1 < argc) {
            messages_path = argv[++i];
        } else if (!strcmp(argv[i], "--tools") && i + 1 < argc) {
            tools_path = argv[++i];
        } else if (!strcmp(argv[i], "--no-generation-prompt")) {
            gen_prompt = false;
        } else if (!strcmp(argv[i], "--var") && i + 1 < argc) {
            if (!add_var(&vars, argv[++i])) {
                fprintf(stderr, "ferrum template: --var expects KEY=VALUE, got '%s'\n", argv[i]);
                goto done;
            }
        } else {
            fprintf(stderr, "ferrum template: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            goto done;
        }
    }
    if (!path || !messages_path) {
        fprintf(stderr, "ferrum template: -m PATH and --messages FILE.json are required\n");
        usage(stderr);
        goto done;
    }
    rc = 1;
    size_t len;
    if (!(messages = read_all(messages_path, &len))) {
        fprintf(stderr, "ferrum template: cannot read %s\n", messages_path);
        goto done;
    }
    if (tools_path && !(tools = read_all(tools_path, &len))) {
        fprintf(stderr, "ferrum template: cannot read %s\n", tools_path);
        goto done;
    }
    size_t vl = strlen(vars);
    char *nv = realloc(vars, vl + 2);
    if (!nv) goto done;
    vars = nv;
    strcpy(vars + vl, "}");
    fr_error err = {0};
    if (fr_chat_template_load(path, &t, &err)) {
        fprintf(stderr, "ferrum template: %s\n", err.msg);
        goto done;
    }
    size_t out_len = 0;
    if (fr_chat_template_render(t, messages, tools, gen_prompt, vars, &out, &out_len, &err)) {
        fprintf(stderr, "ferrum template: %s: %s\n", messages_path, err.msg);
        goto done;
    }
    if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout)) {
        fprintf(stderr, "ferrum template: write error\n");
        goto done;
    }
    rc = 0;
done:
    fr_chat_template_free(t);
    free(messages);
    free(tools);
    free(out);
    free(vars);
    return rc;
}
