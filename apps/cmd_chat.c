/* ferrum chat: multi-turn chat. Each turn re-renders the whole conversation with the model's
 * template and evaluates only what differs from the tokens already in the KV cache, so a turn
 * costs its new tokens, not the history. Reads one user turn per line (a trailing backslash
 * continues it), from a terminal (line editing and history through libedit when built with it)
 * or a pipe; /help, /exit, /reset and end of input are understood. Ctrl-C stops a reply; at an
 * empty prompt it quits. */
#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef FR_HAVE_LIBEDIT
#include <histedit.h>
#endif

#include "cli_common.h"
#include "commands.h"

#define MAX_STOPS 64

/* Set by the SIGINT handler, read by the reply loop (per token) and after a read at the prompt.
 * Process-level state belongs to the app: the library only sees on_token's return value. The
 * handler is installed without SA_RESTART so a read at the prompt returns with EINTR. */
static volatile sig_atomic_t chat_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    chat_interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: ferrum chat -m PATH [options]\n");
    fr_cli_usage_model(f);
    fprintf(f, "  -sys, --system TEXT     system message; also --system-prompt\n"
               "  -n, --n-predict N       tokens per reply at most; -1 (default) = until EOS or "
               "the\n"
               "                          context is full, 0 = none; also --max-tokens\n"
               "  -r, --stop STR          end a reply when STR is generated (not printed); "
               "repeatable;\n"
               "                          also --reverse-prompt\n"
               "  --stats                 speed of each reply on stderr\n"
               "  --no-reuse              re-evaluate the whole conversation every turn instead "
               "of\n"
               "                          reusing the cached prefix (slower; for checking)\n");
    fr_cli_usage_sampling(f);
    fprintf(f, "One user turn per input line; a line ending in a backslash continues on the next "
               "one.\nCommands (not sent to the model): /help, /reset forgets the conversation, "
               "/exit\n(or end of input, Ctrl-D) quits. Ctrl-C stops a reply; at an empty prompt "
               "it quits.\nReplies go to stdout, everything else to stderr.\n");
}

static void chat_help(void) {
    fprintf(stderr,
            "commands (never sent to the model):\n"
            "  /help          this list\n"
            "  /reset         forget the conversation (the --system message stays)\n"
            "  /exit, /quit   quit; so do Ctrl-D and Ctrl-C at an empty prompt\n"
            "input: a line ending in \\ continues on the next line (the turn keeps the line "
            "break);\nCtrl-C during a reply stops it and returns to the prompt.\n");
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
    /* Ctrl-C: the reply ends here (kept in gen, so the cache bookkeeping stays exact) */
    return !chat_interrupted;
}

/* ---------------------------------------------------------------- reading turns */

typedef enum {
    IN_LINE,      /* a line, without its newline */
    IN_EOF,       /* end of input */
    IN_INTERRUPT, /* Ctrl-C at the prompt */
    IN_BAD_UTF8,  /* a line that is not UTF-8 (dropped) */
} in_status;

typedef struct {
    bool tty; /* prompts are shown */
    sbuf line;
    char *raw; /* getline's buffer */
    size_t raw_cap;
#ifdef FR_HAVE_LIBEDIT
    EditLine *el;
    History *hist;
    const char *prompt;
#endif
} reader;

#ifdef FR_HAVE_LIBEDIT
static char *el_prompt(EditLine *el) {
    reader *r = NULL;
    el_get(el, EL_CLIENTDATA, &r);
    return (char *)(r && r->prompt ? r->prompt : "> ");
}
#endif

static void reader_open(reader *r, const char *argv0) {
    memset(r, 0, sizeof *r);
    r->tty = isatty(STDIN_FILENO) != 0;
#ifdef FR_HAVE_LIBEDIT
    if (!r->tty) return;
    /* libedit decodes the line with the locale's codeset: model text is UTF-8 whatever the
     * user's locale says (only LC_CTYPE changes, so numbers still parse the C way) */
    if (!setlocale(LC_CTYPE, "C.UTF-8")) setlocale(LC_CTYPE, "");
    r->el = el_init(argv0, stdin, stdout, stderr);
    if (!r->el) return; /* plain reading below */
    el_set(r->el, EL_EDITOR, "emacs");
    el_set(r->el, EL_CLIENTDATA, r);
    el_set(r->el, EL_PROMPT, el_prompt);
    r->hist = history_init();
    if (r->hist) {
        HistEvent ev;
        history(r->hist, &ev, H_SETSIZE, 1000);
        history(r->hist, &ev, H_SETUNIQUE, 1);
        el_set(r->el, EL_HIST, history, r->hist);
    }
    el_source(r->el, NULL); /* the user's ~/.editrc, if any */
#else
    (void)argv0;
#endif
}

