/* The unified kernel interface. A backend is a struct of function pointers plus a context.
 * Model code calls the fr_op_* wrappers below, which validate shapes, dtypes and buffer bounds
 * once, then dispatch; an op whose pointer is NULL is reported as FR_ERR_UNSUPPORTED naming the
 * op and backend (never a silent fallback). Backend implementations may assume validated input.
 *
 * Layout conventions (row-major, shape[0] outermost; T = tokens in the batch, D = head_dim,
 * H = query heads, Hkv = kv heads, L = KV cache capacity):
 *   activations   [T, C] f32 (GPU backends may also accept bf16/f16)
 *   weights       [N, K]: y = x W^T (+ bias), rows of K elements in any fr_dtype incl. quantized
 *   ids/positions [T] i32, resident in a buffer of the backend (so a recorded step can be replayed
 *                 with new values written into the same memory)
 *   rope table    [P, D] f32: row p holds cos(p*f_i) for i < D/2, then sin(p*f_i) for i < D/2
 *   q after rope  [H, T, D] (head-major, dense)
 *   kv cache      [Hkv, L, D] (f32, f16 or bf16), row stride along L may exceed D ("KV stride")
 *   attention out [T, H, D] dense (= [T, H*D] for the output projection)
 */
#ifndef FR_KERNELS_BACKEND_H
#define FR_KERNELS_BACKEND_H

#include "core/error.h"
#include "core/tensor.h"

/* qk_norm_rope modes (the seed's numbering). */
enum {
    FR_ROPE_MODE_TRANSPOSE = 0, /* [T,H,D] -> [H,T,D], nothing else */
    FR_ROPE_MODE_NORM_ROPE = 1, /* per-head RMSNorm with weight [D], then RoPE */
    FR_ROPE_MODE_ROPE = 2,      /* RoPE only */
};

typedef struct fr_attention_params {
    float scale; /* applied to q.k; <= 0 means 1/sqrt(D) */
    int window;  /* sliding window W > 0: query at position p sees keys j with p-W < j <= p;
                    0 = full causal (j <= p) */
} fr_attention_params;

/* Filters of the `sample` op (fr_op_sample), applied in Hugging Face's order. */
typedef struct fr_sample_params {
    float temperature; /* <= 0: greedy (argmax); else logits are multiplied by 1/temperature */
    int top_k;         /* <= 0: off */
    float top_p;       /* in (0, 1]; 1: off */
    float min_p;       /* in [0, 1]; 0: off */
} fr_sample_params;

/* The device-resident generator state of the `sample` op, held in an i32 tensor of
 * FR_SAMPLE_STATE_WORDS elements whose offset is a multiple of 8 (host byte order; every
 * supported device is little-endian like the hosts). The op reads seed and counter and adds 1
 * to counter itself, so a recorded graph that contains it draws fresh numbers on every replay
 * without any host write. `done` is the op's own scratch (zero it with the rest). */
typedef struct fr_sample_state {
    uint64_t seed;
    uint64_t counter; /* calls so far */
    uint32_t done;    /* GPU: blocks finished in the running call (0 between calls) */
    uint32_t reserved;
} fr_sample_state;
#define FR_SAMPLE_STATE_WORDS ((int)(sizeof(fr_sample_state) / 4))

