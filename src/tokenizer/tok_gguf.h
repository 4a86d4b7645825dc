/* Tokenizer and chat template from GGUF metadata (tokenizer.ggml.*, tokenizer.chat_template). */
#ifndef FR_TOKENIZER_TOK_GGUF_H
#define FR_TOKENIZER_TOK_GGUF_H

#include "ferrum.h"
#include "model/gguf.h"

/* A "gpt2" (byte-level BPE) tokenizer: tokens, token types, merges, pre-tokenizer name, bos/eos
 * and add_bos/add_eos, or a "llama" (SentencePiece BPE) one: tokens, types, scores,
 * add_space_prefix, filled into an fr_tokenizer_spec as tokenizer.h describes. Other models
 * (bert, t5, ...) fail with FR_ERR_UNSUPPORTED naming the file and key. */
fr_status fr_tokenizer_from_gguf(const fr_gguf *g, fr_tokenizer **out, fr_error *err);
fr_status fr_tokenizer_load_gguf(const char *path, fr_tokenizer **out, fr_error *err);

/* tokenizer.chat_template, with bos_token / eos_token / unk_token / pad_token set from the token
 * ids in the metadata (as transformers does when it loads a GGUF tokenizer). FR_ERR_NOT_FOUND
 * when the file has no template. */
fr_status fr_chat_template_from_gguf(const fr_gguf *g, fr_chat_template **out, fr_error *err);
fr_status fr_chat_template_load_gguf(const char *path, fr_chat_template **out, fr_error *err);

/* Writes the tokenizer.* metadata (and tokenizer.chat_template when the folder has one) of the
 * Hugging Face tokenizer in `dir` (tokenizer.json, tokenizer_config.json, chat_template.jinja)
 * for a model of `vocab` embedding rows, as llama.cpp's converter does. bos / eos (the model
 * config's ids, -1 / 0 when none) are used when tokenizer_config.json names no such token.
 * FR_ERR_NOT_FOUND when there is no tokenizer.json; FR_ERR_UNSUPPORTED for a tokenizer GGUF
 * cannot describe (not BPE; byte-level with a pre-tokenizer no tokenizer.ggml.pre name denotes;
 * SentencePiece-style (byte_fallback) without SentencePiece's space handling). */
fr_status fr_tokenizer_json_to_gguf(const char *dir, int vocab, int32_t bos, const int32_t *eos,
                                    int n_eos, fr_gguf_writer *w, fr_error *err);

#endif
