/* Shared flags, strict number parsing and model loading for the generation commands. */
#include "cli_common.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double fr_cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A seed that differs run to run; the kernel's generator, else the clock and pid mixed. */
static uint64_t random_seed(void) {
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) == (ssize_t)sizeof s) return s;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    s ^= s >> 33;
    s *= 0xff51afd7ed558ccdull;
    return s ^ (s >> 33);
}

void fr_cli_init(fr_cli *c, const char *cmd) {
    memset(c, 0, sizeof *c);
    c->cmd = cmd;
    c->mp = fr_model_default_params();
    c->mp.kv_type = FR_KV_AUTO; /* --kv-type: f16 where the CPU converts it in hardware */
    c->sp = fr_sampler_default_params();
    c->sp.seed = random_seed();
}

/* ---------------------------------------------------------------- numbers */

int fr_cli_int(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "ferrum %s: %s: bad number '%s' (expected an integer in [%ld, %ld])\n", cmd,
                flag, s, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int fr_cli_float(const char *cmd, const char *flag, const char *s, double lo, double hi,
                 float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "ferrum %s: %s: bad number '%s' (expected a number in [%g, %g])\n", cmd,
                flag, s, lo, hi);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int fr_cli_u64(const char *cmd, const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (*s == '-' || *s == '+' || *s == ' ') goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end) goto bad;
    *out = (uint64_t)v;
    return 0;
bad:
    fprintf(stderr, "ferrum %s: %s: bad number '%s' (expected a non-negative integer)\n", cmd, flag,
            s);
    return -1;
}

/* Comma-separated integers in [lo, hi]; the core of --ids and -p 128,512. */
static int parse_list(const char *s, long lo, long hi, long **out, int *n) {
    int cap = 16, k = 0;
    long *v = malloc((size_t)cap * sizeof *v);
    if (!v) return -1;
    const char *p = s;
    if (!*p) goto bad;
    for (;;) {
        char *end;
        errno = 0;
        if (*p == ' ' || *p == '+' || *p == '\t') goto bad;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < lo || x > hi || (*end && *end != ',')) goto bad;
        if (k == cap) {
            long *g = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (!g) goto bad;
            v = g;
        }
        v[k++] = x;
        if (!*end) break;
        p = end + 1;
    }
    *out = v;
    *n = k;
    return 0;
bad:
    free(v);
    return -1;
}

int fr_cli_ids(const char *cmd, const char *flag, const char *s, int32_t **ids, int *n) {
    long *v;
    if (parse_list(s, 0, INT32_MAX, &v, n)) {
        fprintf(stderr, "ferrum %s: %s: expected comma-separated token ids, got '%s'\n", cmd, flag,
                s);
        return -1;
    }
    *ids = malloc(sizeof(int32_t) * (size_t)*n);
    if (!*ids) {
        free(v);
        fprintf(stderr, "ferrum %s: out of memory\n", cmd);
        return -1;
    }
    for (int i = 0; i < *n; i++)
        (*ids)[i] = (int32_t)v[i];
    free(v);
    return 0;
}

int fr_cli_int_list(const char *cmd, const char *flag, const char *s, long lo, long hi, int **vals,
                    int *n) {
    long *v;
    if (parse_list(s, lo, hi, &v, n)) {
        fprintf(stderr,
                "ferrum %s: %s: bad number list '%s' (integers in [%ld, %ld], comma-"
                "separated)\n",
                cmd, flag, s, lo, hi);
        return -1;
    }
    *vals = malloc(sizeof(int) * (size_t)*n);
    if (!*vals) {
        free(v);
        return -1;
    }
    for (int i = 0; i < *n; i++)
        (*vals)[i] = (int)v[i];
    free(v);
    return 0;
}

/* ---------------------------------------------------------------- flags */

