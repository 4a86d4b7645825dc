#!/usr/bin/env python3
"""Makes and checks the Hugging Face references under tests/data/fixtures.

    python3 scripts/gen_fixtures.py check              recompute every reference from the committed
                                                       models and tokenizers, compare with the
                                                       committed files; exit 1 on any difference
    python3 scripts/gen_fixtures.py refs [NAME...]     rewrite refs/NAME.* from models/NAME (prompt
                                                       ids kept from the existing refs/NAME.json)
    python3 scripts/gen_fixtures.py models [NAME...]   make NEW random models/NAME (overwrites the
                                                       weights, so every test's expectations move),
                                                       then their refs with new random prompts
    python3 scripts/gen_fixtures.py tokenizer          rewrite the ids / decoded text of
                                                       tokenizer/{qwen3,llama3}.jsonl for the texts
                                                       already there, and qwen3-chat.json's renders

Needs torch, transformers and tokenizers (PyPI). What is stored, per model NAME:
  models/NAME/        config.json, generation_config.json, model.safetensors (random weights)
  refs/NAME.json      prompt_ids (24 random ids), greedy_ids (16 greedy steps after the prompt),
                      min_top2_gap (smallest top-1 minus top-2 logit over those greedy steps: how
                      close a greedy choice came to a tie), logits_shape [T, V], hidden_shape
                      [n_layers+1, T, C]
  refs/NAME.logits.f32  the prompt's logits [T, V], little-endian float32
  refs/NAME.hidden.f32  hidden states [n_layers+1, T, C]: [0] the embedding output, [i] layer i's
                        output, the last one after the final norm (transformers' hidden_states)
All computed in float64 by transformers with eager attention from the stored (rounded) weights;
the greedy steps run the whole sequence again each step, so no cache shortcut enters the float64
result. Checked on 2026-12-08 with torch 2.15.0 and transformers 5.25.0: `check` reproduces the
committed logits and hidden states bit for bit, the greedy ids exactly and min_top2_gap to 1e-12.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")
FIXTURES = os.path.join(DATA, "fixtures")
TOKENIZERS = os.path.join(DATA, "tokenizers")

N_PROMPT, N_GREEDY = 24, 16

# Every fixture is 2 layers, 64 wide, 4 query heads over 2 kv heads, a 512-token vocabulary; each
# differs in what the decoder must get right.
COMMON = dict(vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              hidden_act="silu")
MODELS = {
    # tied embeddings, q/k norms, head_dim 32 (wider than hidden / heads)
    "qwen3-tiny": dict(model_type="qwen3", dtype="float32", seed=1,
                       fields=dict(head_dim=32, tie_word_embeddings=True, rms_norm_eps=1e-6,
                                   rope_theta=1000000.0)),
    # the same family with bf16 weights and an untied head
    "qwen3-tiny-bf16": dict(model_type="qwen3", dtype="bfloat16", seed=2,
                            fields=dict(head_dim=32, tie_word_embeddings=False, rms_norm_eps=1e-6,
                                        rope_theta=1000000.0)),
    # Llama 3 RoPE frequency scaling (factor 8 over an original context of 32), f16 weights
    "llama3-tiny-f16": dict(model_type="llama", dtype="float16", seed=3,
                            fields=dict(head_dim=16, tie_word_embeddings=False, rms_norm_eps=1e-5,
                                        bos_token_id=1, eos_token_id=2,
                                        rope_scaling=dict(rope_type="llama3", factor=8.0,
                                                          low_freq_factor=1.0, high_freq_factor=4.0,
                                                          original_max_position_embeddings=32),
                                        rope_theta=500000.0)),
    # q/k/v biases
    "qwen2-tiny": dict(model_type="qwen2", dtype="float32", seed=4,
                       fields=dict(tie_word_embeddings=False, rms_norm_eps=1e-6,
                                   rope_theta=1000000.0)),
    # a sliding window of 6 keys, shorter than the 24-token prompt
    "mistral-tiny-swa": dict(model_type="mistral", dtype="float32", seed=5,
                             fields=dict(head_dim=16, tie_word_embeddings=False, rms_norm_eps=1e-6,
                                         sliding_window=6, bos_token_id=1, eos_token_id=2,
                                         rope_theta=10000.0)),
}

NOTE = ("logits/hidden computed in float64 by HF transformers (eager attention) from the stored "
        "weights; hidden[0] is the embedding output, hidden[i] the output of layer i (last one "
        "after final norm)")


def make_model(name, out):
    """Random weights around 0.35 (so that logits spread over several units, not a near-uniform
    distribution whose greedy choices would be ties), norm weights around 1, biases around 0."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    spec = MODELS[name]
    fields = dict(COMMON, **spec["fields"])
    cfg = AutoConfig.for_model(spec["model_type"], **fields)
    cfg.architectures = [type(AutoModelForCausalLM.from_config(cfg)).__name__]
    torch.manual_seed(spec["seed"])
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.normal_(0.0, 0.1)
            else:
                p.normal_(0.0, 0.35)
    model = model.to(getattr(torch, spec["dtype"]))
    model.save_pretrained(out, safe_serialization=True)
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, {spec['dtype']}, "
          f"written to {out}")


