/* Session internals that tests may reach (not part of the public API). */
#ifndef FR_ENGINE_SESSION_H
#define FR_ENGINE_SESSION_H

#include "ferrum.h"
#include "model/model.h"

/* Installs a hook called with the hidden state after the embedding, after every layer and after
 * the final norm (see fr_hidden_hook); NULL removes it. */
void fr_session_set_hidden_hook(fr_session *s, fr_hidden_hook fn, void *user);

/* The model a session runs. */
fr_model *fr_session_model(const fr_session *s);

#endif
