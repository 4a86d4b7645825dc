/* Chat templates (the public half is the "chat templates" section of ferrum.h): a model's Jinja
 * template plus the special-token variables transformers passes to it. */
#ifndef FR_TOKENIZER_TEMPLATE_H
#define FR_TOKENIZER_TEMPLATE_H

#include "ferrum.h"

/* Adds or replaces a special-token variable (e.g. "pad_token") for loaders such as GGUF that know
 * more tokens than bos/eos. value NULL removes it. */
fr_status fr_chat_template_set_token(fr_chat_template *t, const char *name, const char *value,
                                     fr_error *err);

/* Reads a whole file into a malloc'd NUL-terminated buffer (refuses files over max_bytes). */
fr_status fr_chat_read_file(const char *path, size_t max_bytes, char **out, size_t *len,
                            fr_error *err);

#endif