def compute_refs(name, prompt_ids=None):
    """Returns (json dict, logits float64 [T,V], hidden float64 [L+1,T,C])."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM
    model_dir = os.path.join(FIXTURES, "models", name)
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        stored_dtype = json.load(f).get("dtype") or MODELS[name]["dtype"]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64,
                                                 attn_implementation="eager")
    model.eval()
    V = model.config.vocab_size
    if prompt_ids is None:
        g = np.random.default_rng(MODELS[name]["seed"])
        prompt_ids = [int(x) for x in g.integers(3, V, N_PROMPT)]
    with torch.no_grad():
        out = model(torch.tensor([prompt_ids]), output_hidden_states=True)
        logits = out.logits[0].numpy()
        hidden = np.stack([h[0].numpy() for h in out.hidden_states])
        seq, greedy, gap = list(prompt_ids), [], float("inf")
        for _ in range(N_GREEDY):
            row = model(torch.tensor([seq])).logits[0, -1].numpy()
            top = np.sort(row)
            gap = min(gap, float(top[-1] - top[-2]))
            nxt = int(np.argmax(row))
            greedy.append(nxt)
            seq.append(nxt)
    meta = {"model": f"models/{name}", "weights_dtype": stored_dtype, "prompt_ids": prompt_ids,
            "greedy_ids": greedy, "min_top2_gap": gap, "logits_shape": list(logits.shape),
            "hidden_shape": list(hidden.shape), "note": NOTE}
    return meta, logits, hidden


def ref_paths(name):
    base = os.path.join(FIXTURES, "refs", name)
    return base + ".json", base + ".logits.f32", base + ".hidden.f32"


def write_refs(name, meta, logits, hidden):
    pj, pl, ph = ref_paths(name)
    with open(pj, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    logits.astype("<f4").tofile(pl)
    hidden.astype("<f4").tofile(ph)
    print(f"{name}: refs written (greedy {meta['greedy_ids'][:4]}..., gap {meta['min_top2_gap']:.4g})")


def check_refs(name):
    import numpy as np
    pj, pl, ph = ref_paths(name)
    with open(pj, encoding="utf-8") as f:
        old = json.load(f)
    meta, logits, hidden = compute_refs(name, old["prompt_ids"])
    problems = []
    for key in ("model", "weights_dtype", "greedy_ids", "logits_shape", "hidden_shape"):
        if old.get(key) != meta[key]:
            problems.append(f"{key}: committed {old.get(key)}, recomputed {meta[key]}")
    if abs(old["min_top2_gap"] - meta["min_top2_gap"]) > 1e-12:
        problems.append(f"min_top2_gap: committed {old['min_top2_gap']}, recomputed {meta['min_top2_gap']}")
    for path, arr in ((pl, logits), (ph, hidden)):
        got = np.fromfile(path, dtype="<f4")
        want = arr.astype("<f4").ravel()
        if got.shape != want.shape:
            problems.append(f"{os.path.basename(path)}: {got.size} floats, recomputed {want.size}")
        elif not np.array_equal(got, want):
            problems.append(f"{os.path.basename(path)}: max difference {np.abs(got - want).max():.3g}")
    print(f"{name}: " + ("refs reproduced exactly" if not problems else "DIFFERS: " + "; ".join(problems)))
    return not problems


def tokenizer_cases(name):
    """The jsonl cases of tokenizer/NAME.jsonl recomputed by HF tokenizers from their texts:
    ids without and with special tokens (the Llama 3 BOS), and the decode of ids (special tokens
    kept). Returns (committed lines, recomputed lines) as dicts."""
    import lzma
    from tokenizers import Tokenizer
    with lzma.open(os.path.join(TOKENIZERS, name, "tokenizer.json.xz"), "rt", encoding="utf-8") as f:
        tok = Tokenizer.from_str(f.read())
    path = os.path.join(FIXTURES, "tokenizer", name + ".jsonl")
    with open(path, encoding="utf-8") as f:
        old = [json.loads(line) for line in f if line.strip()]
    new = []
    for case in old:
        ids = tok.encode(case["text"], add_special_tokens=False).ids
        new.append({"text": case["text"], "ids": ids,
                    "ids_with_special": tok.encode(case["text"], add_special_tokens=True).ids,
                    "decoded": tok.decode(ids, skip_special_tokens=False)})
    return path, old, new


def chat_cases():
    """qwen3-chat.json re-rendered by transformers' apply_chat_template (the real Qwen3 template,
    with and without enable_thinking)."""
    import shutil
    import tempfile
    import lzma
    from transformers import AutoTokenizer
    path = os.path.join(FIXTURES, "tokenizer", "qwen3-chat.json")
    with open(path, encoding="utf-8") as f:
        old = json.load(f)
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(TOKENIZERS, "qwen3")
        with lzma.open(os.path.join(src, "tokenizer.json.xz")) as fin, \
                open(os.path.join(d, "tokenizer.json"), "wb") as fout:
            shutil.copyfileobj(fin, fout)
        shutil.copy(os.path.join(src, "tokenizer_config.json"), d)
        tok = AutoTokenizer.from_pretrained(d)
        new = []
        for case in old:
            rendered = tok.apply_chat_template(case["messages"], tokenize=False,
                                               add_generation_prompt=case["add_generation_prompt"],
                                               enable_thinking=case["enable_thinking"])
            new.append(dict(case, rendered=rendered))
    return path, old, new


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["check", "refs", "models", "tokenizer"])
    ap.add_argument("names", nargs="*", help="fixture models (default: all five)")
    a = ap.parse_args()
    names = a.names or list(MODELS)
    for n in names:
        if n not in MODELS:
            sys.exit(f"unknown fixture model {n!r} (known: {', '.join(MODELS)})")
    if a.command == "check":
        ok = all([check_refs(n) for n in names])
        for tname in ("qwen3", "llama3"):
            path, old, new = tokenizer_cases(tname)
            bad = sum(o != n for o, n in zip(old, new))
            print(f"{os.path.basename(path)}: {len(old) - bad}/{len(old)} cases reproduced")
            ok = ok and bad == 0
        path, old, new = chat_cases()
        bad = sum(o != n for o, n in zip(old, new))
        print(f"{os.path.basename(path)}: {len(old) - bad}/{len(old)} renders reproduced")
        ok = ok and bad == 0
        sys.exit(0 if ok else 1)
    if a.command == "models":
        for n in names:
            make_model(n, os.path.join(FIXTURES, "models", n))
            write_refs(n, *compute_refs(n))
    elif a.command == "refs":
        for n in names:
            pj = ref_paths(n)[0]
            prompt = None
            if os.path.exists(pj):
                with open(pj, encoding="utf-8") as f:
                    prompt = json.load(f)["prompt_ids"]
            write_refs(n, *compute_refs(n, prompt))
    elif a.command == "tokenizer":
        for tname in ("qwen3", "llama3"):
            path, _, new = tokenizer_cases(tname)
            with open(path, "w", encoding="utf-8") as f:
                for case in new:
                    f.write(json.dumps(case, ensure_ascii=False) + "\n")
            print(f"wrote {len(new)} cases to {path}")
        path, _, new = chat_cases()
        with open(path, "w", encoding="utf-8") as f:
            json.dump(new, f, ensure_ascii=False, indent=1)
        print(f"wrote {len(new)} renders to {path}")


if __name__ == "__main__":
    main()
