#!/usr/bin/env python3
"""Oracle side of tests/test_quantize.sh (numpy + the `gguf` PyPI package, nothing of ferrum's).

  make-model DIR         a synthetic Hugging Face Llama folder: random f32 weights whose rows are
                         whole K-quant super-blocks (hidden 256, intermediate 512, 4 layers, 4
                         heads of 64, 2 KV heads, tied embeddings), a byte-level BPE
                         tokenizer.json of 512 tokens trained here (SmolLM-style pre-tokenizer:
                         Digits + ByteLevel, a TemplateProcessing that adds <|im_start|>),
                         tokenizer_config.json with a chat template
  check SRC GGUF TYPE [GGUF TYPE...]
                         reads each GGUF with the gguf package and checks it against the Hugging Face
                         folder SRC: architecture metadata, tokenizer metadata, each tensor's
                         name, shape and type (llama.cpp's llama-quantize rules, written out
                         below) and its values after gguf's dequantization against the source
                         (llama q/k rows permuted as llama.cpp's converter does, with numpy's
                         reshape/swapaxes) within the type's expected error
  make-tok-model DIR TOKDIR VOCAB ARCH
                         a one-layer model folder of VOCAB rows around the real tokenizer files
                         in TOKDIR
  nfc-cases SRC DST      the tokenizer cases of SRC (.jsonl) whose text is NFC already
  ref-logits SRC IDS MODEL OUT [MODEL OUT...]
                         float64 logits of each MODEL (the folder SRC itself, or a GGUF made from
                         it: weights dequantized by the gguf package) for the comma-separated IDS,
                         by the plain numpy forward below, written to OUT as float32 [T, V]
  gain TOL A B [A B...]  least-squares gain <A,B>/<B,B> of float32 files A over B within TOL of 1
  logits V A B TOL [A B TOL...]
                         float32 logits files of rows of V: per-row relative L2 error of A
                         against B below TOL
"""
import json
import os
import struct
import sys

import numpy as np

# ---------------------------------------------------------------- synthetic model


