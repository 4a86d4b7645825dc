/* ferrum — public API. CLI and server include only this header.
 *
 * Conventions: every fallible call returns an fr_status and, when `err` is non-NULL, fills it with
 * a message that names the file, tensor, field or offset at fault. Nothing in the library exits or
 * aborts on bad input. Objects are independent: a process may hold several models and sessions. */
#ifndef FERRUM_H
#define FERRUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status and errors */

typedef enum fr_status {
    FR_OK = 0,
    FR_ERR_INVALID = 1,     /* bad argument from the caller */
    FR_ERR_IO = 2,          /* open/read/write/mmap failed */
    FR_ERR_FORMAT = 3,      /* a file's contents are malformed or inconsistent */
    FR_ERR_NOMEM = 4,       /* allocation failed */
    FR_ERR_UNSUPPORTED = 5, /* valid request this build or backend cannot serve */
    FR_ERR_RANGE = 6,       /* exceeds a capacity (context length, cache size, ...) */
    FR_ERR_BACKEND = 7,     /* device or driver failure */
    FR_ERR_NOT_FOUND = 8,   /* a named file, tensor or key is absent */
} fr_status;

typedef struct fr_error {
    fr_status code;
    char msg[1024];
} fr_error;

const char *fr_status_name(fr_status code);

/* ---------------------------------------------------------------- logging */

typedef enum fr_log_level {
    FR_LOG_ERROR = 0,
    FR_LOG_WARN = 1,
    FR_LOG_INFO = 2,
    FR_LOG_DEBUG = 3,
} fr_log_level;

/* Process-wide verbosity (initially from the FR_LOG environment variable: error|warn|info|debug).
 */
void fr_log_set_level(fr_log_level level);
fr_log_level fr_log_get_level(void);

/* ---------------------------------------------------------------- backends */

/* Names accepted wherever a backend is chosen: "cpu", "cuda". */
bool fr_backend_available(const char *name);

/* ---------------------------------------------------------------- model and session
 * (section owned by src/model + src/engine) */

typedef struct fr_model fr_model;
typedef struct fr_session fr_session;

/* How the CPU backend multiplies quantized weights (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
 * Q6_K) with activations. Q8 (the default, as llama.cpp): each activation block is rounded to 8
 * bits and dotted as integers, fastest, but the logits move by ~1-4% relative and a close greedy
 * choice can flip. F32: each weight block is dequantized in registers and multiplied with the f32
 * activations, matching a float reference of the dequantized model to ~1e-6 relative; slower
 * (decode of 4-bit formats ~0.5x on AVX2, 8-bit ones about equal). Other backends ignore it. */
typedef enum fr_quant_act {
    FR_QUANT_ACT_Q8 = 0,
    FR_QUANT_ACT_F32 = 1,
} fr_quant_act;

/* Element type of a session's KV cache. A 16-bit cache halves its memory (the default model at
 * 4096 tokens: 189 MB f32) and the bytes attention reads per token; attention widens each row to
 * f32 as it loads it and accumulates in f32, so the only error is the rounding of each stored K and
 * V element (relative 2^-11 for f16, 2^-8 for bf16). FR_KV_AUTO is what the ferrum CLI uses:
 * f16 where the backend converts it in hardware (CPU: F16C, with the AVX2 or AVX-512 kernels),
 * else f32; with 16-bit compute, the compute type. With 16-bit compute the cache must be of the
 * compute type (session creation refuses anything else with FR_ERR_UNSUPPORTED). */
typedef enum fr_kv_type {
    FR_KV_DEFAULT = 0, /* session: the model's kv_type; model: the compute type (f32: exact) */
    FR_KV_F32 = 1,
    FR_KV_BF16 = 2,
    FR_KV_F16 = 3,
    FR_KV_AUTO = 4, /* the backend's choice, see above */
} fr_kv_type;

