/* Flag parsing and model loading shared by `ferrum run`, `chat` and `bench`, so the same flag
 * means the same thing everywhere. Number parsers print "ferrum CMD: FLAG: bad number 'X'" and
 * return -1; callers turn that into exit code 2 (usage error). */
#ifndef FR_APPS_CLI_COMMON_H
#define FR_APPS_CLI_COMMON_H

#include <stdbool.h>
#include <stdio.h>

#include "ferrum.h"

typedef struct fr_cli {
    const char *cmd; /* "run", for messages */
    const char *model_path;
    fr_model_params mp;
    int n_ctx;               /* 0 = session default */
    fr_compute_type compute; /* --compute: session activation / KV cache precision */
    /* sampling: starts at the sampler defaults; the set_* flags say which the user gave, since
     * those win over the model's generation_config.json */
    fr_sampler_params sp;
    bool set_temp, set_top_k, set_top_p, set_min_p, set_repeat, set_presence, set_frequency,
        set_last_n, set_seed;
    bool verbose; /* -v/--verbose: the seed in force and other details on stderr */
} fr_cli;

/* Also draws the random seed used unless --seed is given (llama.cpp's default). */
void fr_cli_init(fr_cli *c, const char *cmd);

/* Tries argv[*i] as one of the shared flags (-m/--model, --backend, -t/--threads,
 * -c/--ctx/--ctx-size, --compute, --kv-type, --quant-act, -v/--verbose; with
 * sampling also --temp, --top-k, --top-p, --min-p, --repeat-penalty, --presence-penalty,
 * --frequency-penalty, --repeat-last-n, -s/--seed). Returns 1 when consumed (advancing *i past its
 * value), 0 when not one of them, -1 on a usage error (message printed). */
int fr_cli_parse_flag(fr_cli *c, int argc, char **argv, int *i, bool sampling);

/* Rewrites argv so that every `--flag=value` becomes `--flag value` (llama.cpp accepts both, for
 * every option taking a value). A word in the value position of an option known to take a value
 * is left alone, so `-p --x=y` keeps its prompt; nothing after `--` is split. out gets a malloc'd
 * array of pointers into argv (whose strings are cut at the '='); -1 when out of memory. */
int fr_cli_split_args(int argc, char **argv, char ***out, int *out_argc);

/* Usage lines for the shared flags, for each command's --help. */
void fr_cli_usage_model(FILE *f);
void fr_cli_usage_sampling(FILE *f);

/* "q8" or "f32" (--quant-act) -> *out; -1 with a message otherwise. */
int fr_cli_quant_act(const char *cmd, const char *s, fr_quant_act *out);

/* Strict number parsers (whole string, range-checked); -1 with a message on failure. */
int fr_cli_int(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out);
int fr_cli_float(const char *cmd, const char *flag, const char *s, double lo, double hi,
                 float *out);
int fr_cli_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);
/* "1,2,3" -> malloc'd ids; -1 (with a message) on a malformed list. */
int fr_cli_ids(const char *cmd, const char *flag, const char *s, int32_t **ids, int *n);
/* "128,512" -> malloc'd positive ints. */
int fr_cli_int_list(const char *cmd, const char *flag, const char *s, long lo, long hi, int **vals,
                    int *n);

/* Loads the model with a progress bar on a TTY for files over ~100 MB; *seconds = wall time.
 * Prints the error and returns non-zero on failure. */
int fr_cli_load_model(fr_cli *c, fr_model **out, double *seconds);

/* The sampler parameters in force: sampler defaults, then the model's generation config, then
 * the user's flags; the seed is --seed or the random one drawn at init (printed with
 * --verbose). */
fr_sampler_params fr_cli_sampler_params(const fr_cli *c, const fr_model *m);

/* Where the tokenizer and chat template of a model path live: the folder itself, the GGUF file,
 * or the folder of a .safetensors file. Writes into buf. */
const char *fr_cli_tokenizer_path(const char *model_path, char *buf, size_t n);

/* Loads the tokenizer (and, when tmpl is not NULL, the chat template) of the model; prints the
 * error and returns non-zero on failure. */
int fr_cli_load_tokenizer(const fr_cli *c, fr_tokenizer **tok);
int fr_cli_load_template(const fr_cli *c, fr_chat_template **tmpl);

/* s as a JSON string literal with quotes (malloc'd). */
char *fr_cli_json_string(const char *s);

/* Whether s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool fr_cli_utf8_valid(const char *s, size_t n);

/* Reads a whole file ("-" = standard input) into a malloc'd NUL-terminated string. */
char *fr_cli_read_file(const char *path, size_t *len);

/* Renders messages_json with the template and add_generation_prompt, then encodes the text
 * (special tokens written by the template are recognised; no extra BOS). 0 on success. */
int fr_cli_render_chat(const fr_cli *c, const fr_tokenizer *tok, const fr_chat_template *tmpl,
                       const char *messages_json, int32_t **ids, int *n);

double fr_cli_now(void);

#endif