typedef struct fr_backend_ops {
    const char *name;
    /* Activation dtypes every op of this backend accepts, one bit per fr_dtype (1u << dtype); 0
     * means f32 only. The validation below admits f32/f16/bf16 for every backend, so the model
     * runner asks here before it allocates 16-bit activations (a clear error up front instead of
     * the first op refusing mid-forward). */
    unsigned act_dtypes;
    /* Optional: the KV cache dtype a session with f32 activations gets from FR_KV_AUTO, f16 where
     * this backend widens f16 in hardware (the CPU with F16C); NULL means f32. */
    fr_dtype (*kv_auto_dtype)(void *ctx);
    void (*destroy)(void *ctx);

    /* ---- buffers ---- */
    fr_status (*buffer_alloc)(void *ctx, size_t size, fr_buffer *buf, fr_error *err);
    void (*buffer_free)(void *ctx, fr_buffer *buf);
    fr_status (*buffer_upload)(void *ctx, fr_buffer *buf, size_t offset, const void *src,
                               size_t size, fr_error *err);
    fr_status (*buffer_download)(void *ctx, const fr_buffer *buf, size_t offset, void *dst,
                                 size_t size, fr_error *err);
    /* Optional: make host memory (e.g. an mmapped file) usable without a copy. */
    fr_status (*buffer_wrap_host)(void *ctx, void *ptr, size_t size, fr_buffer *buf, fr_error *err);

    /* ---- command stream: ops between begin and end may run asynchronously; sync waits ---- */
    fr_status (*begin)(void *ctx, fr_error *err);
    fr_status (*end)(void *ctx, fr_error *err);
    fr_status (*sync)(void *ctx, fr_error *err);
    /* Optional recording: ops issued between capture_begin and capture_end are recorded into a
     * graph (not run); graph_launch replays them with whatever the buffers hold at that time. */
    fr_status (*graph_capture_begin)(void *ctx, fr_error *err);
    fr_status (*graph_capture_end)(void *ctx, void **graph, fr_error *err);
    fr_status (*graph_launch)(void *ctx, void *graph, fr_error *err);
    void (*graph_free)(void *ctx, void *graph);

    /* ---- ops (validated by the fr_op_* wrappers; see there for semantics) ---- */
    fr_status (*embedding)(void *ctx, const fr_tensor *table, const fr_tensor *ids, fr_tensor *out,
                           fr_error *err);
    fr_status (*rms_norm)(void *ctx, const fr_tensor *x, const fr_tensor *w, float eps,
                          fr_tensor *out, fr_error *err);
    fr_status (*matmul)(void *ctx, const fr_tensor *x, const fr_tensor *w, const fr_tensor *bias,
                        fr_tensor *out, fr_error *err);
    /* Optional fusions of matmul (see fr_backend_has_fused): several matrices sharing x, and
     * the gate/up pair with its SiLU product. */
    fr_status (*matmul_multi)(void *ctx, const fr_tensor *x, int n, const fr_tensor *const *w,
                              const fr_tensor *const *bias, fr_tensor *const *out, fr_error *err);
    fr_status (*matmul_glu)(void *ctx, const fr_tensor *x, const fr_tensor *w_gate,
                            const fr_tensor *w_up, const fr_tensor *b_gate, const fr_tensor *b_up,
                            fr_tensor *gate, fr_tensor *up, fr_tensor *out, fr_error *err);
    fr_status (*qk_norm_rope)(void *ctx, const fr_tensor *x, const fr_tensor *norm_w,
                              const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                              fr_tensor *out, fr_error *err);
    fr_status (*kv_append)(void *ctx, const fr_tensor *kv, const fr_tensor *pos, fr_tensor *cache,
                           fr_error *err);
    /* Optional fusion of qk_norm_rope (q, k, v) + kv_append (k, v); NULL when the backend has
     * none, and the model runner then issues those five ops (fr_backend_has_fused). */
    fr_status (*attn_prepare)(void *ctx, const fr_tensor *q, const fr_tensor *k, const fr_tensor *v,
                              const fr_tensor *q_norm, const fr_tensor *k_norm,
                              const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                              fr_tensor *q_out, fr_tensor *k_cache, fr_tensor *v_cache,
                              fr_error *err);
    fr_status (*attention)(void *ctx, const fr_tensor *q, const fr_tensor *k_cache,
                           const fr_tensor *v_cache, const fr_tensor *pos,
                           const fr_attention_params *p, fr_tensor *out, fr_error *err);
    fr_status (*residual_norm)(void *ctx, const fr_tensor *residual, const fr_tensor *x,
                               const fr_tensor *layer_scale, const fr_tensor *norm_w, float eps,
                               fr_tensor *res_out, fr_tensor *norm_out, fr_error *err);
    fr_status (*silu_mul)(void *ctx, const fr_tensor *gate, const fr_tensor *up, fr_tensor *out,
                          fr_error *err);
    fr_status (*add)(void *ctx, const fr_tensor *a, const fr_tensor *b, fr_tensor *out,
                     fr_error *err);
    fr_status (*scaled_add)(void *ctx, const fr_tensor *a, const fr_tensor *b,
                            const fr_tensor *scale, fr_tensor *out, fr_error *err);
    fr_status (*argmax)(void *ctx, const fr_tensor *x, fr_tensor *out, fr_error *err);
    fr_status (*sample)(void *ctx, const fr_tensor *logits, const fr_sample_params *p,
                        fr_tensor *state, fr_tensor *out, fr_error *err);
} fr_backend_ops;

typedef struct fr_backend {
    const fr_backend_ops *ops;
    void *ctx;
} fr_backend;

typedef struct fr_backend_params {
    int n_threads; /* CPU: 0 = one per core */
    int device;    /* GPU ordinal */
    /* CPU: activations of matmuls with quantized weights (fr_model_params.quant_act) */
    fr_quant_act quant_act;
} fr_backend_params;

