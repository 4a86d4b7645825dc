/* The generation loop: prefill the prompt, then sample and decode one token at a time, turning
 * ids into text with the streaming detokenizer and holding back text that may still become a
 * stop string. Also the byte count a decode step reads (for GB/s figures) and the model's own
 * sampling defaults. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "engine/session.h"
#include "engine/stop.h"
#include "model/model.h"

const char *fr_stop_reason_name(fr_stop_reason r) {
    switch (r) {
    case FR_STOP_NONE:
        return "none";
    case FR_STOP_EOS:
        return "eos";
    case FR_STOP_MAX_TOKENS:
        return "max_tokens";
    case FR_STOP_STRING:
        return "stop";
    case FR_STOP_CALLBACK:
        return "callback";
    case FR_STOP_CONTEXT:
        return "context";
    }
    return "?";
}

fr_generate_params fr_generate_default_params(void) {
    fr_generate_params p;
    memset(&p, 0, sizeof p);
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- bytes per decode step */

/* kv_elem: bytes per element of the KV cache (4 for f32, 2 for a bf16/f16 cache) */
static size_t decode_bytes(const fr_model *m, int n_past, size_t kv_elem) {
    const fr_config *c = &m->cfg;
    size_t bytes = m->weight_bytes;
    if (!c->tie_embeddings) {
        /* an untied embedding table is only looked up: one row per token, not the whole table */
        const size_t row = fr_dtype_row_bytes(m->embed.dtype, c->hidden);
        bytes -= row * (size_t)c->vocab;
        bytes += row;
    }
    /* attention reads K and V of every visible position, per layer */
    const size_t kv_row = (size_t)2 * (size_t)c->n_kv_heads * (size_t)c->head_dim * kv_elem;
    const size_t visible = (size_t)(n_past < 0 ? 0 : n_past) + 1;
    for (int l = 0; l < c->n_layers; l++) {
        size_t v = visible;
        if (c->layer_window[l] && c->sliding_window > 0 && v > (size_t)c->sliding_window)
            v = (size_t)c->sliding_window;
        bytes += v * kv_row;
    }
    return bytes;
}

size_t fr_model_decode_bytes(const fr_model *m, int n_past) {
    return decode_bytes(m, n_past, sizeof(float));
}

size_t fr_session_decode_bytes(const fr_session *s, int n_past) {
    return decode_bytes(fr_session_model(s), n_past,
                        fr_session_kv_type(s) == FR_KV_F32 ? sizeof(float) : 2);
}

/* ---------------------------------------------------------------- sampling defaults */

int fr_model_sampling_defaults(const fr_model *m, fr_sampler_params *p) {
    const fr_config *c = &m->cfg;
    int n = 0;
    if (c->gen.has_temperature) p->temperature = c->gen.temperature, n++;
    if (c->gen.has_top_k) p->top_k = c->gen.top_k, n++;
    if (c->gen.has_top_p) p->top_p = c->gen.top_p, n++;
    if (c->gen.has_min_p) p->min_p = c->gen.min_p, n++;
    if (c->gen.has_repeat_penalty) p->repeat_penalty = c->gen.repeat_penalty, n++;
    /* transformers samples only with do_sample=true; an explicit false means greedy decoding */
    if (c->gen.has_do_sample && !c->gen.do_sample) p->temperature = 0.0f, n++;
    return n;
}

/* ---------------------------------------------------------------- streaming text */

typedef struct {
    const fr_generate_params *p;
    const fr_tokenizer *tok;
    fr_detokenizer *detok;
    fr_stop_matcher *stop;
    bool stopped_by_string;
    bool stopped_by_callback;
} text_state;

static bool emit(text_state *t, const char *s, size_t n) {
    if (n == 0 || !t->p->on_text) return true;
    if (!t->p->on_text(t->p->user, s, n)) {
        t->stopped_by_callback = true;
        return false;
    }
    return true;
}

/* Passes a detokenized piece through the stop matcher; *go_on false when the stream must end. */
static fr_status feed_text(text_state *t, const char *piece, size_t len, bool *go_on,
                           fr_error *err) {
    if (!t->stop) {
        *go_on = emit(t, piece, len);
        return FR_OK;
    }
    const char *out;
    size_t out_len;
    bool matched;
    fr_status st = fr_stop_feed(t->stop, piece, len, &out, &out_len, &matched, err);
    if (st) return st;
    *go_on = false;
    if (!emit(t, out, out_len)) return FR_OK; /* the callback's stop wins */
    if (matched) t->stopped_by_string = true;
    *go_on = !matched;
    return FR_OK;
}