def bytes_to_unicode():
    """GPT-2's byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


CORPUS = (
    "the quick brown fox jumps over the lazy dog. the capital of france is paris. "
    "there are 12 months and 365 days in a year; the weather is nice in the spring. "
    "a model reads the text and writes the answer, then the user asks another question. "
)


def corpus():
    """CORPUS plus pseudo-words from a fixed syllable list: enough distinct pairs to merge."""
    syl = ["ka", "to", "ri", "mé", "sun", "de", "lo", "fa", "ne", "qui", "bra", "ex", "or", "zu"]
    rng = np.random.default_rng(7)
    words = [
        "".join(syl[k] for k in rng.integers(0, len(syl), size=int(rng.integers(1, 4))))
        for _ in range(3000)
    ]
    return CORPUS + " ".join(words)


def train_bpe(n_merges):
    b2u = bytes_to_unicode()
    words = []
    for i, w in enumerate(corpus().split(" ")):
        if not w:
            continue
        text = (" " if i else "") + w
        words.append([b2u[b] for b in text.encode()])
    merges = []
    for _ in range(n_merges):
        counts = {}
        for w in words:
            for a, b in zip(w, w[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        (a, b), _ = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append((a, b))
        for w in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == a and w[i + 1] == b:
                    w[i : i + 2] = [a + b]
                else:
                    i += 1
    return b2u, merges


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def make_model(out):
    os.makedirs(out, exist_ok=True)
    C, F, L, H, KV, D, V = 256, 512, 4, 4, 2, 64, 512
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": C,
        "intermediate_size": F,
        "num_hidden_layers": L,
        "num_attention_heads": H,
        "num_key_value_heads": KV,
        "head_dim": D,
        "vocab_size": V,
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
    }
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)
    rng = np.random.default_rng(1234)
    t = {"model.embed_tokens.weight": rng.normal(0, 0.5, (V, C)), "model.norm.weight": 1 + 0.1 * rng.normal(size=C)}
    for i in range(L):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = 1 + 0.1 * rng.normal(size=C)
        t[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rng.normal(size=C)
        t[p + "self_attn.q_proj.weight"] = rng.normal(0, 0.08, (H * D, C))
        t[p + "self_attn.k_proj.weight"] = rng.normal(0, 0.08, (KV * D, C))
        t[p + "self_attn.v_proj.weight"] = rng.normal(0, 0.08, (KV * D, C))
        t[p + "self_attn.o_proj.weight"] = rng.normal(0, 0.06, (C, H * D))
        t[p + "mlp.gate_proj.weight"] = rng.normal(0, 0.06, (F, C))
        t[p + "mlp.up_proj.weight"] = rng.normal(0, 0.06, (F, C))
        t[p + "mlp.down_proj.weight"] = rng.normal(0, 0.04, (C, F))
    write_safetensors(os.path.join(out, "model.safetensors"), t)

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    b2u, merges = train_bpe(V - 256 - len(specials))
    vocab = {}
    for s in specials:
        vocab[s] = len(vocab)
    for b in range(256):
        vocab[b2u[b]] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    assert len(vocab) == V, len(vocab)
    added = [
        {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, s in enumerate(specials)
    ]
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            ],
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]}},
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [[a, b] for a, b in merges],
        },
    }
    json.dump(tok, open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8"), ensure_ascii=False)
    tcfg = {
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|im_start|>assistant\\n' }}{% endif %}",
    }
    json.dump(tcfg, open(os.path.join(out, "tokenizer_config.json"), "w"), indent=1)


def make_tok_model(out, tokdir, vocab, arch):
    """A one-layer model of `vocab` embedding rows around a real tokenizer folder (for the
    tokenizer conversion; the weights are random and irrelevant)."""
    os.makedirs(out, exist_ok=True)
    C, F, H, D = 32, 64, 2, 16
    cfg = {"architectures": [arch], "hidden_size": C, "intermediate_size": F, "num_hidden_layers": 1,
           "num_attention_heads": H, "num_key_value_heads": 1, "head_dim": D, "vocab_size": vocab,
           "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 1e6,
           "tie_word_embeddings": True, "eos_token_id": 0, "hidden_act": "silu"}
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"))
    rng = np.random.default_rng(0)
    p = "model.layers.0."
    t = {"model.embed_tokens.weight": rng.normal(0, 0.1, (vocab, C)), "model.norm.weight": np.ones(C),
         p + "input_layernorm.weight": np.ones(C), p + "post_attention_layernorm.weight": np.ones(C),
         p + "self_attn.q_proj.weight": rng.normal(0, 0.1, (H * D, C)),
         p + "self_attn.k_proj.weight": rng.normal(0, 0.1, (D, C)),
         p + "self_attn.v_proj.weight": rng.normal(0, 0.1, (D, C)),
         p + "self_attn.o_proj.weight": rng.normal(0, 0.1, (C, H * D)),
         p + "mlp.gate_proj.weight": rng.normal(0, 0.1, (F, C)),
         p + "mlp.up_proj.weight": rng.normal(0, 0.1, (F, C)),
         p + "mlp.down_proj.weight": rng.normal(0, 0.1, (C, F))}
    if arch == "Qwen3ForCausalLM":
        t[p + "self_attn.q_norm.weight"] = np.ones(D)
        t[p + "self_attn.k_norm.weight"] = np.ones(D)
    write_safetensors(os.path.join(out, "model.safetensors"), t)
    for fn in os.listdir(tokdir):
        with open(os.path.join(tokdir, fn), "rb") as a, open(os.path.join(out, fn), "wb") as b:
            b.write(a.read())


def nfc_cases(src, dst):
    """The cases of a tokenizer .jsonl whose text NFC leaves alone (GGUF has no normalizer)."""
    import unicodedata

    with open(src, encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as g:
        for line in f:
            if unicodedata.normalize("NFC", json.loads(line)["text"]) == json.loads(line)["text"]:
                g.write(line)


# ---------------------------------------------------------------- checks


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dt = {"F32": np.float32, "F16": np.float16}
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        if e["dtype"] == "BF16":
            u = np.frombuffer(data[a:b], dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(data[a:b], dtype=dt[e["dtype"]]).astype(np.float32)
        out[name] = arr.reshape(e["shape"])
    return out


BASE = {"F32": "F32", "F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0", "Q4_0": "Q4_0", "Q4_1": "Q4_1",
        "Q5_0": "Q5_0", "Q5_1": "Q5_1", "Q4_K": "Q4_K", "Q5_K": "Q5_K", "Q6_K": "Q6_K",
        "Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K"}
BLOCK = {"F32": 1, "F16": 1, "BF16": 1, "Q8_0": 32, "Q4_0": 32, "Q4_1": 32, "Q5_0": 32, "Q5_1": 32,
         "Q4_K": 256, "Q5_K": 256, "Q6_K": 256}
# expected relative RMS error of one tensor's values for random data (about twice the
# quantization noise of a block-scaled uniform quantizer with that many levels)
TOL = {"F32": 1e-7, "F16": 1e-3, "BF16": 6e-3, "Q8_0": 1.2e-2, "Q6_K": 3.5e-2, "Q5_0": 7e-2,
       "Q5_1": 6e-2, "Q5_K": 6e-2, "Q4_0": 0.14, "Q4_1": 0.12, "Q4_K": 0.12}


def expected_type(name, shape, ttype, n_layers, has_output):
    """llama.cpp's llama_tensor_get_type for the types ferrum writes (non-pure mode)."""
    if len(shape) < 2 or not name.endswith("weight") or "_norm.weight" in name:
        return "F32"
    base = BASE[ttype]
    if base in ("F32", "F16", "BF16"):
        return base
    cols = shape[-1]
    t = base
    if name == "output.weight" or (not has_output and name == "token_embd.weight"):
        if cols % BLOCK[base]:
            t = "Q8_0"
        elif base != "Q8_0":
            t = "Q6_K"
    elif ttype in ("Q4_K_M", "Q5_K_M") and (name.endswith(".attn_v.weight") or name.endswith(".ffn_down.weight")):
        i, n = int(name.split(".")[1]), n_layers
        if i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2:
            t = "Q6_K"
    if cols % BLOCK[t]:
        t = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}.get(t, "F16")
        if cols % BLOCK[t]:
            t = "F16"
    return t