/* name: "cpu" or "cuda". FR_ERR_UNSUPPORTED when not compiled in; FR_ERR_BACKEND when no device. */
fr_status fr_backend_create(const char *name, const fr_backend_params *params, fr_backend **out,
                            fr_error *err);
void fr_backend_destroy(fr_backend *b);
const char *fr_backend_name(const fr_backend *b);
/* Whether every op of the backend accepts activations of dtype t (f32 always does). */
bool fr_backend_accepts_act(const fr_backend *b, fr_dtype t);
/* The backend's KV cache dtype for FR_KV_AUTO with f32 activations (f32 when it names none). */
fr_dtype fr_backend_kv_auto_dtype(const fr_backend *b);
/* The optional fused ops. The model runner asks once, before recording a step, and issues
 * either the fused op or the unfused sequence it stands for. */
typedef enum fr_fused_op {
    FR_FUSED_MATMUL_MULTI, /* matmul_multi: Q, K, V projections of one input */
    FR_FUSED_MATMUL_GLU,   /* matmul_glu: gate, up and silu_mul */
    FR_FUSED_ATTN_PREPARE, /* attn_prepare: qk_norm_rope x3 and kv_append x2 */
} fr_fused_op;
bool fr_backend_has_fused(const fr_backend *b, fr_fused_op op);

/* ---- buffers ---- */
fr_status fr_buffer_alloc(fr_backend *b, size_t size, fr_buffer *buf, fr_error *err);
void fr_buffer_free(fr_buffer *buf);
fr_status fr_buffer_upload(fr_buffer *buf, size_t offset, const void *src, size_t size,
                           fr_error *err);
fr_status fr_buffer_download(const fr_buffer *buf, size_t offset, void *dst, size_t size,
                             fr_error *err);
/* Wraps host memory without a copy when the backend can; otherwise allocates and uploads. */
fr_status fr_buffer_from_host(fr_backend *b, void *ptr, size_t size, fr_buffer *buf, fr_error *err);
/* As fr_buffer_from_host, but when the backend copies, byte `key` of ptr lands on a multiple of
 * FR_BUFFER_PLACE_ALIGN in the buffer: ptr[0] sits at *shift (0 when wrapped). A safetensors
 * file's tensors start after a header of any length, so without this a GPU would see every
 * weight at whatever alignment the header left (vector loads need 16 bytes). */
#define FR_BUFFER_PLACE_ALIGN 256
fr_status fr_buffer_from_host_at(fr_backend *b, void *ptr, size_t size, size_t key, fr_buffer *buf,
                                 size_t *shift, fr_error *err);

fr_status fr_backend_begin(fr_backend *b, fr_error *err);
fr_status fr_backend_end(fr_backend *b, fr_error *err);
fr_status fr_backend_sync(fr_backend *b, fr_error *err);
fr_status fr_graph_capture_begin(fr_backend *b, fr_error *err);
fr_status fr_graph_capture_end(fr_backend *b, void **graph, fr_error *err);
fr_status fr_graph_launch(fr_backend *b, void *graph, fr_error *err);
void fr_graph_free(fr_backend *b, void *graph);