static fr_status push_token(text_state *t, int32_t id, bool *go_on, fr_error *err) {
    *go_on = true;
    if (!t->detok) return FR_OK;
    size_t tl;
    /* a padded model vocabulary may exceed the tokenizer's: such ids carry no text */
    if (!fr_tokenizer_token(t->tok, id, &tl)) return FR_OK;
    const char *piece;
    size_t len;
    fr_status st = fr_detokenizer_push(t->detok, id, &piece, &len, err);
    if (st) return st;
    return feed_text(t, piece, len, go_on, err);
}

/* End of stream: releases the detokenizer's pending bytes and the held-back text. */
static fr_status finish_text(text_state *t, fr_error *err) {
    if (t->stopped_by_string || t->stopped_by_callback || !t->detok) return FR_OK;
    const char *piece;
    size_t len;
    fr_status st = fr_detokenizer_finish(t->detok, &piece, &len, err);
    if (st) return st;
    bool go_on;
    if ((st = feed_text(t, piece, len, &go_on, err)) || !go_on) return st;
    if (t->stop) {
        fr_stop_flush(t->stop, &piece, &len);
        emit(t, piece, len);
    }
    return FR_OK;
}

/* ---------------------------------------------------------------- the loop */

/* A row the sampler must not see: a NaN or +inf anywhere, or no finite logit at all. Random bytes
 * as weights give all-NaN rows, which the sampler would turn into token 0 again and again (empty
 * output and a clean exit). One pass over V floats: little next to the decode step. */
static fr_status check_logits(const float *x, int V, int pos, fr_error *err) {
    /* the usual all-finite row in one branch-free pass over the exponent bits (vectorised: ~50 us
     * for 152k logits on the dev VM, 5x less than an isfinite loop); the slow scan below only
     * runs for a row holding some inf or NaN */
    uint32_t special = 0;
    for (int i = 0; i < V; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        special |= (u & 0x7f800000u) == 0x7f800000u;
    }
    if (!special) return FR_OK;
    int finite = 0;
    for (int i = 0; i < V; i++) {
        if (isfinite(x[i])) {
            finite++;
        } else if (!(x[i] < 0)) { /* NaN or +inf; -inf is a masked token */
            return fr_error_set(err, FR_ERR_RANGE,
                                "generate: non-finite logits at position %d (token %d: %s): the "
                                "model's weights are corrupt or its activations overflow",
                                pos, i, isnan(x[i]) ? "NaN" : "+inf");
        }
    }
    if (!finite)
        return fr_error_set(err, FR_ERR_RANGE,
                            "generate: no finite logit at position %d (all -inf): the model's "
                            "weights are corrupt",
                            pos);
    return FR_OK;
}