/* "default", "f32", "bf16", "f16", "auto"; "?" otherwise */
const char *fr_kv_type_name(fr_kv_type t);
/* One of the names above (case-insensitive) -> *out; false (and *out untouched) otherwise. */
bool fr_kv_type_parse(const char *name, fr_kv_type *out);

typedef struct fr_model_params {
    const char *backend; /* "cpu" (NULL = cpu) or "cuda" */
    int n_threads;       /* CPU threads; 0 = one per core */
    int device;          /* GPU ordinal */
    /* CPU quantized matmuls: FR_QUANT_ACT_Q8 (default) or FR_QUANT_ACT_F32 */
    fr_quant_act quant_act;
    /* KV cache type of this model's sessions, unless a session asks for its own
     * (fr_session_params.kv_type); FR_KV_DEFAULT here = the session's compute type. */
    fr_kv_type kv_type;
    /* Optional: when set, the loader reads every weight page in before returning (so the cost
     * shows up as load time, not in the first forward) and reports progress: done of total bytes,
     * from (0, total) to (total, total). */
    void (*progress)(void *user, size_t done, size_t total);
    void *progress_user;
} fr_model_params;

fr_model_params fr_model_default_params(void);

/* path: a Hugging Face folder (config.json, model.safetensors or model.safetensors.index.json,
 * optional generation_config.json), a single .safetensors file next to its config.json, or a
 * GGUF file (architectures llama, qwen2, qwen3; config, weights, tokenizer in one file).
 * Weights are mmapped (never copied on CPU); every tensor is checked against the config. */
fr_status fr_model_load(const char *path, const fr_model_params *params, fr_model **out,
                        fr_error *err);
void fr_model_free(fr_model *m);

typedef struct fr_model_info {
    const char *arch;    /* as the config spells it, e.g. "Qwen3ForCausalLM" */
    const char *family;  /* "llama", "qwen2", "qwen3", "mistral" */
    const char *backend; /* "cpu", "cuda" */
    int n_layers, hidden, n_heads, n_kv_heads, head_dim, intermediate, vocab;
    int max_context;    /* the model's max_position_embeddings */
    int sliding_window; /* 0 = full attention everywhere */
    double rope_theta;
    bool tied_embeddings, qk_norm, qkv_bias, layer_scale;
    int64_t n_params;          /* elements of all weights used (tied ones counted once) */
    size_t weight_bytes;       /* bytes of those weights as stored */
    char weight_dtypes[64];    /* storage dtypes of the matrices, e.g. "bf16" or "f16+f32" */
    size_t kv_bytes_per_token; /* f32 KV cache cost of one token of context */
} fr_model_info;

void fr_model_get_info(const fr_model *m, fr_model_info *info);
int fr_model_vocab_size(const fr_model *m);
/* End-of-sequence ids (generation_config.json wins over config.json); returns the count. */
int fr_model_eos_ids(const fr_model *m, const int32_t **ids);
bool fr_model_is_eos(const fr_model *m, int32_t id);

/* Converts a model (a Hugging Face folder or a GGUF file) into a GGUF file whose weights are of
 * `type` (one of fr_model_quantize_types(), case-insensitive), choosing per-tensor types as
 * llama.cpp's llama-quantize does (norms f32, output Q6_K, Q4_K_M / Q5_K_M mixes). The output
 * carries the architecture, tokenizer and chat template metadata and appears only complete.
 * n_threads 0 = one per core; verbose prints one line per tensor on stderr. */
fr_status fr_model_quantize(const char *in, const char *out, const char *type, int n_threads,
                            bool verbose, fr_error *err);
/* "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q4_K_M, Q5_K_M" */
const char *fr_model_quantize_types(void);

/* Precision of a session's activations and KV cache ("compute type"). With F32 everything is
 * f32. With BF16 / F16 the residual stream and the logits stay f32 (as llama.cpp keeps them), the
 * sublayer outputs added to the residual are f32 too, and every other activation (normed inputs,
 * q/k/v, attention output, MLP gate/up/product) and the KV cache are stored in the 16-bit type, so
 * the matmuls take 16-bit inputs (tensor-core GEMMs on CUDA). Arithmetic inside every op stays
 * f32. 16-bit compute needs a backend whose ops accept 16-bit activations (CUDA); the CPU backend
 * refuses it with FR_ERR_UNSUPPORTED at session creation. */
