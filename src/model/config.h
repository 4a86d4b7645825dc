/* fr_config: everything the generic decoder needs to know about a model, whatever file it came
 * from (a Hugging Face config.json here; GGUF metadata maps onto the same struct). */
#ifndef FR_MODEL_CONFIG_H
#define FR_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "kernels/backend.h"

#define FR_MAX_LAYERS 1024
#define FR_MAX_EOS    16

typedef enum fr_arch {
    FR_ARCH_LLAMA = 0, /* LlamaForCausalLM */
    FR_ARCH_QWEN2,     /* Qwen2ForCausalLM: q/k/v biases */
    FR_ARCH_QWEN3,     /* Qwen3ForCausalLM: per-head q/k RMSNorm before RoPE */
    FR_ARCH_MISTRAL,   /* MistralForCausalLM: sliding window */
    FR_ARCH_COUNT
} fr_arch;

typedef struct fr_config {
    fr_arch arch;
    char arch_name[64]; /* as the file spells it, e.g. "Qwen3ForCausalLM" */

    int n_layers;     /* num_hidden_layers */
    int hidden;       /* hidden_size (C) */
    int n_heads;      /* num_attention_heads (H) */
    int n_kv_heads;   /* num_key_value_heads (Hkv), divides H */
    int head_dim;     /* D, may differ from hidden / heads */
    int intermediate; /* intermediate_size (F) */
    int vocab;        /* vocab_size (V) */
    int max_pos;      /* max_position_embeddings */
    double norm_eps;  /* rms_norm_eps */
    fr_rope_config rope;

    bool qk_norm;        /* q_norm / k_norm [D] applied per head before RoPE (Qwen3) */
    bool qkv_bias;       /* q/k/v projections carry biases */
    bool o_bias;         /* o_proj carries a bias */
    bool mlp_bias;       /* gate/up/down carry biases */
    bool layer_scale;    /* per-channel scales on the attention and MLP outputs (the seed's
                            vocoder-style layer); tensors model.layers.N.self_attn_layer_scale.scale
                            and model.layers.N.mlp_layer_scale.scale, each [C] */
    bool tie_embeddings; /* lm_head shares model.embed_tokens.weight */

    int sliding_window;                        /* W for the windowed layers (0 = none anywhere) */
    unsigned char layer_window[FR_MAX_LAYERS]; /* 1 = this layer attends within the window */

    int n_eos;
    int32_t eos[FR_MAX_EOS];
    int32_t bos; /* -1 = none */

    /* Sampling defaults the model ships (generation_config.json; a GGUF loader may fill them from
     * general.sampling.*). Each value applies only when its has_ flag is set. */
    struct {
        bool has_temperature, has_top_k, has_top_p, has_min_p, has_repeat_penalty, has_do_sample;
        float temperature, top_p, min_p, repeat_penalty;
        int top_k;
        bool do_sample;
    } gen;
} fr_config;

const char *fr_arch_label(fr_arch a); /* "llama", "qwen2", "qwen3", "mistral" */

/* Reads DIR/config.json and, if present, DIR/generation_config.json (its eos ids win). Messages
 * name the file and the field at fault. */
fr_status fr_config_load_hf(const char *dir, fr_config *cfg, fr_error *err);

/* Parses config.json text (file is used in messages only). */
fr_status fr_config_parse_hf(const char *json, const char *file, fr_config *cfg, fr_error *err);

/* Reads eos_token_id (int, list or null) from generation_config.json text into cfg, replacing
 * the config's ids when the field is present and not null; also the sampling defaults
 * (do_sample, temperature, top_k, top_p, min_p, repetition_penalty) into cfg->gen. */
fr_status fr_config_parse_generation(const char *json, const char *file, fr_config *cfg,
                                     fr_error *err);

/* Consistency checks every source must pass (positive sizes, heads divisible, even head_dim...). */
fr_status fr_config_validate(const fr_config *cfg, const char *file, fr_error *err);

#endif