/* ---- ops ----
 * embedding:     out[t,:] = table[ids[t],:]; table [V,C] any dtype; ids [T] i32 (each id is checked
 *                on the host only on CPU; GPU backends clamp out-of-range ids to a zero row).
 * rms_norm:      out[t,:] = x[t,:] / sqrt(mean(x[t,:]^2) + eps) * w; x,out [T,C]; w [C] f32.
 * matmul:        out[m,n] = sum_k x[m,k] * w[n,k] (+ bias[n]); x [M,K], w [N,K], bias [N] f32 or
 *                NULL, out [M,N]. Rows of x and out may be strided (views into wider buffers).
 * qk_norm_rope:  x [T,H,D] (rows may be strided, e.g. a slice of a fused QKV output), out [H,T,D].
 *                mode 1 normalises each head with norm_w [D] f32 (eps); modes 1,2 rotate pairs
 *                (i, i+D/2) by angle pos[t]*f_i using rope [P,D] (cos | sin); pos [T] i32 < P.
 * kv_append:     cache[h, pos[t], :] = kv[h, t, :]; kv [Hkv,T,D], cache [Hkv,L,D]; pos[t] < L.
 * matmul_multi:  (optional) out[i] = matmul(x, w[i], bias[i]) for i < n (1..3); every w[i] has
 *                K columns; bias may be NULL, or hold NULL entries.
 * matmul_glu:    (optional) out = silu(x w_gate^T + b_gate) * (x w_up^T + b_up), all [M,F];
 *                gate and up [M,F] are scratch the backend may use (contents undefined after).
 * attn_prepare:  (optional) qk_norm_rope of q, k and v plus kv_append of k and v, in one call:
 *                q [T,H,D], k and v [T,Hkv,D], each with its own row strides (e.g. column slices
 *                of one fused QKV output); mode 1 (norms q_norm/k_norm [D] f32, eps) or 2 (RoPE
 *                only, norms may be NULL); rope and pos as qk_norm_rope.
 *                  q_out[h,t,:]          = qk_norm_rope(q)[h,t,:]       q_out [H,T,D]
 *                  k_cache[h,pos[t],:]   = qk_norm_rope(k)[h,t,:]       caches [Hkv,L,D],
 *                  v_cache[h,pos[t],:]   = v[t,h,:]                     same shape, pos[t] < L
 *                Same arithmetic as the unfused ops, so with f32 activations the results are
 *                bit-identical to them; k goes straight to the cache dtype (one rounding, where
 *                the unfused path also rounds to the activation dtype in between).
 * attention:     out[t,h,:] = softmax_j(scale * q[h,t,:].k[h/(H/Hkv),j,:]) v[...,j,:] over the keys
 *                allowed by pos[t] and p->window (see fr_attention_params); causal by position.
 * residual_norm: res_out = residual + x * layer_scale (scale [C] f32 or NULL = 1);
 *                norm_out = rms_norm(res_out, norm_w, eps). res_out may alias residual.
 * silu_mul:      out = silu(gate) * up, all [T,F] (gate/up may be strided views of one buffer).
 * add:           out = a + b.   scaled_add: out = a + b * scale[c] (scale [C] f32).
 * argmax:        out[t] = index of the largest x[t,:] (first one on ties; NaN entries are skipped,
 *                an all-NaN row gives 0); x [T,V], out [T] i32.
 * Out-of-range ids/positions: the CPU backend checks them and returns FR_ERR_RANGE; GPU backends
 * cannot check without a host sync and clamp or skip instead (see each op's file). */
fr_status fr_op_embedding(fr_backend *b, const fr_tensor *table, const fr_tensor *ids,
                          fr_tensor *out, fr_error *err);
fr_status fr_op_rms_norm(fr_backend *b, const fr_tensor *x, const fr_tensor *w, float eps,
                         fr_tensor *out, fr_error *err);
fr_status fr_op_matmul(fr_backend *b, const fr_tensor *x, const fr_tensor *w, const fr_tensor *bias,
                       fr_tensor *out, fr_error *err);
fr_status fr_op_qk_norm_rope(fr_backend *b, const fr_tensor *x, const fr_tensor *norm_w,
                             const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                             fr_tensor *out, fr_error *err);
fr_status fr_op_kv_append(fr_backend *b, const fr_tensor *kv, const fr_tensor *pos,
                          fr_tensor *cache, fr_error *err);
fr_status fr_op_matmul_multi(fr_backend *b, const fr_tensor *x, int n, const fr_tensor *const *w,
                             const fr_tensor *const *bias, fr_tensor *const *out, fr_error *err);
fr_status fr_op_matmul_glu(fr_backend *b, const fr_tensor *x, const fr_tensor *w_gate,
                           const fr_tensor *w_up, const fr_tensor *b_gate, const fr_tensor *b_up,
                           fr_tensor *gate, fr_tensor *up, fr_tensor *out, fr_error *err);
fr_status fr_op_attn_prepare(fr_backend *b, const fr_tensor *q, const fr_tensor *k,
                             const fr_tensor *v, const fr_tensor *q_norm, const fr_tensor *k_norm,
                             const fr_tensor *rope, const fr_tensor *pos, int mode, float eps,
                             fr_tensor *q_out, fr_tensor *k_cache, fr_tensor *v_cache,
                             fr_error *err);
fr_status fr_op_attention(fr_backend *b, const fr_tensor *q, const fr_tensor *k_cache,
                          const fr_tensor *v_cache, const fr_tensor *pos,
                          const fr_attention_params *p, fr_tensor *out, fr_error *err);
fr_status fr_op_residual_norm(fr_backend *b, const fr_tensor *residual, const fr_tensor *x,
                              const fr_tensor *layer_scale, const fr_tensor *norm_w, float eps,
                              fr_tensor *res_out, fr_tensor *norm_out, fr_error *err);
fr_status fr_op_silu_mul(fr_backend *b, const fr_tensor *gate, const fr_tensor *up, fr_tensor *out,
                         fr_error *err);