typedef enum fr_compute_type {
    FR_COMPUTE_F32 = 0, /* the default */
    FR_COMPUTE_BF16 = 1,
    FR_COMPUTE_F16 = 2,
} fr_compute_type;

const char *fr_compute_type_name(fr_compute_type t); /* "f32", "bf16", "f16"; "?" otherwise */
/* "f32", "bf16" or "f16" (case-insensitive) -> *out; false (and *out untouched) otherwise. */
bool fr_compute_type_parse(const char *name, fr_compute_type *out);

/* A session owns a KV cache of n_ctx tokens. Several sessions may share one model; calls on
 * sessions of one model are serialised internally (a model runs one forward at a time). */
typedef struct fr_session_params {
    int n_ctx;               /* cache capacity in tokens; 0 = min(4096, the model's max context) */
    int n_batch;             /* tokens per forward when prefilling; 0 = 256 on the CPU, 2048 on a
                                GPU (weights that a prefill GEMM must dequantize are converted once
                                per forward, so GPUs want long chunks); capped at n_ctx */
    fr_compute_type compute; /* activation / KV cache precision; FR_COMPUTE_F32 by default */
    fr_kv_type kv_type;      /* KV cache type; FR_KV_DEFAULT = the model's (fr_model_params) */
} fr_session_params;

fr_session_params fr_session_default_params(void);
fr_status fr_session_create(fr_model *m, const fr_session_params *params, fr_session **out,
                            fr_error *err);
void fr_session_free(fr_session *s);
void fr_session_reset(fr_session *s);                                 /* forget every token */
fr_status fr_session_truncate(fr_session *s, int pos, fr_error *err); /* keep the first pos */
int fr_session_pos(const fr_session *s);                              /* tokens in the cache */
int fr_session_n_ctx(const fr_session *s);                            /* capacity */
int fr_session_n_batch(const fr_session *s); /* tokens per prefill forward */
fr_compute_type fr_session_compute(const fr_session *s);
/* The KV cache type in force: FR_KV_F32, _BF16 or _F16 (never DEFAULT or AUTO). */
fr_kv_type fr_session_kv_type(const fr_session *s);

/* Appends n tokens (prefill in chunks of n_batch; n = 1 is a decode step). logits, when not
 * NULL, receives n rows of vocab floats (row i = the distribution after ids[i]). Fails with
 * FR_ERR_RANGE, leaving the session unchanged, when pos + n exceeds n_ctx; FR_ERR_INVALID for an
 * id outside [0, vocab). */
fr_status fr_session_eval(fr_session *s, const int32_t *ids, int n, float *logits, fr_error *err);
/* Same, but only the last row of logits (vocab floats) is computed and written. */
fr_status fr_session_eval_last(fr_session *s, const int32_t *ids, int n, float *logits,
                               fr_error *err);

/* ---------------------------------------------------------------- tokenizer
 * (section owned by src/tokenizer) */

typedef struct fr_tokenizer fr_tokenizer;

/* Loads a byte-level BPE tokenizer, byte-exact with Hugging Face `tokenizers`. `path` is a model
 * folder (its tokenizer.json, plus tokenizer_config.json for the bos/eos tokens when present), a
 * tokenizer.json file, or a GGUF file. Unsupported components fail with FR_ERR_UNSUPPORTED. */
fr_status fr_tokenizer_load(const char *path, fr_tokenizer **out, fr_error *err);
void fr_tokenizer_free(fr_tokenizer *tok);

