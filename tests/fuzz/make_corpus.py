#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/ (deterministic;
the committed files are this script's output). Python standard library only.

    python3 tests/fuzz/make_corpus.py [--ferrum build/ferrum]

Sources, all in the repository:
  safetensors     tiny random models of each family (config.json NUL generation_config.json NUL
                  model.safetensors), written here, plus the fixture models' headers with the
                  tensor data cut off (tests/data/fixtures/models)
  gguf            the tiny models converted by `ferrum quantize` (F32, F16, Q8_0, Q4_0, Q4_1) when
                  --ferrum is given; without it the gguf corpus is left as it is
  tokenizer_json  the small tokenizers of tests/data/tokenizer_features.json, merges cut to 48
                  (a tokenizer_config naming bos/eos appended to some)
  tokenize        texts of tests/data/tokenizer_features.json's cases and a few scripts
  template        the Qwen3 and Llama 3 chat templates (tests/data/tokenizers/*/tokenizer_config.json)
                  and every snippet of tests/data/jinja_cases.json
  chat_messages   the conversations of tests/data/template_refs.json (messages NUL tools NUL vars)
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def reset(target):
    shutil.rmtree(os.path.join(CORPUS, target), ignore_errors=True)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------- tiny models

FAMILIES = {
    # name: (architectures, model_type, qk_norm, qkv_bias, tied, extra config)
    "qwen3": ("Qwen3ForCausalLM", "qwen3", True, False, True, {}),
    "qwen2": ("Qwen2ForCausalLM", "qwen2", False, True, False, {}),
    "llama": ("LlamaForCausalLM", "llama", False, False, False,
              {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 32}}),
    "mistral": ("MistralForCausalLM", "mistral", False, False, False, {"sliding_window": 3}),
}


def pack(values, dtype):
    if dtype == "F32":
        return struct.pack("<%df" % len(values), *values)
    if dtype == "F16":
        return struct.pack("<%de" % len(values), *values)
    # BF16: the top half of the f32 bits (values here are exact enough that rounding is moot)
    raw = struct.pack("<%df" % len(values), *values)
    return b"".join(raw[i + 2:i + 4] for i in range(0, len(raw), 4))


def tiny_model(family, dtype, hidden, layers, seed):
    arch, mtype, qk_norm, qkv_bias, tied, extra = FAMILIES[family]
    heads, kv_heads, head_dim, inter, vocab = 2, 1, hidden // 2, 2 * hidden, 32
    rng = random.Random(seed)
    cfg = {"architectures": [arch], "model_type": mtype, "hidden_size": hidden,
           "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
           "num_key_value_heads": kv_heads, "head_dim": head_dim, "vocab_size": vocab,
           "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
           "tie_word_embeddings": tied, "bos_token_id": 1, "eos_token_id": 2,
           "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype]}
    cfg.update(extra)
    tensors = {}

    def mat(name, *shape):
        n = 1
        for s in shape:
            n *= s
        tensors[name] = (list(shape), [rng.uniform(-0.2, 0.2) for _ in range(n)])

    def ones(name, n):
        tensors[name] = ([n], [1.0 + rng.uniform(-0.05, 0.05) for _ in range(n)])

    mat("model.embed_tokens.weight", vocab, hidden)
    for i in range(layers):
        p = "model.layers.%d." % i
        ones(p + "input_layernorm.weight", hidden)
        ones(p + "post_attention_layernorm.weight", hidden)
        mat(p + "self_attn.q_proj.weight", heads * head_dim, hidden)
        mat(p + "self_attn.k_proj.weight", kv_heads * head_dim, hidden)
        mat(p + "self_attn.v_proj.weight", kv_heads * head_dim, hidden)
        mat(p + "self_attn.o_proj.weight", hidden, heads * head_dim)
        if qkv_bias:
            mat(p + "self_attn.q_proj.bias", heads * head_dim)
            mat(p + "self_attn.k_proj.bias", kv_heads * head_dim)
            mat(p + "self_attn.v_proj.bias", kv_heads * head_dim)
        if qk_norm:
            ones(p + "self_attn.q_norm.weight", head_dim)
            ones(p + "self_attn.k_norm.weight", head_dim)
        mat(p + "mlp.gate_proj.weight", inter, hidden)
        mat(p + "mlp.up_proj.weight", inter, hidden)
        mat(p + "mlp.down_proj.weight", hidden, inter)
    ones("model.norm.weight", hidden)
    if not tied:
        mat("lm_head.weight", vocab, hidden)
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        shape, values = tensors[name]
        b = pack(values, dtype)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = compact(header).encode()
    h += b" " * (-len(h) % 8)
    st = struct.pack("<Q", len(h)) + h + b"".join(blobs)
    gen = {"bos_token_id": 1, "eos_token_id": [2, 3], "do_sample": True, "temperature": 0.7,
           "top_k": 20, "top_p": 0.8}
    return compact(cfg), st, compact(gen)


def make_safetensors():
    reset("safetensors")
    for i, (family, dtype) in enumerate([("qwen3", "F32"), ("qwen2", "BF16"), ("llama", "F16"),
                                         ("mistral", "F32")]):
        cfg, st, gen = tiny_model(family, dtype, 16, 1, 100 + i)
        put("safetensors", "tiny-%s-%s" % (family, dtype.lower()),
            cfg.encode() + b"\0" + gen.encode() + b"\0" + st)
    # two layers, no generation_config.json
    cfg, st, _ = tiny_model("qwen3", "F16", 16, 2, 200)
    put("safetensors", "tiny-qwen3-2layers", cfg.encode() + b"\0\0" + st)
    # the fixtures' real headers (transformers' output), tensor data cut to 64 bytes
    models = os.path.join(DATA, "fixtures", "models")
    for m in sorted(os.listdir(models)) if os.path.isdir(models) else []:
        d = os.path.join(models, m)
        with open(os.path.join(d, "config.json"), "rb") as f:
            cfg = f.read()
        with open(os.path.join(d, "model.safetensors"), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            f.seek(0)
            head = f.read(8 + n + 64)
        put("safetensors", "fixture-header-" + m, cfg + b"\0\0" + head)


def make_gguf(ferrum):
    reset("gguf")
    work = tempfile.mkdtemp()
    try:
        for i, (family, types) in enumerate([("qwen3", ["F32", "Q8_0"]), ("qwen2", ["Q4_0"]),
                                             ("llama", ["F16", "Q4_1"]),
                                             ("mistral", ["Q8_0"])]):
            cfg, st, gen = tiny_model(family, "F32", 32, 1, 300 + i)
            d = os.path.join(work, family)
            os.makedirs(d)
            for name, data in (("config.json", cfg.encode()), ("model.safetensors", st),
                               ("generation_config.json", gen.encode())):
                with open(os.path.join(d, name), "wb") as f:
                    f.write(data)
            for t in types:
                out = os.path.join(work, "%s-%s.gguf" % (family, t))
                subprocess.run([ferrum, "quantize", d, out, t], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                with open(out, "rb") as f:
                    put("gguf", "tiny-%s-%s" % (family, t.lower()), f.read())
    finally:
        shutil.rmtree(work)


# ---------------------------------------------------------------- tokenizers, text, templates

def make_tokenizer_json():
    reset("tokenizer_json")
    with open(os.path.join(DATA, "tokenizer_features.json"), encoding="utf-8") as f:
        feats = json.load(f)
    for i, t in enumerate(feats):
        # one character-level tokenizer is enough (33 KB each)
        if t["name"].startswith("charlevel") and t["name"] != "charlevel_byte_fallback":
            continue
        # the first merges only: a shorter seed mutates faster, and fewer merges stay valid
        model = t["tokenizer"].get("model") or {}
        if isinstance(model.get("merges"), list):
            model["merges"] = model["merges"][:48]
        tok = compact(t["tokenizer"]).encode()
        if i % 3 == 0:
            tok += b"\0" + compact({"bos_token": "<s>", "eos_token": {"content": "</s>"}}).encode()
        put("tokenizer_json", "%02d-%s" % (i, t["name"].replace("/", "_")), tok)


def make_tokenize():
    reset("tokenize")
    with open(os.path.join(DATA, "tokenizer_features.json"), encoding="utf-8") as f:
        feats = json.load(f)
    texts = set()
    for t in feats:
        for c in t["cases"]:
            if isinstance(c, dict) and isinstance(c.get("text"), str):
                texts.add(c["text"])
    texts |= {
        "Hello, world!", "  two  spaces\n\n\ttab", "don't won't I'm we've 12345678 3.14",
        "caf\u00e9 na\u0131ve \u00c5ngstr\u00f6m A\u030a", "\u4e16\u754c\u4f60\u597d",
        "\U0001F600\U0001F44D\U0001F3FD", "\u0645\u0631\u062d\u0628\u0627",
        "<|im_start|>user\nhi<|im_end|>", "<|begin_of_text|><|eot_id|>x",
        "\u00a0\u2028\u3000 unicode spaces", "a" * 300,
    }
    for i, t in enumerate(sorted(texts)):
        put("tokenize", "%03d" % i, t)
    put("tokenize", "invalid-utf8", b"ok \xff\xfe \xc3( \xed\xa0\x80 \xf4\x90\x80\x80")


def make_template():
    reset("template")
    for m in ("qwen3", "llama3"):
        with open(os.path.join(DATA, "tokenizers", m, "tokenizer_config.json"),
                  encoding="utf-8") as f:
            put("template", "real-" + m, json.load(f)["chat_template"])
    with open(os.path.join(DATA, "jinja_cases.json"), encoding="utf-8") as f:
        cases = json.load(f)
    for c in cases["cases"] + cases["errors"]:
        put("template", "case-" + c["name"], c["template"])


def make_chat_messages():
    reset("chat_messages")
    with open(os.path.join(DATA, "template_refs.json"), encoding="utf-8") as f:
        refs = json.load(f)["cases"]
    for c in refs:
        parts = [c["messages_json"], c.get("tools_json") or ""]
        extra = c.get("extra_json")
        if extra and extra != "{}":
            parts.append(extra)
        elif not c.get("tools_json"):
            parts = parts[:1]
        data = "\0".join(parts).encode()
        # the target reads add_generation_prompt from the low bit of the length
        if bool(len(data) & 1) != bool(c.get("add_generation_prompt")):
            data = b" " + data
        put("chat_messages", "ref-" + hashlib.sha1(data).hexdigest()[:12], data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferrum", help="the built ferrum binary (for the gguf corpus)")
    a = ap.parse_args()
    make_safetensors()
    if a.ferrum:
        make_gguf(a.ferrum)
    make_tokenizer_json()
    make_tokenize()
    make_template()
    make_chat_messages()
    for t in sorted(os.listdir(CORPUS)):
        d = os.path.join(CORPUS, t)
        files = os.listdir(d)
        print("%-16s %4d files %8d bytes" % (t, len(files),
                                               sum(os.path.getsize(os.path.join(d, x)) for x in files)))


if __name__ == "__main__":
    main()
