/* ferrum chat: multi-turn chat. Each turn re-renders the whole conversation with the model's
 * template and evaluates only what differs from the tokens already in the KV cache, so a turn
 * costs its new tokens, not the history. Reads one user turn per line, from a terminal or a
 * pipe; /exit, /reset and end of input are understood. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ferrum chat -m PATH [options]\n");
    fr_cli_usage_model(f);
    fprintf(f, "  --system TEXT           system message\n"
               "  -n, --max-tokens N      tokens per reply at most (default: until EOS)\n"
               "  --stats                 speed of each reply on stderr\n"
               "  --no-reuse              re-evaluate the whole conversation every turn instead "
               "of\n"
               "                          reusing the cached prefix (slower; for checking)\n");
    fr_cli_usage_sampling(f);
    fprintf(f, "One user turn per input line. Commands: /exit (or end of input, Ctrl-D) quits,\n"
               "/reset forgets the conversation. Replies go to stdout.\n");
}

/* A growable byte string. */
typedef struct {
    char *s;
    size_t len, cap;
} sbuf;

static bool sb_add(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->len + n + 1)
            c *= 2;
        char *g = realloc(b->s, c);
        if (!g) return false;
        b->s = g;
        b->cap = c;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
    return true;
}

static bool sb_str(sbuf *b, const char *s) {
    return sb_add(b, s, strlen(s));
}

/* The conversation as a JSON array body (without the brackets), one message appended at a
 * time; `mark` remembers where the last user turn began so a failed turn can be dropped. */
static bool add_message(sbuf *msgs, const char *role, const char *content) {
    char *js = fr_cli_json_string(content);
    bool ok = js && sb_str(msgs, msgs->len ? ",{\"role\":\"" : "{\"role\":\"") &&
              sb_str(msgs, role) && sb_str(msgs, "\",\"content\":") && sb_str(msgs, js) &&
              sb_str(msgs, "}");
    free(js);
    return ok;
}

typedef struct {
    sbuf reply;
    int32_t *gen;
    int n_gen, cap_gen;
    bool oom;
} turn_out;

static bool on_text(void *user, const char *text, size_t len) {
    turn_out *t = user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    if (!sb_add(&t->reply, text, len)) t->oom = true;
    return !t->oom;
}

static bool on_token(void *user, int32_t id) {
    turn_out *t = user;
    if (t->n_gen == t->cap_gen) {
        int c = t->cap_gen ? 2 * t->cap_gen : 256;
        int32_t *g = realloc(t->gen, sizeof(int32_t) * (size_t)c);
        if (!g) {
            t->oom = true;
            return false;
        }
        t->gen = g;
        t->cap_gen = c;
    }
    t->gen[t->n_gen++] = id;
    return true;
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int i = 0;
    while (i < na && i < nb && a[i] == b[i])
        i++;
    return i;
}