/* UTF-8 text (`len` bytes, NUL not needed) -> token ids. add_special applies the post-processor
 * (e.g. a BOS token), as HF's add_special_tokens=True; special tokens written in the text are
 * always recognised. *ids is malloc'd (never NULL on success; the caller frees it). Invalid UTF-8
 * fails with FR_ERR_INVALID and its byte offset. Safe to call from several threads at once. */
fr_status fr_tokenizer_encode(const fr_tokenizer *tok, const char *text, size_t len,
                              bool add_special, int32_t **ids, size_t *n_ids, fr_error *err);
/* Token ids -> text (malloc'd, NUL-terminated; *len excludes the NUL and may be NULL). Invalid
 * UTF-8 byte sequences become U+FFFD as in HF. skip_special drops special tokens. An id outside
 * the vocabulary fails with FR_ERR_INVALID. */
fr_status fr_tokenizer_decode(const fr_tokenizer *tok, const int32_t *ids, size_t n_ids,
                              bool skip_special, char **text, size_t *len, fr_error *err);

/* Number of id slots (highest id + 1), including added tokens. */
size_t fr_tokenizer_vocab_size(const fr_tokenizer *tok);
/* -1 when the tokenizer defines none. */
int32_t fr_tokenizer_bos(const fr_tokenizer *tok);
int32_t fr_tokenizer_eos(const fr_tokenizer *tok);
/* The token's text as stored in the vocabulary (byte-level form, e.g. "\u0120the"); NULL for an
 * unknown id. Not NUL-terminated: use *len. Valid as long as the tokenizer. */
const char *fr_tokenizer_token(const fr_tokenizer *tok, int32_t id, size_t *len);
/* Id of a token given its vocabulary text (e.g. "<|im_end|>"), or -1. */
int32_t fr_tokenizer_find(const fr_tokenizer *tok, const char *token, size_t len);
bool fr_tokenizer_is_special(const fr_tokenizer *tok, int32_t id);

/* Streaming decoder: push ids one at a time and get the text that became final. It never returns
 * part of a UTF-8 character, and the concatenation of all pieces plus fr_detokenizer_finish equals
 * fr_tokenizer_decode of the same ids exactly. Returned text is NUL-terminated and valid until the
 * next call on the same decoder. */
typedef struct fr_detokenizer fr_detokenizer;

fr_status fr_detokenizer_new(const fr_tokenizer *tok, bool skip_special, fr_detokenizer **out,
                             fr_error *err);
fr_status fr_detokenizer_push(fr_detokenizer *d, int32_t id, const char **text, size_t *len,
                              fr_error *err);
/* Flushes an incomplete trailing sequence (as U+FFFD) and readies the decoder for a new text. */
fr_status fr_detokenizer_finish(fr_detokenizer *d, const char **text, size_t *len, fr_error *err);
/* Drops any pending bytes and starts over. */
void fr_detokenizer_reset(fr_detokenizer *d);
void fr_detokenizer_free(fr_detokenizer *d);

/* ---------------------------------------------------------------- chat templates
 * (section owned by src/tokenizer/template)
 * Renders a model's Jinja chat template byte-exactly as transformers' apply_chat_template
 * (tokenize=False). Constructs the interpreter lacks fail with FR_ERR_UNSUPPORTED naming the
 * template line and column; raise_exception() in a template fails with FR_ERR_INVALID and its
 * message. */

typedef struct fr_chat_template fr_chat_template;

/* `path` is a model folder or a tokenizer_config.json. The template comes, as in transformers,
 * from the folder's chat_template.jinja, else chat_template.json, else tokenizer_config.json's
 * "chat_template" (a string, or a list of {name, template} where "default" is used, and
 * "tool_use" when tools are given). bos/eos/unk/pad/sep/cls/mask tokens and
 * additional_special_tokens (strings or {"content": ...}) become template variables.
 * FR_ERR_NOT_FOUND when the model has no chat template. */
fr_status fr_chat_template_load(const char *path, fr_chat_template **out, fr_error *err);
/* From template source text, e.g. a GGUF's tokenizer.chat_template. bos_token / eos_token may be
 * NULL (then undefined in the template). */