void fr_cli_usage_model(FILE *f) {
    fprintf(f, "options (any taking a value also accepts --option=VALUE):\n"
               "  -m, --model PATH        model: Hugging Face folder, .safetensors or GGUF file\n"
               "  --backend NAME          cpu (default) or cuda\n"
               "  -t, --threads N         CPU threads (default: one per core)\n"
               "  -c, --ctx N             context size in tokens (default: min(4096, the "
               "model's));\n"
               "                          also --ctx-size\n"
               "  --compute TYPE          activation and KV cache precision: f32 (default), "
               "bf16 or f16\n"
               "                          (bf16/f16 need --backend cuda)\n"
               "  --kv-type TYPE          KV cache precision: f16, bf16 or f32 (default: f16 on a\n"
               "                          CPU with F16C, else f32; the --compute type if 16-bit)\n"
               "  --quant-act TYPE        matmuls with quantized weights: q8 (default, 8-bit\n"
               "                          activations, fastest; CUDA: decode GEMVs of q8_0,\n"
               "                          q4_k, q6_k) or f32 (float activations, matches a\n"
               "                          float reference)\n"
               "  -v, --verbose           print the seed in force and other details on stderr\n");
}

int fr_cli_quant_act(const char *cmd, const char *s, fr_quant_act *out) {
    if (!strcmp(s, "q8")) {
        *out = FR_QUANT_ACT_Q8;
    } else if (!strcmp(s, "f32")) {
        *out = FR_QUANT_ACT_F32;
    } else {
        fprintf(stderr, "ferrum %s: --quant-act: expected q8 or f32, got '%s'\n", cmd, s);
        return -1;
    }
    return 0;
}

void fr_cli_usage_sampling(FILE *f) {
    fr_sampler_params d = fr_sampler_default_params();
    fprintf(f,
            "sampling (defaults: the model's generation_config.json, else the values shown):\n"
            "  --temp T                temperature; 0 = greedy (%.2g)\n"
            "  --top-k K               keep the K most likely tokens; 0 = off (%d)\n"
            "  --top-p P               nucleus sampling; 1 = off (%.2g)\n"
            "  --min-p P               drop tokens below P x the top probability; 0 = off "
            "(%.2g)\n"
            "  --repeat-penalty R      repetition penalty; 1 = off (%.2g)\n"
            "  --presence-penalty F    subtracted once per seen token; 0 = off\n"
            "  --frequency-penalty F   subtracted per occurrence; 0 = off\n"
            "  --repeat-last-n N       tokens the penalties look at; -1 = all (%d)\n"
            "  -s, --seed S            random seed (same seed, same output; default: a new\n"
            "                          random one each run, printed with --verbose)\n",
            d.temperature, d.top_k, d.top_p, d.min_p, d.repeat_penalty, d.penalty_last_n);
}