HF_OF = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
LAYER = {
    "attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias", "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight", "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight", "ffn_down.weight": "mlp.down_proj.weight",
}


def hf_name(gname):
    if gname in HF_OF:
        return HF_OF[gname]
    _, i, rest = gname.split(".", 2)
    return f"model.layers.{i}.{LAYER[rest]}"


def llama_permute(w, n_head):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def field(r, key):
    f = r.fields.get(key)
    return None if f is None else f.contents()


def check(src, path, ttype):
    import gguf

    cfg = json.load(open(os.path.join(src, "config.json")))
    r = gguf.GGUFReader(path)
    fails = []

    def expect(cond, msg):
        if not cond:
            fails.append(msg)

    arch = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2",
            "Qwen3ForCausalLM": "qwen3"}[cfg["architectures"][0]]
    H, KV = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    D = cfg.get("head_dim") or cfg["hidden_size"] // H
    L = cfg["num_hidden_layers"]
    expect(field(r, "general.architecture") == arch, "general.architecture")
    for key, want in (("block_count", L), ("embedding_length", cfg["hidden_size"]),
                      ("feed_forward_length", cfg["intermediate_size"]), ("attention.head_count", H),
                      ("attention.head_count_kv", KV), ("attention.key_length", D),
                      ("context_length", cfg["max_position_embeddings"])):
        expect(field(r, f"{arch}.{key}") == want, f"{arch}.{key} = {field(r, f'{arch}.{key}')}, want {want}")
    eps = field(r, f"{arch}.attention.layer_norm_rms_epsilon")
    expect(eps is not None and abs(eps - cfg["rms_norm_eps"]) <= 1e-7 * cfg["rms_norm_eps"], "eps")
    theta = cfg.get("rope_theta", (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    expect(abs(field(r, f"{arch}.rope.freq_base") - theta) <= 1e-6 * theta, "rope.freq_base")

    # tokenizer metadata against tokenizer.json / tokenizer_config.json
    tj_path = os.path.join(src, "tokenizer.json")
    if os.path.exists(tj_path):
        tj = json.load(open(tj_path, encoding="utf-8"))
        tc = json.load(open(os.path.join(src, "tokenizer_config.json")))
        V = cfg["vocab_size"]
        toks = field(r, "tokenizer.ggml.tokens")
        types = field(r, "tokenizer.ggml.token_type")
        expect(field(r, "tokenizer.ggml.model") == "gpt2", "tokenizer.ggml.model")
        expect(field(r, "tokenizer.ggml.pre") == "smollm", f"tokenizer.ggml.pre = {field(r, 'tokenizer.ggml.pre')}")
        expect(toks is not None and len(toks) == V, "token count")
        inv = {i: t for t, i in tj["model"]["vocab"].items()}
        for a in tj["added_tokens"]:
            inv[a["id"]] = a["content"]
        special = {a["id"] for a in tj["added_tokens"] if a["special"]}
        for i in range(V):
            want_t = inv.get(i, f"[PAD{i}]")
            want_y = 3 if i in special else (1 if i in inv else 5)
            if toks[i] != want_t or types[i] != want_y:
                fails.append(f"token {i}: {toks[i]!r}/{types[i]} want {want_t!r}/{want_y}")
                break
        merges = [" ".join(m) if isinstance(m, list) else m for m in tj["model"]["merges"]]
        expect(field(r, "tokenizer.ggml.merges") == merges, "merges")
        vid = {t: i for i, t in inv.items()}
        expect(field(r, "tokenizer.ggml.bos_token_id") == vid[tc["bos_token"]], "bos id")
        expect(field(r, "tokenizer.ggml.eos_token_id") == vid[tc["eos_token"]], "eos id")
        expect(field(r, "tokenizer.ggml.padding_token_id") == vid[tc["pad_token"]], "pad id")
        expect(field(r, "tokenizer.ggml.add_bos_token") is True, "add_bos_token")
        expect(field(r, "tokenizer.chat_template") == tc["chat_template"], "chat template")

    # tensors
    hf = {}
    for fn in sorted(os.listdir(src)):
        if fn.endswith(".safetensors"):
            hf.update(read_safetensors(os.path.join(src, fn)))
    names = [t.name for t in r.tensors]
    has_output = "output.weight" in names
    tied = cfg.get("tie_word_embeddings", False)
    want_names = {"token_embd.weight", "output_norm.weight"} | ({"output.weight"} if not tied else set())
    for n in hf:
        if n.startswith("model.layers."):
            i, rest = n[len("model.layers."):].split(".", 1)
            g = {v: k for k, v in LAYER.items()}[rest]
            want_names.add(f"blk.{i}.{g}")
    rope = (cfg.get("rope_parameters") or cfg.get("rope_scaling") or {})
    if rope.get("rope_type") == "llama3":
        want_names.add("rope_freqs.weight")
    expect(set(names) == want_names, f"tensor names differ: {sorted(set(names) ^ want_names)}")
    worst = {}
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape)][: len(t.shape)]
        tname = t.tensor_type.name
        if t.name == "rope_freqs.weight":
            # llama3 frequency divisors, computed plainly from the config
            base = rope.get("rope_theta", theta)
            freqs = 1.0 / base ** (np.arange(0, D, 2) / D)
            old = rope["original_max_position_embeddings"]
            lo, hi, fac = rope["low_freq_factor"], rope["high_freq_factor"], rope["factor"]
            want = []
            for f in freqs:
                wl = 2 * np.pi / f
                if wl < old / hi:
                    want.append(1.0)
                elif wl > old / lo:
                    want.append(fac)
                else:
                    s = (old / wl - lo) / (hi - lo)
                    want.append(1 / ((1 - s) / fac + s))
            got = np.asarray(t.data, dtype=np.float32)
            expect(tname == "F32" and np.allclose(got, want, rtol=1e-6), f"rope_freqs {got} vs {want}")
            continue
        want_type = expected_type(t.name, shape, ttype, L, has_output)
        expect(tname == want_type, f"{t.name}: type {tname}, expected {want_type}")
        src_w = hf[hf_name(t.name)].astype(np.float64)
        if arch == "llama" and (".attn_q." in t.name or ".attn_k." in t.name):
            src_w = llama_permute(src_w, H if ".attn_q." in t.name else KV)
        expect(list(src_w.shape) == shape, f"{t.name}: shape {shape} vs {list(src_w.shape)}")
        got = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape(src_w.shape)
        err = np.sqrt(np.mean((got - src_w) ** 2)) / max(np.sqrt(np.mean(src_w ** 2)), 1e-30)
        worst[tname] = max(worst.get(tname, 0.0), err)
        expect(err <= TOL[tname], f"{t.name} ({tname}): relative RMS error {err:.3g} > {TOL[tname]}")
    print(f"  {os.path.basename(path)}: worst relative RMS error by type "
          + ", ".join(f"{k} {v:.2e}" for k, v in sorted(worst.items())))
    for f in fails:
        print("FAIL:", f, file=sys.stderr)
    return 1 if fails else 0


