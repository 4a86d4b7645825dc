/* GGUF models (llama.cpp's layout) as a config + weight source for the generic decoder.
 *
 * Architectures `llama`, `qwen2` and `qwen3` map onto the same fr_config the Hugging Face path
 * produces; tensors are renamed to the canonical Hugging Face names (token_embd.weight ->
 * model.embed_tokens.weight, blk.N.attn_q.weight -> model.layers.N.self_attn.q_proj.weight, ...)
 * and stay in the mapping in their stored (possibly quantized) dtype.
 *
 * The llama Q/K permutation: llama.cpp's converter reorders the rows of attn_q / attn_k (and
 * their biases) of the `llama` architecture inside every head, from Hugging Face's half-split
 * RoPE pairs (i, i + D/2) to interleaved pairs (2i, 2i + 1): GGUF row h*D + 2i + s holds HF row
 * h*D + s*D/2 + i (s = 0, 1). Our RoPE is half-split, so the loader undoes it. The permutation
 * moves whole rows, and a row is a whole number of quant blocks, so quantized rows are moved as
 * bytes, never dequantized. Cost: one reordered heap copy of every attn_q / attn_k (and bias),
 * i.e. (H + Hkv) * D * C elements at their stored size per layer (8.3 MB for SmolLM2-135M in
 * Q4_1, about 380 MB for an 8B Llama in Q4_K), made once at load time. Other tensors stay mapped.
 */
#ifndef FR_MODEL_GGUF_MODEL_H
#define FR_MODEL_GGUF_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferrum.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/weights.h"

/* Opens a GGUF model file: fills cfg from the metadata and *src with every tensor under its
 * canonical name (q/k rows reordered for `llama`). The source owns the mapping. Errors name the
 * file and the key or tensor at fault. */
fr_status fr_gguf_model_open(const char *path, fr_config *cfg, fr_weight_source **src,
                             fr_error *err);

/* The decoder config of an open GGUF (no tensor is read except rope_freqs.weight for llama3
 * RoPE scaling, and token_embd.weight's shape when there is no token list). */
fr_status fr_gguf_read_config(const fr_gguf *g, fr_config *cfg, fr_error *err);

/* GGUF architecture name of a config ("llama" for Llama and Mistral, "qwen2", "qwen3"). */
const char *fr_gguf_arch_name(fr_arch arch);

/* Tensor names, both ways: GGUF <-> canonical Hugging Face. False for a name with no
 * counterpart (e.g. rope_freqs.weight) or when it does not fit in cap bytes. */
bool fr_gguf_name_to_hf(const char *gguf_name, char *out, size_t cap);
bool fr_gguf_name_from_hf(const char *hf_name, char *out, size_t cap);

/* Reorders the rows of one llama q or k tensor of n_head heads of head_dim rows each (a vector is
 * rows of one element): to_gguf = HF order -> GGUF order, else the inverse. src and dst must not
 * overlap. */
void fr_gguf_permute_qk(const void *src, void *dst, int64_t n_head, int64_t head_dim,
                        size_t row_bytes, bool to_gguf);

/* llama3 RoPE frequency factors as llama.cpp stores them (rope_freqs.weight, D/2 floats): the
 * divisor of each base frequency. Returns false when cfg has no llama3 scaling. */
bool fr_gguf_rope_freq_factors(const fr_rope_config *rope, float *factors);

#endif