int fr_cli_parse_flag(fr_cli *c, int argc, char **argv, int *i, bool sampling) {
    const char *a = argv[*i];
    const bool has_val = *i + 1 < argc;
#define IS(name) (!strcmp(a, name))
    if (IS("-v") || IS("--verbose")) {
        c->verbose = true;
        return 1;
    }
    const bool is_ctx = IS("--ctx") || IS("-c") || IS("--ctx-size");
    const bool is_seed = IS("--seed") || IS("-s");
    const bool known = IS("-m") || IS("--model") || IS("--backend") || IS("-t") ||
                       IS("--threads") || is_ctx || IS("--compute") || IS("--quant-act") ||
                       IS("--kv-type");
    const bool known_s =
        sampling && (IS("--temp") || IS("--top-k") || IS("--top-p") || IS("--min-p") ||
                     IS("--repeat-penalty") || IS("--presence-penalty") ||
                     IS("--frequency-penalty") || IS("--repeat-last-n") || is_seed);
    if (!known && !known_s) return 0;
    if (!has_val) {
        fprintf(stderr, "ferrum %s: %s needs a value\n", c->cmd, a);
        return -1;
    }
    const char *v = argv[++*i];
    int r = 0;
    if (IS("-m") || IS("--model")) {
        c->model_path = v;
    } else if (IS("--backend")) {
        if (strcmp(v, "cpu") && strcmp(v, "cuda")) {
            fprintf(stderr, "ferrum %s: --backend: expected cpu or cuda, got '%s'\n", c->cmd, v);
            return -1;
        }
        c->mp.backend = v;
    } else if (IS("-t") || IS("--threads")) {
        r = fr_cli_int(c->cmd, a, v, 0, 4096, &c->mp.n_threads);
    } else if (is_ctx) {
        r = fr_cli_int(c->cmd, a, v, 1, 1 << 24, &c->n_ctx);
    } else if (IS("--quant-act")) {
        r = fr_cli_quant_act(c->cmd, v, &c->mp.quant_act);
    } else if (IS("--compute")) {
        if (!fr_compute_type_parse(v, &c->compute)) {
            fprintf(stderr, "ferrum %s: --compute: expected f32, bf16 or f16, got '%s'\n", c->cmd,
                    v);
            return -1;
        }
    } else if (IS("--kv-type")) {
        if (!fr_kv_type_parse(v, &c->mp.kv_type) || c->mp.kv_type == FR_KV_DEFAULT) {
            fprintf(stderr, "ferrum %s: --kv-type: expected f16, bf16, f32 or auto, got '%s'\n",
                    c->cmd, v);
            return -1;
        }
    } else if (IS("--temp")) {
        r = fr_cli_float(c->cmd, a, v, 0, 1e6, &c->sp.temperature);
        c->set_temp = true;
    } else if (IS("--top-k")) {
        r = fr_cli_int(c->cmd, a, v, 0, INT_MAX, &c->sp.top_k);
        c->set_top_k = true;
    } else if (IS("--top-p")) {
        /* the sampler needs top_p > 0; 1 switches it off */
        r = fr_cli_float(c->cmd, a, v, 1e-9, 1, &c->sp.top_p);
        c->set_top_p = true;
    } else if (IS("--min-p")) {
        r = fr_cli_float(c->cmd, a, v, 0, 1, &c->sp.min_p);
        c->set_min_p = true;
    } else if (IS("--repeat-penalty")) {
        r = fr_cli_float(c->cmd, a, v, 1e-6, 1e6, &c->sp.repeat_penalty);
        c->set_repeat = true;
    } else if (IS("--presence-penalty")) {
        r = fr_cli_float(c->cmd, a, v, -1e6, 1e6, &c->sp.presence_penalty);
        c->set_presence = true;
    } else if (IS("--frequency-penalty")) {
        r = fr_cli_float(c->cmd, a, v, -1e6, 1e6, &c->sp.frequency_penalty);
        c->set_frequency = true;
    } else if (IS("--repeat-last-n")) {
        r = fr_cli_int(c->cmd, a, v, -1, 1 << 20, &c->sp.penalty_last_n);
        c->set_last_n = true;
    } else if (is_seed) {
        r = fr_cli_u64(c->cmd, a, v, &c->sp.seed);
        c->set_seed = true;
    }
#undef IS
    return r ? -1 : 1;
}

fr_sampler_params fr_cli_sampler_params(const fr_cli *c, const fr_model *m) {
    fr_sampler_params p = fr_sampler_default_params();
    fr_model_sampling_defaults(m, &p);
    if (c->set_temp) p.temperature = c->sp.temperature;
    if (c->set_top_k) p.top_k = c->sp.top_k;
    if (c->set_top_p) p.top_p = c->sp.top_p;
    if (c->set_min_p) p.min_p = c->sp.min_p;
    if (c->set_repeat) p.repeat_penalty = c->sp.repeat_penalty;
    if (c->set_presence) p.presence_penalty = c->sp.presence_penalty;
    if (c->set_frequency) p.frequency_penalty = c->sp.frequency_penalty;
    if (c->set_last_n) p.penalty_last_n = c->sp.penalty_last_n;
    p.seed = c->sp.seed; /* --seed, or the random one fr_cli_init drew */
    if (c->verbose)
        fprintf(stderr, "ferrum %s: seed %llu%s\n", c->cmd, (unsigned long long)p.seed,
                c->set_seed ? "" : " (random; --seed repeats this run)");
    return p;
}