fr_status fr_chat_template_from_source(const char *src, size_t len, const char *bos_token,
                                       const char *eos_token, fr_chat_template **out,
                                       fr_error *err);
void fr_chat_template_free(fr_chat_template *t);
/* The default template's source text (after newline normalisation it is what is rendered). */
const char *fr_chat_template_source(const fr_chat_template *t);

/* messages_json: a JSON array of {"role", "content", ...}; tools_json: a JSON array or NULL
 * (`tools` is then none, as in transformers); extra_vars_json: a JSON object or NULL whose keys
 * become template variables (e.g. {"enable_thinking": false}). *out is malloc'd and
 * NUL-terminated (the caller frees it); *out_len (may be NULL) excludes the NUL. */
fr_status fr_chat_template_render(const fr_chat_template *t, const char *messages_json,
                                  const char *tools_json, bool add_generation_prompt,
                                  const char *extra_vars_json, char **out, size_t *out_len,
                                  fr_error *err);

/* ---------------------------------------------------------------- sampling
 * (section owned by src/engine/sampler)
 * Order, as Hugging Face's generate applies them: repetition/presence/frequency penalties over the
 * last `penalty_last_n` accepted tokens, then temperature, top-k, top-p, min-p, then a draw from a
 * per-sampler seeded generator. temperature <= 0 means greedy (argmax, first index on ties). */

typedef struct fr_sampler fr_sampler;

typedef struct fr_sampler_params {
    float temperature;       /* <= 0: greedy */
    int top_k;               /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off (CTRL: positive logits divided, negative multiplied) */
    float presence_penalty;  /* 0: off (subtracted once from every token seen) */
    float frequency_penalty; /* 0: off (subtracted per occurrence) */
    int penalty_last_n;      /* window of accepted tokens the penalties look at; -1 = all */
    uint64_t seed;
} fr_sampler_params;

fr_sampler_params fr_sampler_default_params(void);
fr_status fr_sampler_create(const fr_sampler_params *params, int vocab_size, fr_sampler **out,
                            fr_error *err);
void fr_sampler_free(fr_sampler *s);
/* Forgets the token history and reseeds the generator with params.seed. */
void fr_sampler_reset(fr_sampler *s);
/* Records a token (prompt or generated) for the penalties. */
void fr_sampler_accept(fr_sampler *s, int32_t token);
/* Picks the next token from one row of logits (vocab_size floats, not modified). */
int32_t fr_sampler_sample(fr_sampler *s, const float *logits);
/* The distribution the next draw would use (penalties and all filters applied), vocab_size floats
 * summing to 1; for tests and for `logprobs`. Greedy gives a one-hot row. */
fr_status fr_sampler_probs(fr_sampler *s, const float *logits, float *probs, fr_error *err);
/* The parameters the sampler was created with. */
fr_sampler_params fr_sampler_params_of(const fr_sampler *s);

/* ---------------------------------------------------------------- generation
 * (section owned by src/engine/generate)
 * The generation loop: prompt ids -> prefill -> sample -> decode steps, streaming text through the
 * tokenizer's incremental decoder and the stop strings. On GPU backends, when the sampler has no
 * penalties, each decode step samples on the device (the backend's `sample` op: same filters,
 * its own counter-based generator seeded with params.seed, only the token id comes back);
 * greedy decoding gives the same ids either way. */

typedef enum fr_stop_reason {
    FR_STOP_NONE = 0,   /* not finished (an error ended the call) */
    FR_STOP_EOS,        /* the model produced one of its end-of-sequence ids */
    FR_STOP_MAX_TOKENS, /* max_tokens were generated */
    FR_STOP_STRING,     /* a stop string matched (it is not emitted) */
    FR_STOP_CALLBACK,   /* on_text or on_token returned false */
    FR_STOP_CONTEXT,    /* the session's context is full */
} fr_stop_reason;

