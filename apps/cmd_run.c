/* ferrum run: one prompt in, the generated text streamed out, timings on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"

#define MAX_STOPS 64

static void usage(FILE *f) {
    fprintf(f, "usage: ferrum run -m PATH (-p PROMPT | -f FILE | --ids LIST) [options]\n");
    fr_cli_usage_model(f);
    fprintf(f, "  -p, --prompt TEXT       the prompt\n"
               "  -f, --file FILE         read the prompt from FILE ('-' = standard input; no NUL\n"
               "                          bytes)\n"
               "  --ids LIST              the prompt as comma-separated token ids (no tokenizer "
               "needed\n"
               "                          together with --print-ids)\n"
               "  -n, --n-predict N       tokens to generate at most; -1 (default) = until EOS or "
               "the\n"
               "                          context is full, 0 = none (the prompt is still "
               "evaluated);\n"
               "                          also --max-tokens\n"
               "  --chat                  wrap the prompt in the model's chat template (as a user "
               "turn)\n"
               "  -sys, --system TEXT     system message for --chat; also --system-prompt\n"
               "  -r, --stop STR          stop when STR is generated (not printed); repeatable; "
               "also\n"
               "                          --reverse-prompt\n"
               "  --ignore-eos            keep generating past end-of-sequence tokens\n"
               "  --print-ids             print the generated token ids (comma-separated) instead "
               "of text\n"
               "  -q, --quiet             no timings on stderr\n");
    fr_cli_usage_sampling(f);
    fprintf(f, "The text goes to stdout as it is generated; load time, prompt and generation "
               "speed\n(tok/s) and GB/s (bytes read per generated token x tok/s) go to stderr.\n");
}

typedef struct {
    bool print_ids;
    int n_printed;
} run_out;

static bool on_text(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

static bool on_token(void *user, int32_t id) {
    run_out *o = user;
    if (o->print_ids) {
        printf("%s%d", o->n_printed++ ? "," : "", (int)id);
        fflush(stdout);
    }
    return true;
}

/* The prompt as ids: given directly, or the text encoded (wrapped by the template for --chat). */
static int build_prompt(const fr_cli *c, const char *text, bool chat, const char *system,
                        const fr_tokenizer *tok, const fr_chat_template *tmpl, int32_t **ids,
                        int *n) {
    if (chat) {
        char *sys = system ? fr_cli_json_string(system) : NULL;
        char *usr = fr_cli_json_string(text);
        size_t cap = (sys ? strlen(sys) : 0) + strlen(usr) + 128;
        char *msgs = malloc(cap);
        int rc = 1;
        if (usr && msgs && (!system || sys)) {
            if (sys)
                snprintf(
                    msgs, cap,
                    "[{\"role\":\"system\",\"content\":%s},{\"role\":\"user\",\"content\":%s}]",
                    sys, usr);
            else
                snprintf(msgs, cap, "[{\"role\":\"user\",\"content\":%s}]", usr);
            rc = fr_cli_render_chat(c, tok, tmpl, msgs, ids, n);
        }
        free(sys);
        free(usr);
        free(msgs);
        return rc;
    }
    fr_error err = {0};
    size_t n_ids;
    /* a plain prompt gets the tokenizer's special tokens (e.g. BOS), as transformers does */
    if (fr_tokenizer_encode(tok, text, strlen(text), true, ids, &n_ids, &err)) {
        fprintf(stderr, "ferrum run: %s\n", err.msg);
        return 1;
    }
    *n = (int)n_ids;
    return 0;
}

/* -n 0: the prompt is evaluated (its speed reported) and nothing is generated, as in llama.cpp. */
static fr_status eval_prompt_only(fr_session *s, const int32_t *ids, int n_ids,
                                  fr_generate_stats *gs, fr_error *err) {
    memset(gs, 0, sizeof *gs);
    double t0 = fr_cli_now();
    fr_status st = fr_session_eval_last(s, ids, n_ids, NULL, err);
    gs->prompt_s = fr_cli_now() - t0;
    gs->n_prompt = n_ids;
    gs->reason = FR_STOP_MAX_TOKENS;
    return st;
}