static void reader_close(reader *r) {
#ifdef FR_HAVE_LIBEDIT
    if (r->el) el_end(r->el);
    if (r->hist) history_end(r->hist);
#endif
    free(r->raw);
    free(r->line.s);
}

/* One physical line into r->line. *partial: at an interrupt, whether something had been typed. */
static in_status read_line(reader *r, const char *prompt, bool *partial) {
    *partial = false;
    r->line.len = 0;
    if (!sb_add(&r->line, "", 0)) return IN_EOF;
#ifdef FR_HAVE_LIBEDIT
    if (r->el) {
        r->prompt = prompt;
        int n = 0;
        errno = 0;
        const char *s = el_gets(r->el, &n);
        /* libedit drops bytes that do not decode and leaves errno at EILSEQ */
        const bool bad = s && errno == EILSEQ;
        if (!s) {
            if (!chat_interrupted) return IN_EOF;
            const LineInfo *li = el_line(r->el);
            *partial = li && li->lastchar > li->buffer;
            return IN_INTERRUPT;
        }
        if (!sb_add(&r->line, s, (size_t)n)) return IN_EOF;
        if (bad) return IN_BAD_UTF8;
    } else
#endif
    {
        if (r->tty) {
            fputs(prompt, stdout);
            fflush(stdout);
        }
        ssize_t got = getline(&r->raw, &r->raw_cap, stdin);
        if (got < 0) {
            clearerr(stdin);
            return chat_interrupted ? IN_INTERRUPT : IN_EOF;
        }
        if (!sb_add(&r->line, r->raw, (size_t)got)) return IN_EOF;
    }
    while (r->line.len > 0 &&
           (r->line.s[r->line.len - 1] == '\n' || r->line.s[r->line.len - 1] == '\r'))
        r->line.s[--r->line.len] = 0;
    if (!fr_cli_utf8_valid(r->line.s, r->line.len) || memchr(r->line.s, 0, r->line.len))
        return IN_BAD_UTF8;
#ifdef FR_HAVE_LIBEDIT
    if (r->hist && r->line.len) {
        HistEvent ev;
        history(r->hist, &ev, H_ENTER, r->line.s);
    }
#endif
    return IN_LINE;
}

/* One user turn into *turn: lines ending in a backslash continue it (the backslash becomes a
 * line break). IN_LINE with the text; Ctrl-C drops the whole turn; a continuation line that is
 * not UTF-8 is reported and asked for again. */