# ---------------------------------------------------------------- float64 reference forward

def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def inv_freqs(cfg, D):
    """RoPE frequencies as transformers computes them, llama3 scaling included: in float32, as
    there (float64 frequencies move the logits by ~1e-6 relative at position 23)."""
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
    inv = np.float32(1.0) / np.float32(theta) ** (np.arange(0, D, 2).astype(np.float32) / np.float32(D))
    if rope.get("rope_type") == "llama3":
        old, lo, hi, fac = (rope["original_max_position_embeddings"], rope["low_freq_factor"],
                            rope["high_freq_factor"], rope["factor"])
        wl = 2 * np.pi / inv
        smooth = (old / wl - lo) / (hi - lo)
        scaled = np.where(wl > old / lo, inv / fac, inv)
        medium = (wl >= old / hi) & (wl <= old / lo)
        inv = np.where(medium, (1 - smooth) * inv / fac + smooth * inv, scaled)
    return inv.astype(np.float32)


def forward(cfg, W, ids):
    """Logits [T, V] in float64 of a Qwen3 / Qwen2 / Llama / Mistral decoder, written from the
    transformers modelling code's definitions (RMSNorm, rotate-half RoPE, GQA, causal mask with
    sliding window, SwiGLU); W maps Hugging Face tensor names to float64 arrays."""
    H, C = cfg["num_attention_heads"], cfg["hidden_size"]
    KV = cfg.get("num_key_value_heads", H)
    D = cfg.get("head_dim") or C // H
    eps = cfg["rms_norm_eps"]
    T = len(ids)
    window = cfg.get("sliding_window") if cfg.get("use_sliding_window", True) else None
    # angles, cos and sin in float32, as transformers' rotary embedding computes them
    ang = np.outer(np.arange(T, dtype=np.float32), inv_freqs(cfg, D))
    cos = np.concatenate([np.cos(ang)] * 2, axis=1)[:, None, :].astype(np.float64)
    sin = np.concatenate([np.sin(ang)] * 2, axis=1)[:, None, :].astype(np.float64)

    def rope(x):  # [T, heads, D]
        rot = np.concatenate([-x[..., D // 2:], x[..., : D // 2]], axis=-1)
        return x * cos + rot * sin

    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    allowed = j <= i
    if window:
        allowed &= i - j < window
    x = W["model.embed_tokens.weight"][ids]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        proj = {}
        for n in "qkv":
            y = h @ W[p + f"self_attn.{n}_proj.weight"].T
            if p + f"self_attn.{n}_proj.bias" in W:
                y = y + W[p + f"self_attn.{n}_proj.bias"]
            proj[n] = y.reshape(T, -1, D)
        q, k, v = proj["q"], proj["k"], proj["v"]
        if p + "self_attn.q_norm.weight" in W:
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q), rope(k)
        out = np.empty((T, H, D))
        for hd in range(H):
            kh = hd // (H // KV)
            sc = (q[:, hd, :] @ k[:, kh, :].T) / np.sqrt(D)
            sc = np.where(allowed, sc, -np.inf)
            pr = np.exp(sc - sc.max(axis=1, keepdims=True))
            pr /= pr.sum(axis=1, keepdims=True)
            out[:, hd, :] = pr @ v[:, kh, :]
        x = x + out.reshape(T, H * D) @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ W[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return x @ head.T


def folder_weights(src):
    W = {}
    for fn in sorted(os.listdir(src)):
        if fn.endswith(".safetensors"):
            W.update({k: v.astype(np.float64) for k, v in read_safetensors(os.path.join(src, fn)).items()})
    return W


def gguf_weights(cfg, path):
    """The GGUF's tensors dequantized by the gguf package, under their Hugging Face names and
    layouts (llama q/k rows un-permuted)."""
    import gguf

    arch = cfg["architectures"][0]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    W = {}
    for t in gguf.GGUFReader(path).tensors:
        if t.name == "rope_freqs.weight":
            continue
        shape = [int(d) for d in reversed(t.shape)][: len(t.shape)]
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)
        if arch in ("LlamaForCausalLM", "MistralForCausalLM") and (".attn_q." in t.name or ".attn_k." in t.name):
            n = H if ".attn_q." in t.name else KV
            w = w.reshape(n, w.shape[0] // n // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
        W[hf_name(t.name)] = w
    return W


def ref_logits(src, ids, pairs):
    """float64 logits of each MODEL (SRC itself, or a GGUF made from SRC) for ids, written to its
    OUT as float32."""
    cfg = json.load(open(os.path.join(src, "config.json")))
    for model, out in zip(pairs[::2], pairs[1::2]):
        W = folder_weights(src) if model == src else gguf_weights(cfg, model)
        forward(cfg, W, [int(i) for i in ids.split(",")]).astype("<f4").tofile(out)


def logits(a, b, tol, V):
    x = np.fromfile(a, dtype=np.float32)
    y = np.fromfile(b, dtype=np.float32)
    if x.shape != y.shape or x.size == 0:
        print(f"FAIL: {a}: {x.size} floats vs {y.size}", file=sys.stderr)
        return 1
    x = x.reshape(-1, V).astype(np.float64)
    y = y.reshape(-1, V).astype(np.float64)
    rel = np.linalg.norm(x - y, axis=1) / np.linalg.norm(y, axis=1)
    print(f"  {os.path.basename(a)}: logits relative L2 error max {rel.max():.3g} (tolerance {tol})")
    if not (rel <= float(tol)).all():
        print(f"FAIL: {a}: logits error {rel.max():.3g} > {tol}", file=sys.stderr)
        return 1
    return 0


def gain(a, b, tol):
    """Least-squares gain of A over B (<a,b>/<b,b>): 8-bit activation rounding is noise of either
    sign, so it leaves the gain near 1 while a scale error of any quantized matmul moves it."""
    x = np.fromfile(a, dtype=np.float32).astype(np.float64)
    y = np.fromfile(b, dtype=np.float32).astype(np.float64)
    if x.shape != y.shape or x.size == 0:
        print(f"FAIL: {a}: {x.size} floats vs {y.size}", file=sys.stderr)
        return 1
    g = float(x @ y / (y @ y))
    print(f"  {os.path.basename(a)}: gain over the reference {g:.5f} (tolerance 1 +- {tol})")
    if not abs(g - 1.0) <= float(tol):
        print(f"FAIL: {a}: gain {g:.5f} is not within {tol} of 1", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "make-model":
        make_model(args[0])
        sys.exit(0)
    if cmd == "make-tok-model":  # DIR TOKENIZER_DIR VOCAB ARCH
        make_tok_model(args[0], args[1], int(args[2]), args[3])
        sys.exit(0)
    if cmd == "nfc-cases":  # SRC.jsonl DST.jsonl
        nfc_cases(args[0], args[1])
        sys.exit(0)
    if cmd == "check":  # SRC GGUF TYPE [GGUF TYPE ...]
        bad = sum(check(args[0], args[i], args[i + 1]) for i in range(1, len(args), 2))
        sys.exit(1 if bad else 0)
    if cmd == "ref-logits":  # SRC IDS MODEL OUT [MODEL OUT ...]
        ref_logits(args[0], args[1], args[2:])
        sys.exit(0)
    if cmd == "gain":  # TOL A B [A B ...]
        bad = sum(gain(args[i], args[i + 1], args[0]) for i in range(1, len(args), 2))
        sys.exit(1 if bad else 0)
    if cmd == "logits":  # VOCAB A B TOL [A B TOL ...]
        bad = sum(logits(args[i], args[i + 1], args[i + 2], int(args[0])) for i in range(1, len(args), 3))
        sys.exit(1 if bad else 0)
    sys.exit(f"unknown command {cmd}")