fr_status fr_op_add(fr_backend *b, const fr_tensor *a, const fr_tensor *bb, fr_tensor *out,
                    fr_error *err);
fr_status fr_op_scaled_add(fr_backend *b, const fr_tensor *a, const fr_tensor *bb,
                           const fr_tensor *scale, fr_tensor *out, fr_error *err);
fr_status fr_op_argmax(fr_backend *b, const fr_tensor *x, fr_tensor *out, fr_error *err);

/* sample: out[t] = one token drawn from row t of logits [T, V] f32 (V <= 2^23), state an i32
 * tensor holding an fr_sample_state (see there), out [T] i32. The same (logits, params, state)
 * give the same ids on every backend: all arithmetic is in kernels/sample_common.h, bit-exact.
 * Exact semantics, per row:
 *   - Greedy (p->temperature <= 0): fr_op_argmax's answer (largest logit, lowest index on ties,
 *     NaN skipped, -0 == +0, an all-NaN row gives 0).
 *   - Otherwise a logit takes part unless NaN or -inf; none taking part gives 0. Denormal
 *     logits count as 0. Scaled logit l_i = x_i * (1/temperature) (f32, denormals -> 0);
 *     m = max l_i; weight w_i = floor(2^40 exp(l_i - m)) (integer; exactly 2^40 where l_i == m,
 *     0 below exp(-28)); ordering and ties are by l_i (float compare).
 *   - top-k (0 < top_k < tokens taking part): keeps every token with l_i >= the top_k-th
 *     largest l (counted with multiplicity), so all tokens tied with the k-th are kept, as
 *     Hugging Face's TopKLogitsWarper does (it may keep more than k).
 *   - top-p (top_p < 1): with Z = sum of w over the top-k survivors, keeps survivor i iff
 *     sum{w_j : survivor j, l_j > l_i} < P, P = max(1, ceil(top_p * Z)) (double product).
 *     Tokens tied in l are all kept or all dropped; the largest is always kept. Equals
 *     "smallest prefix of the sorted list whose mass reaches top_p" when there are no ties.
 *   - min-p (min_p > 0): keeps survivors with w_i >= ceil(min_p * 2^40) (relative to the top
 *     token, whose weight is 2^40; the top token always stays).
 *   - Draw: Z' = sum of w over the final set, r = floor(R * Z' / 2^64) with
 *     R = fr_smp_random(seed, counter, t); the answer is the lowest index j in the set with
 *     sum{w_i : i in set, i <= j} > r (index order, not probability order).
 *   Every call, greedy included, then adds 1 to state->counter (all rows of a call share it).
 * Capturable: no host sync, allocation or copy. */
fr_status fr_op_sample(fr_backend *b, const fr_tensor *logits, const fr_sample_params *p,
                       fr_tensor *state, fr_tensor *out, fr_error *err);
/* The parameter checks of fr_op_sample alone (FR_ERR_INVALID naming the bad field). */
fr_status fr_sample_params_check(const fr_sample_params *p, fr_error *err);
/* Fills `words` (FR_SAMPLE_STATE_WORDS i32) with a fresh state for seed (counter 0), ready to
 * upload into a state tensor. */
void fr_sample_state_pack(uint64_t seed, uint64_t counter, int32_t *words);

/* ---- RoPE tables (plain C, shared by all backends) ---- */
typedef struct fr_rope_config {
    double theta; /* base, e.g. 1e6 */
    int head_dim; /* D (even); all D dims are rotated, half-split pairs (i, i+D/2) */
    /* llama3 scaling ("rope_type": "llama3"); factor 0 = none */
    double factor, low_freq_factor, high_freq_factor;
    int original_max_pos;
    /* linear scaling ("rope_type": "linear"): positions divided by linear_factor (0 = none) */
    double linear_factor;
} fr_rope_config;

/* Fills table[p*D + i] = cos(p f_i), table[p*D + D/2 + i] = sin(p f_i) for p < n_pos, i < D/2;
 * frequencies computed in double as Hugging Face does, angles rounded to f32 only at the end. */
void fr_rope_table_fill(const fr_rope_config *cfg, int n_pos, float *table);

/* CPU backend constructor (always present); CUDA's exists when FR_HAVE_CUDA. */
fr_status fr_cpu_backend_create(const fr_backend_params *params, fr_backend **out, fr_error *err);
#ifdef FR_HAVE_CUDA
fr_status fr_cuda_backend_create(const fr_backend_params *params, fr_backend **out, fr_error *err);
#endif

#endif