/* ---------------------------------------------------------------- --flag=value */

/* Every option of every command that takes a value: their next word is a value, never split.
 * An option missing here still has its --opt=VALUE form split; only a value of its that itself
 * looks like --x=y would be cut. */
/* clang-format off */
static const char *const value_flags[] = {
    "-m", "--model", "--backend", "-t", "--threads", "--ctx", "-c", "--ctx-size", "--compute",
    "--quant-act", "--kv-type", "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty",
    "--presence-penalty", "--frequency-penalty", "--repeat-last-n", "--seed", "-s", "-p",
    "--prompt", "-f", "--file", "--ids", "--system", "-sys", "--system-prompt", "--stop", "-r",
    "--reverse-prompt", "-n", "--max-tokens", "--n-predict", "--n-prompt", "--n-gen",
    "-d", "--n-depth", "--repeats", "-b", "--batch", "-o", "--output", "--messages", "--tools", "--var",
};
/* clang-format on */

static bool takes_value(const char *a) {
    for (size_t k = 0; k < sizeof value_flags / sizeof value_flags[0]; k++)
        if (!strcmp(a, value_flags[k])) return true;
    return false;
}

int fr_cli_split_args(int argc, char **argv, char ***out, int *out_argc) {
    char **v = malloc(sizeof(char *) * (2 * (size_t)argc + 1));
    if (!v) return -1;
    int n = 0;
    bool options = true;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        char *eq = options && !strncmp(a, "--", 2) && a[2] ? strchr(a, '=') : NULL;
        if (options && !strcmp(a, "--")) options = false;
        if (eq && eq > a + 2) {
            *eq = 0;
            v[n++] = a;
            v[n++] = eq + 1;
            continue;
        }
        v[n++] = a;
        if (options && takes_value(a) && i + 1 < argc) v[n++] = argv[++i];
    }
    v[n] = NULL;
    *out = v;
    *out_argc = n;
    return 0;
}

/* ---------------------------------------------------------------- loading */

typedef struct {
    bool tty;
    int last_pct;
    double t0;
} progress_state;