const char *fr_stop_reason_name(fr_stop_reason r); /* "eos", "max_tokens", "stop", ... */

typedef struct fr_generate_params {
    int max_tokens;           /* tokens to generate at most; <= 0: until EOS, a stop or n_ctx */
    bool ignore_eos;          /* keep going past end-of-sequence ids */
    const char *const *stops; /* stop strings (need a tokenizer); matched across tokens */
    int n_stops;
    bool show_special; /* decode special tokens into the text (default: dropped) */
    /* Leading prompt tokens the caller knows are already in the session's cache at positions
     * 0..n_cached-1 (e.g. the common prefix of a chat's previous turn): the cache is truncated
     * there and only the rest is evaluated. At least the last prompt token is always evaluated. */
    int n_cached;
    /* Called for every piece of text as soon as it is final (valid UTF-8, never part of a stop
     * string); return false to stop. NULL: no text is produced (then no tokenizer is needed). */
    bool (*on_text)(void *user, const char *text, size_t len);
    /* Called for every sampled id (the EOS that ends the stream included); return false to
     * stop. */
    bool (*on_token)(void *user, int32_t id);
    void *user;
} fr_generate_params;

typedef struct fr_generate_stats {
    int n_prompt;    /* prompt tokens evaluated by the prefill (n_prompt - cached) */
    int n_reused;    /* prompt tokens taken from the cache */
    double prompt_s; /* seconds of that prefill */
    int n_gen;       /* tokens sampled (the EOS that ended the stream included) */
    int n_decode;    /* decode steps: forward passes of one token, each yielding the next token */
    double decode_s; /* seconds of those forward passes */
    double sample_s; /* seconds spent sampling */
    size_t decode_bytes; /* bytes the decode steps read (fr_session_decode_bytes summed) */
    fr_stop_reason reason;
} fr_generate_stats;

fr_generate_params fr_generate_default_params(void);

/* Generates a continuation of prompt[0..n_prompt) (n_prompt >= 1) in session s, drawing tokens
 * with smp (the evaluated prompt tokens are accepted into its penalty history first). tok may be
 * NULL when on_text is NULL and there are no stop strings. On return the session holds the
 * prompt and every generated token but the last (which was never evaluated). stats may be NULL;
 * after an error its reason is FR_STOP_NONE and the session may hold part of the prompt. */
fr_status fr_generate(fr_session *s, fr_sampler *smp, const fr_tokenizer *tok,
                      const int32_t *prompt, int n_prompt, const fr_generate_params *params,
                      fr_generate_stats *stats, fr_error *err);

/* Bytes one decode step reads with n_past tokens already in the cache: every weight as stored
 * (only one row of an untied embedding table) plus the K and V cache rows attention visits. */
size_t fr_model_decode_bytes(const fr_model *m, int n_past);
/* The same for a session: its KV cache rows counted in the session's KV cache type (f32 cache
 * rows in fr_model_decode_bytes, half of that with a BF16 / F16 cache). */
size_t fr_session_decode_bytes(const fr_session *s, int n_past);

/* The model's own sampling defaults (generation_config.json: do_sample=false -> greedy,
 * temperature, top_k, top_p, min_p, repetition_penalty) written over *p; fields the model does
 * not set stay as they are. Returns how many fields it set. */
int fr_model_sampling_defaults(const fr_model *m, fr_sampler_params *p);

/* Measured read bandwidth of the memory the model's backend computes from, in GB/s (1e9 B/s):
 * CPU: n_threads threads (0 = one per core) summing a buffer of `bytes` (0 = 512 MiB), best of a
 * few passes; CUDA: a streaming-read kernel over `bytes` of device memory (0 = 1 GiB), timed with
 * events. FR_ERR_UNSUPPORTED where a backend offers no way to measure it. */
fr_status fr_measure_read_bandwidth(const fr_model *m, int n_threads, size_t bytes, double *gbps,
                                    fr_error *err);

#ifdef __cplusplus
}
#endif
#endif /* FERRUM_H */