fr_status fr_generate(fr_session *s, fr_sampler *smp, const fr_tokenizer *tok,
                      const int32_t *prompt, int n_prompt, const fr_generate_params *params,
                      fr_generate_stats *stats, fr_error *err) {
    fr_generate_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    fr_generate_params defaults = fr_generate_default_params();
    const fr_generate_params *p = params ? params : &defaults;
    if (!s || !smp || !prompt || n_prompt < 1)
        return fr_error_set(err, FR_ERR_INVALID,
                            "generate: need a session, a sampler and a "
                            "prompt of at least one token");
    if (p->n_stops < 0 || (p->n_stops > 0 && !p->stops))
        return fr_error_set(err, FR_ERR_INVALID, "generate: bad stop string list");
    if (!tok && (p->on_text || p->n_stops > 0))
        return fr_error_set(err, FR_ERR_INVALID,
                            "generate: text output and stop strings need a tokenizer");
    const fr_model *m = fr_session_model(s);
    const int V = fr_model_vocab_size(m);
    const int n_ctx = fr_session_n_ctx(s);
    if (n_prompt > n_ctx)
        return fr_error_set(err, FR_ERR_RANGE,
                            "generate: the prompt has %d tokens, more than the context of %d "
                            "(n_ctx)",
                            n_prompt, n_ctx);

    /* reuse the cached prefix, but always evaluate the last prompt token: its logits are needed */
    int keep = p->n_cached;
    if (keep > fr_session_pos(s)) keep = fr_session_pos(s);
    if (keep > n_prompt - 1) keep = n_prompt - 1;
    if (keep < 0) keep = 0;
    fr_status st = fr_session_truncate(s, keep, err);
    if (st) return st;

    float *logits = malloc(sizeof(float) * (size_t)V);
    text_state text = {.p = p, .tok = tok};
    if (!logits) {
        st = fr_error_set(err, FR_ERR_NOMEM, "generate: out of memory for %d logits", V);
        goto done;
    }
    if (tok && (p->on_text || p->n_stops > 0)) {
        st = fr_detokenizer_new(tok, !p->show_special, &text.detok, err);
        if (st) goto done;
    }
    if (p->n_stops > 0) {
        st = fr_stop_create(p->stops, p->n_stops, &text.stop, err);
        if (st) goto done;
    }

    /* Device-side sampling (GPUs): each decode step runs the backend's sample op and returns
     * only the id. Penalties need the token history on the host, so they keep the host path. */
    const fr_sampler_params hp = fr_sampler_params_of(smp);
    const bool penalties =
        hp.penalty_last_n != 0 &&
        (hp.repeat_penalty != 1.0f || hp.presence_penalty != 0.0f || hp.frequency_penalty != 0.0f);
    const fr_sample_params dsp = {.temperature = hp.temperature,
                                  .top_k = hp.top_k,
                                  .top_p = hp.top_p < 1.0f ? hp.top_p : 1.0f,
                                  .min_p = hp.min_p > 0.0f ? hp.min_p : 0.0f};
    fr_error ignored;
    const bool on_device = fr_session_device_sampling(s) && !penalties &&
                           fr_sample_params_check(&dsp, &ignored) == FR_OK;
    int32_t next = 0; /* device path: the id sampled after the last step */
    if (on_device) {
        uint64_t seed;
        if (!fr_session_sample_seed(s, &seed) || seed != hp.seed) {
            /* a new seed restarts the counter; the same seed continues it (a chat's turns) */
            st = fr_session_set_sample_seed(s, hp.seed, err);
            if (st) goto done;
        }
    }

    for (int i = keep; i < n_prompt; i++)
        fr_sampler_accept(smp, prompt[i]);
    double t0 = now_s();
    if (!on_device) {
        st = fr_session_eval_last(s, prompt + keep, n_prompt - keep, logits, err);
    } else {
        /* the last prompt token goes through the decode step that samples the first token */
        if (n_prompt - keep > 1)
            st = fr_session_eval_last(s, prompt + keep, n_prompt - keep - 1, NULL, err);
        if (!st) st = fr_session_decode_sample(s, prompt[n_prompt - 1], &dsp, &next, err);
    }
    if (st) goto done;
    stats->prompt_s = now_s() - t0;
    stats->n_prompt = n_prompt - keep;
    stats->n_reused = keep;

    for (;;) {
        t0 = now_s();
        if (!on_device && (st = check_logits(logits, V, fr_session_pos(s) - 1, err))) goto done;
        const int32_t id = on_device ? next : fr_sampler_sample(smp, logits);
        fr_sampler_accept(smp, id);
        stats->sample_s += now_s() - t0;
        stats->n_gen++;
        if (p->on_token && !p->on_token(p->user, id)) {
            stats->reason = FR_STOP_CALLBACK;
            text.stopped_by_callback = true;
            break;
        }
        if (!p->ignore_eos && fr_model_is_eos(m, id)) {
            stats->reason = FR_STOP_EOS;
            break;
        }
        bool go_on;
        st = push_token(&text, id, &go_on, err);
        if (st) goto done;
        if (!go_on) {
            stats->reason = text.stopped_by_string ? FR_STOP_STRING : FR_STOP_CALLBACK;
            break;
        }
        if (p->max_tokens > 0 && stats->n_gen >= p->max_tokens) {
            stats->reason = FR_STOP_MAX_TOKENS;
            break;
        }
        const int pos = fr_session_pos(s);
        if (pos >= n_ctx) {
            stats->reason = FR_STOP_CONTEXT;
            break;
        }
        t0 = now_s();
        st = on_device ? fr_session_decode_sample(s, id, &dsp, &next, err)
                       : fr_session_eval_last(s, &id, 1, logits, err);
        if (st) goto done;
        stats->decode_s += now_s() - t0;
        stats->n_decode++;
        stats->decode_bytes += fr_session_decode_bytes(s, pos);
    }
    st = finish_text(&text, err);

done:
    if (st) stats->reason = FR_STOP_NONE;
    fr_stop_free(text.stop);
    fr_detokenizer_free(text.detok);
    free(logits);
    return st;
}