int fr_cmd_chat(int argc, char **argv) {
    fr_cli c;
    fr_cli_init(&c, "chat");
    const char *system = NULL;
    int max_tokens = 0;
    bool stats = false, reuse_cache = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = fr_cli_parse_flag(&c, argc, argv, &i, true);
        if (r < 0) {
            usage(stderr);
            return 2;
        }
        if (r > 0) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--stats")) {
            stats = true;
        } else if (!strcmp(a, "--no-reuse")) {
            reuse_cache = false;
        } else if (!strcmp(a, "--system") && i + 1 < argc) {
            system = argv[++i];
        } else if ((!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) && i + 1 < argc) {
            if (fr_cli_int("chat", a, argv[++i], -1, 1 << 24, &max_tokens)) {
                usage(stderr);
                return 2;
            }
        } else {
            fprintf(stderr, "ferrum chat: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!c.model_path) {
        fprintf(stderr, "ferrum chat: -m PATH is required\n");
        usage(stderr);
        return 2;
    }

    int rc = 1;
    fr_model *model = NULL;
    fr_tokenizer *tok = NULL;
    fr_chat_template *tmpl = NULL;
    fr_session *s = NULL;
    fr_sampler *smp = NULL;
    fr_error err = {0};
    sbuf msgs = {0}, json = {0};
    int32_t *cached = NULL; /* the tokens in the KV cache, in order */
    int n_cached = 0;
    char *line = NULL;
    size_t line_cap = 0;
    turn_out out = {0};

    double load_s;
    if (fr_cli_load_model(&c, &model, &load_s) || fr_cli_load_tokenizer(&c, &tok) ||
        fr_cli_load_template(&c, &tmpl))
        goto done;
    fr_session_params sp = fr_session_default_params();
    sp.n_ctx = c.n_ctx;
    sp.compute = c.compute;
    if (fr_session_create(model, &sp, &s, &err)) goto fail;
    fr_sampler_params smp_p = fr_cli_sampler_params(&c, model);
    if (fr_sampler_create(&smp_p, fr_model_vocab_size(model), &smp, &err)) goto fail;
    if (system && !add_message(&msgs, "system", system)) goto oom;
    const size_t base_len = msgs.len; /* what /reset goes back to */

    const bool interactive = isatty(STDIN_FILENO) != 0;
    if (interactive)
        fprintf(stderr,
                "ferrum chat: %s loaded in %.2f s. /exit or Ctrl-D quits, /reset "
                "forgets.\n",
                c.model_path, load_s);
    for (;;) {
        if (interactive) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0) break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        if (got == 0) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            msgs.len = base_len;
            if (msgs.s) msgs.s[base_len] = 0;
            n_cached = 0;
            fr_session_reset(s);
            fr_sampler_reset(smp);
            if (interactive) fprintf(stderr, "(conversation forgotten)\n");
            continue;
        }
        const size_t mark = msgs.len;
        if (!add_message(&msgs, "user", line)) goto oom;
        json.len = 0;
        if (!sb_str(&json, "[") || !sb_add(&json, msgs.s, msgs.len) || !sb_str(&json, "]"))
            goto oom;
        int32_t *ids = NULL;
        int n_ids = 0;
        if (fr_cli_render_chat(&c, tok, tmpl, json.s, &ids, &n_ids)) goto done;
        if (n_ids + 1 > fr_session_n_ctx(s)) {
            fprintf(stderr,
                    "ferrum chat: the conversation (%d tokens) no longer fits the context "
                    "of %d; /reset to start over\n",
                    n_ids, fr_session_n_ctx(s));
            free(ids);
            msgs.len = mark;
            msgs.s[mark] = 0;
            continue;
        }
        const int reuse = reuse_cache ? common_prefix(cached, n_cached, ids, n_ids) : 0;
        out.reply.len = 0;
        out.n_gen = 0;
        fr_generate_params gp = fr_generate_default_params();
        gp.max_tokens = max_tokens;
        gp.n_cached = reuse;
        gp.on_text = on_text;
        gp.on_token = on_token;
        gp.user = &out;
        fr_generate_stats gs;
        fr_status st = fr_generate(s, smp, tok, ids, n_ids, &gp, &gs, &err);
        fputs("\n", stdout);
        fflush(stdout);
        if (st || out.oom) {
            free(ids);
            if (out.oom) goto oom;
            goto fail;
        }
        /* the cache now holds the prompt and every generated token but the last */
        int32_t *grown = realloc(cached, sizeof(int32_t) * (size_t)(n_ids + out.n_gen));
        if (!grown) {
            free(ids);
            goto oom;
        }
        cached = grown;
        memcpy(cached, ids, sizeof(int32_t) * (size_t)n_ids);
        memcpy(cached + n_ids, out.gen, sizeof(int32_t) * (size_t)(out.n_gen ? out.n_gen - 1 : 0));
        n_cached = n_ids + (out.n_gen ? out.n_gen - 1 : 0);
        free(ids);
        if (!add_message(&msgs, "assistant", out.reply.s ? out.reply.s : "")) goto oom;
        if (stats)
            fprintf(stderr,
                    "[prompt %d new + %d cached tokens, %.1f tok/s; reply %d tokens, "
                    "%.1f tok/s; stop: %s]\n",
                    gs.n_prompt, gs.n_reused, gs.prompt_s > 0 ? gs.n_prompt / gs.prompt_s : 0.0,
                    gs.n_gen, gs.decode_s > 0 ? gs.n_decode / gs.decode_s : 0.0,
                    fr_stop_reason_name(gs.reason));
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "ferrum chat: out of memory\n");
    goto done;
fail:
    fprintf(stderr, "ferrum chat: %s\n", err.msg);
done:
    free(line);
    free(cached);
    free(out.reply.s);
    free(out.gen);
    free(msgs.s);
    free(json.s);
    fr_sampler_free(smp);
    fr_session_free(s);
    fr_chat_template_free(tmpl);
    fr_tokenizer_free(tok);
    fr_model_free(model);
    return rc;
}
