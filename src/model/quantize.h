/* `ferrum quantize`: a Hugging Face folder or a GGUF file -> a GGUF file of another type.
 *
 * Which tensors get which type follows llama.cpp's llama-quantize (non-"pure" mode):
 *  - 1-D tensors (norms, biases) and *_norm.weight stay f32; rope_freqs.weight stays f32.
 *  - F32 / F16 / BF16 targets: every other weight in that type.
 *  - Quantized targets T: every 2-D weight in T, except
 *      output.weight (token_embd.weight when the output is tied): Q6_K, or Q8_0 when its rows are
 *        not a whole number of T's blocks; it stays T when T is Q8_0;
 *      Q4_K_M / Q5_K_M: attn_v.weight and ffn_down.weight of the layers where
 *        use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2 holds: Q6_K;
 *    and a tensor whose rows are not a whole number of blocks falls back as llama.cpp does
 *    (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), then to F16 (llama.cpp refuses the legacy
 *    types there; ferrum writes F16).
 * The plain K types (Q4_K, Q5_K, Q6_K) use the same rules without the _M bumps; their
 * general.file_type is llama.cpp's nearest (Q4_K_S, Q5_K_S, Q6_K), which is informative only.
 *
 * From a Hugging Face folder the metadata is what llama.cpp's converter writes (architecture
 * hparams, tokenizer.* from tokenizer.json / tokenizer_config.json, tokenizer.chat_template),
 * and llama / Mistral attn_q / attn_k rows (and biases) are permuted into GGUF's interleaved
 * RoPE order as the converter does (see gguf_model.h). From a GGUF file every metadata key is
 * copied, tensors keep their names and order (already in GGUF order), and quantized inputs are
 * dequantized first (requantizing loses accuracy; a warning says so). */
#ifndef FR_MODEL_QUANTIZE_H
#define FR_MODEL_QUANTIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "ferrum.h"

typedef enum fr_quant_mix {
    FR_QUANT_MIX_NONE = 0,
    FR_QUANT_MIX_K_M, /* Q4_K_M, Q5_K_M */
} fr_quant_mix;

typedef struct fr_quant_target {
    const char *name; /* "Q4_K_M" */
    fr_dtype base;    /* the default type of 2-D weights */
    fr_quant_mix mix;
    int file_type; /* llama.cpp's llama_ftype value for general.file_type */
} fr_quant_target;

/* Case-insensitive lookup of a TYPE name; NULL when unknown. */
const fr_quant_target *fr_quant_target_find(const char *name);
/* "F32, F16, BF16, Q8_0, ..." for messages. */
const char *fr_quant_target_list(void);

/* The type a tensor gets (GGUF name, row-major shape, innermost dimension last). n_layers and
 * has_output describe the model (has_output: an output.weight exists). */
fr_dtype fr_quant_pick_type(const fr_quant_target *t, const char *gguf_name, int ndim,
                            const int64_t *shape, int n_layers, bool has_output);

typedef struct fr_quantize_params {
    int n_threads; /* 0 = one per core */
    bool verbose;  /* one line per tensor on stderr */
} fr_quantize_params;

/* Converts `in` (HF folder or GGUF file) to `out` (GGUF), opened by the rules of
 * core/outfile.h: "-" is standard output, a FIFO or character device is written in place, a
 * regular file or new path appears only complete (on any error an existing file is left as it
 * was), and an output that is one of the input's files is refused. */
fr_status fr_quantize_model(const char *in, const char *out, const fr_quant_target *target,
                            const fr_quantize_params *params, fr_error *err);

/* The files that loading the model at `path` reads, for keeping outputs off them: a folder's
 * config.json, generation_config.json, tokenizer and chat-template files, safetensors index and
 * every *.safetensors in it; a GGUF file itself; a .safetensors file itself and those files of
 * its folder. Free with fr_model_input_files_free. */
fr_status fr_model_input_files(const char *path, char ***files, size_t *n, fr_error *err);
void fr_model_input_files_free(char **files, size_t n);

#endif