static void draw_progress(void *user, size_t done, size_t total) {
    progress_state *ps = user;
    if (!ps->tty || total < (size_t)100 * 1000 * 1000) return;
    int pct = total ? (int)((double)done * 100.0 / (double)total) : 100;
    if (pct == ps->last_pct) return;
    ps->last_pct = pct;
    enum { WIDTH = 30 };
    char bar[WIDTH + 1];
    int fill = pct * WIDTH / 100;
    for (int k = 0; k < WIDTH; k++)
        bar[k] = k < fill ? '=' : (k == fill ? '>' : ' ');
    bar[WIDTH] = 0;
    fprintf(stderr, "\rloading [%s] %3d%%  %.0f / %.0f MB", bar, pct, (double)done / 1e6,
            (double)total / 1e6);
    if (done >= total) fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

int fr_cli_load_model(fr_cli *c, fr_model **out, double *seconds) {
    progress_state ps = {.tty = isatty(STDERR_FILENO) != 0, .last_pct = -1};
    fr_model_params mp = c->mp;
    mp.progress = draw_progress;
    mp.progress_user = &ps;
    fr_error err = {0};
    double t0 = fr_cli_now();
    fr_status st = fr_model_load(c->model_path, &mp, out, &err);
    if (seconds) *seconds = fr_cli_now() - t0;
    if (ps.tty && ps.last_pct >= 0 && ps.last_pct < 100) fprintf(stderr, "\r\033[K");
    if (st) {
        fprintf(stderr, "ferrum %s: %s\n", c->cmd, err.msg);
        return 1;
    }
    return 0;
}

const char *fr_cli_tokenizer_path(const char *model_path, char *buf, size_t n) {
    struct stat sb;
    size_t len = strlen(model_path);
    const char *suffix = ".safetensors";
    size_t sl = strlen(suffix);
    if (stat(model_path, &sb) == 0 && !S_ISDIR(sb.st_mode) && len >= sl &&
        !strcmp(model_path + len - sl, suffix)) {
        snprintf(buf, n, "%s", model_path);
        char *slash = strrchr(buf, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(buf, n, ".");
        return buf;
    }
    snprintf(buf, n, "%s", model_path);
    return buf;
}

int fr_cli_load_tokenizer(const fr_cli *c, fr_tokenizer **tok) {
    char path[4096];
    fr_error err = {0};
    if (fr_tokenizer_load(fr_cli_tokenizer_path(c->model_path, path, sizeof path), tok, &err)) {
        fprintf(stderr, "ferrum %s: tokenizer: %s\n", c->cmd, err.msg);
        return 1;
    }
    return 0;
}

int fr_cli_load_template(const fr_cli *c, fr_chat_template **tmpl) {
    char path[4096];
    fr_error err = {0};
    if (fr_chat_template_load(fr_cli_tokenizer_path(c->model_path, path, sizeof path), tmpl,
                              &err)) {
        fprintf(stderr, "ferrum %s: chat template: %s\n", c->cmd, err.msg);
        return 1;
    }
    return 0;
}

char *fr_cli_json_string(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(6 * n + 3);
    if (!out) return NULL;
    char *o = out;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            *o++ = '\\', *o++ = '"';
            break;
        case '\\':
            *o++ = '\\', *o++ = '\\';
            break;
        case '\n':
            *o++ = '\\', *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\', *o++ = 'r';
            break;
        case '\t':
            *o++ = '\\', *o++ = 't';
            break;
        default:
            if (*p < 0x20)
                o += sprintf(o, "\\u%04x", *p);
            else
                *o++ = (char)*p;
        }
    }
    *o++ = '"';
    *o = 0;
    return out;
}

bool fr_cli_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p++;
        if (c < 0x80) continue;
        int more;
        unsigned cp, min;
        if (c >= 0xC2 && c <= 0xDF)
            more = 1, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
            more = 2, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
            more = 3, cp = c & 0x07, min = 0x10000;
        else
            return false; /* a continuation byte first, an overlong lead (C0, C1) or F5..FF */
        if (end - p < more) return false;
        for (int k = 0; k < more; k++) {
            if ((p[k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[k] & 0x3F);
        }
        p += more;
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    }
    return true;
}

char *fr_cli_read_file(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *g = realloc(buf, cap *= 2);
            if (!g) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = g;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    bool failed = ferror(f);
    if (f != stdin) fclose(f);
    if (!buf || failed) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int fr_cli_render_chat(const fr_cli *c, const fr_tokenizer *tok, const fr_chat_template *tmpl,
                       const char *messages_json, int32_t **ids, int *n) {
    fr_error err = {0};
    char *text = NULL;
    size_t len = 0, n_ids = 0;
    if (fr_chat_template_render(tmpl, messages_json, NULL, true, NULL, &text, &len, &err)) {
        fprintf(stderr, "ferrum %s: chat template: %s\n", c->cmd, err.msg);
        return 1;
    }
    fr_status st = fr_tokenizer_encode(tok, text, len, false, ids, &n_ids, &err);
    free(text);
    if (st) {
        fprintf(stderr, "ferrum %s: %s\n", c->cmd, err.msg);
        return 1;
    }
    if (n_ids > INT32_MAX / 2) {
        free(*ids);
        fprintf(stderr, "ferrum %s: the prompt is too long\n", c->cmd);
        return 1;
    }
    *n = (int)n_ids;
    return 0;
}