int fr_cmd_run(int argc, char **argv) {
    fr_cli c;
    fr_cli_init(&c, "run");
    const char *prompt = NULL, *file = NULL, *ids_arg = NULL, *system = NULL;
    const char *stops[MAX_STOPS];
    int n_stops = 0, max_tokens = -1;
    bool chat = false, ignore_eos = false, print_ids = false, quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = fr_cli_parse_flag(&c, argc, argv, &i, true);
        if (r < 0) {
            usage(stderr);
            return 2;
        }
        if (r > 0) continue;
        const bool has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--chat")) {
            chat = true;
        } else if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = true;
        } else if (!strcmp(a, "--print-ids")) {
            print_ids = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
        } else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && has_val) {
            prompt = argv[++i];
        } else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && has_val) {
            file = argv[++i];
        } else if (!strcmp(a, "--ids") && has_val) {
            ids_arg = argv[++i];
        } else if ((!strcmp(a, "--system") || !strcmp(a, "-sys") ||
                    !strcmp(a, "--system-prompt")) &&
                   has_val) {
            system = argv[++i];
        } else if ((!strcmp(a, "--stop") || !strcmp(a, "-r") || !strcmp(a, "--reverse-prompt")) &&
                   has_val) {
            if (n_stops == MAX_STOPS) {
                fprintf(stderr, "ferrum run: at most %d --stop strings\n", MAX_STOPS);
                return 2;
            }
            stops[n_stops++] = argv[++i];
        } else if ((!strcmp(a, "-n") || !strcmp(a, "--max-tokens") || !strcmp(a, "--n-predict")) &&
                   has_val) {
            if (fr_cli_int("run", a, argv[++i], -1, 1 << 24, &max_tokens)) {
                usage(stderr);
                return 2;
            }
        } else {
            fprintf(stderr, "ferrum run: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!c.model_path) {
        fprintf(stderr, "ferrum run: -m PATH is required\n");
        usage(stderr);
        return 2;
    }
    if ((prompt != NULL) + (file != NULL) + (ids_arg != NULL) != 1) {
        fprintf(stderr, "ferrum run: give exactly one of -p, -f or --ids\n");
        usage(stderr);
        return 2;
    }
    if (ids_arg && chat) {
        fprintf(stderr, "ferrum run: --chat needs a text prompt (-p or -f), not --ids\n");
        return 2;
    }
    if (system && !chat) {
        fprintf(stderr, "ferrum run: --system only applies with --chat\n");
        return 2;
    }
    if (print_ids && n_stops) {
        fprintf(stderr, "ferrum run: --stop works on text, not with --print-ids\n");
        return 2;
    }
    int32_t *ids = NULL;
    int n_ids = 0;
    if (ids_arg && fr_cli_ids("run", "--ids", ids_arg, &ids, &n_ids)) return 2;

    int rc = 1;
    char *file_text = NULL;
    fr_model *model = NULL;
    fr_tokenizer *tok = NULL;
    fr_chat_template *tmpl = NULL;
    fr_session *s = NULL;
    fr_sampler *smp = NULL;
    fr_error err = {0};
    if (file) {
        size_t file_len = 0;
        file_text = fr_cli_read_file(file, &file_len);
        if (!file_text) {
            fprintf(stderr, "ferrum run: %s: cannot read the prompt file\n", file);
            goto done;
        }
        /* the prompt is a C string from here on: a NUL would silently cut it */
        const char *nul = memchr(file_text, 0, file_len);
        if (nul) {
            fprintf(stderr,
                    "ferrum run: %s: the prompt file holds a NUL byte (offset %zu); a prompt is "
                    "text\n",
                    file, (size_t)(nul - file_text));
            goto done;
        }
        prompt = file_text;
    }
    double load_s;
    if (fr_cli_load_model(&c, &model, &load_s)) goto done;
    /* text in or text out needs the tokenizer; ids in and ids out do not */
    const bool need_tok = !ids_arg || !print_ids;
    if (need_tok && fr_cli_load_tokenizer(&c, &tok)) goto done;
    if (chat && fr_cli_load_template(&c, &tmpl)) goto done;
    if (!ids_arg && build_prompt(&c, prompt, chat, system, tok, tmpl, &ids, &n_ids)) goto done;
    if (n_ids == 0) {
        fprintf(stderr, "ferrum run: the prompt encodes to no tokens\n");
        goto done;
    }

    fr_session_params sp = fr_session_default_params();
    sp.n_ctx = c.n_ctx;
    sp.compute = c.compute;
    if (fr_session_create(model, &sp, &s, &err)) goto fail;
    fr_sampler_params smp_p = fr_cli_sampler_params(&c, model);
    if (fr_sampler_create(&smp_p, fr_model_vocab_size(model), &smp, &err)) goto fail;

    run_out out = {.print_ids = print_ids};
    fr_generate_params gp = fr_generate_default_params();
    gp.max_tokens = max_tokens;
    gp.ignore_eos = ignore_eos;
    gp.stops = stops;
    gp.n_stops = n_stops;
    gp.on_text = print_ids ? NULL : on_text;
    gp.on_token = on_token;
    gp.user = &out;
    fr_generate_stats gs;
    fr_status st;
    if (max_tokens == 0) {
        st = eval_prompt_only(s, ids, n_ids, &gs, &err);
    } else {
        st = fr_generate(s, smp, print_ids ? NULL : tok, ids, n_ids, &gp, &gs, &err);
        if (print_ids || isatty(STDOUT_FILENO)) printf("\n");
    }
    fflush(stdout);
    if (st) goto fail;
    if (!quiet) {
        fr_model_info info;
        fr_model_get_info(model, &info);
        fprintf(stderr, "\nload:       %.2f s (%s, %s)\n", load_s, info.weight_dtypes,
                info.backend);
        fprintf(stderr, "prompt:     %d tokens in %.3f s, %.1f tok/s%s\n", gs.n_prompt, gs.prompt_s,
                gs.prompt_s > 0 ? gs.n_prompt / gs.prompt_s : 0.0, "");
        const double tps = gs.decode_s > 0 ? gs.n_decode / gs.decode_s : 0.0;
        const double gbs = gs.decode_s > 0 ? (double)gs.decode_bytes / gs.decode_s / 1e9 : 0.0;
        fprintf(stderr,
                "generation: %d tokens (%d decode steps) in %.3f s, %.1f tok/s, %.2f GB/s "
                "(stop: %s)\n",
                gs.n_gen, gs.n_decode, gs.decode_s, tps, gbs, fr_stop_reason_name(gs.reason));
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "ferrum run: %s\n", err.msg);
done:
    fr_sampler_free(smp);
    fr_session_free(s);
    fr_chat_template_free(tmpl);
    fr_tokenizer_free(tok);
    fr_model_free(model);
    free(ids);
    free(file_text);
    return rc;
}