static in_status read_turn(reader *r, sbuf *turn, bool *partial) {
    turn->len = 0;
    if (!sb_add(turn, "", 0)) return IN_EOF;
    for (;;) {
        in_status st = read_line(r, turn->len ? "... " : "> ", partial);
        if (st == IN_EOF && turn->len) return IN_LINE; /* input ended inside a continued turn */
        if (st == IN_INTERRUPT && turn->len) *partial = true;
        if (st == IN_BAD_UTF8 && turn->len) {
            fprintf(stderr, "ferrum chat: that line is not valid UTF-8; it was skipped\n");
            continue;
        }
        if (st != IN_LINE) return st;
        const bool more = r->line.len > 0 && r->line.s[r->line.len - 1] == '\\';
        if (more) r->line.s[--r->line.len] = 0;
        if (!sb_add(turn, r->line.s, r->line.len)) return IN_EOF;
        if (!more) return IN_LINE;
        if (!sb_add(turn, "\n", 1)) return IN_EOF;
    }
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
    const char *stops[MAX_STOPS];
    int n_stops = 0, max_tokens = -1;
    bool stats = false, reuse_cache = true;
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
        } else if (!strcmp(a, "--stats")) {
            stats = true;
        } else if (!strcmp(a, "--no-reuse")) {
            reuse_cache = false;
        } else if ((!strcmp(a, "--system") || !strcmp(a, "-sys") ||
                    !strcmp(a, "--system-prompt")) &&
                   has_val) {
            system = argv[++i];
        } else if ((!strcmp(a, "--stop") || !strcmp(a, "-r") || !strcmp(a, "--reverse-prompt")) &&
                   has_val) {
            if (n_stops == MAX_STOPS) {
                fprintf(stderr, "ferrum chat: at most %d --stop strings\n", MAX_STOPS);
                return 2;
            }
            stops[n_stops++] = argv[++i];
        } else if ((!strcmp(a, "-n") || !strcmp(a, "--max-tokens") || !strcmp(a, "--n-predict")) &&
                   has_val) {
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
    sbuf msgs = {0}, json = {0}, turn = {0};
    int32_t *cached = NULL; /* the tokens in the KV cache, in order */
    int n_cached = 0;
    turn_out out = {0};
    reader in;
    bool reader_opened = false, handler_set = false;
    struct sigaction old_int;

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

    /* Ctrl-C during loading still kills the process; from here on it stops a reply. The
     * kernel delivers a terminal's SIGINT to the main thread, which is the one reading. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the read at the prompt must return */
    handler_set = sigaction(SIGINT, &sa, &old_int) == 0;
    reader_open(&in, "ferrum");
    reader_opened = true;
    if (in.tty)
        fprintf(stderr,
                "ferrum chat: %s loaded in %.2f s. /help lists the commands; Ctrl-C stops a "
                "reply, /exit or Ctrl-D quits.\n",
                c.model_path, load_s);
    for (;;) {
        chat_interrupted = 0;
        bool partial = false;
        in_status ist = read_turn(&in, &turn, &partial);
        if (ist == IN_EOF) break;
        if (ist == IN_INTERRUPT) {
            fputs("\n", stdout);
            fflush(stdout);
            if (!partial) break; /* Ctrl-C at an empty prompt quits */
            continue;            /* a half-typed turn is dropped */
        }
        if (ist == IN_BAD_UTF8) {
            fprintf(stderr, "ferrum chat: that line is not valid UTF-8; it was skipped\n");
            continue;
        }
        if (turn.len == 0) continue;
        if (!strcmp(turn.s, "/exit") || !strcmp(turn.s, "/quit")) break;
        if (!strcmp(turn.s, "/help")) {
            chat_help();
            continue;
        }
        if (!strcmp(turn.s, "/reset")) {
            msgs.len = base_len;
            if (msgs.s) msgs.s[base_len] = 0;
            n_cached = 0;
            fr_session_reset(s);
            fr_sampler_reset(smp);
            if (in.tty) fprintf(stderr, "(conversation forgotten)\n");
            continue;
        }
        const size_t mark = msgs.len;
        if (!add_message(&msgs, "user", turn.s)) goto oom;
        if (max_tokens == 0) continue; /* -n 0: nothing is generated */
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
        gp.stops = stops;
        gp.n_stops = n_stops;
        gp.on_text = on_text;
        gp.on_token = on_token;
        gp.user = &out;
        fr_generate_stats gs;
        fr_status st = fr_generate(s, smp, tok, ids, n_ids, &gp, &gs, &err);
        /* a write cut short by Ctrl-C leaves stdout's error flag set */
        if (chat_interrupted) clearerr(stdout);
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
        /* an interrupted reply stays in the conversation as far as it got, as in llama.cpp */
        if (!add_message(&msgs, "assistant", out.reply.s ? out.reply.s : "")) goto oom;
        if (gs.reason == FR_STOP_CALLBACK && chat_interrupted)
            fprintf(stderr, "(reply interrupted)\n");
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
    if (reader_opened) reader_close(&in);
    if (handler_set) sigaction(SIGINT, &old_int, NULL);
    free(cached);
    free(out.reply.s);
    free(out.gen);
    free(msgs.s);
    free(json.s);
    free(turn.s);
    fr_sampler_free(smp);
    fr_session_free(s);
    fr_chat_template_free(tmpl);
    fr_tokenizer_free(tok);
    fr_model_free(model);
    return rc;
}
