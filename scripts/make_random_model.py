#!/usr/bin/env python3
"""Write a Hugging Face checkpoint with real model shapes and random weights.

For benchmarks: speed does not depend on the weight values, so a random model with the
exact shapes of a published one measures what the published one would. Needs torch and
transformers (both present on the GPU machine). Example:

    python3 scripts/make_random_model.py --preset qwen3-8b --out OUTDIR [--tokenizer-dir DIR]
"""
import argparse, lzma, os, shutil

PRESETS = {
    # architecture, config fields (from the published config.json of each model)
    "qwen3-0.6b": ("qwen3", dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                                 num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True)),
    "qwen3-1.7b": ("qwen3", dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                                 num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True)),
    "qwen3-4b": ("qwen3", dict(vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                               num_attention_heads=32, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True)),
    "qwen3-8b": ("qwen3", dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                               num_attention_heads=32, num_key_value_heads=8, head_dim=128, tie_word_embeddings=False)),
    "llama3-8b": ("llama", dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0,
                                tie_word_embeddings=False, rms_norm_eps=1e-5)),
    "llama3.2-1b": ("llama", dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                  num_attention_heads=32, num_key_value_heads=8, head_dim=64, rope_theta=500000.0,
                                  tie_word_embeddings=True, rms_norm_eps=1e-5,
                                  rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
                                                    high_freq_factor=4.0, original_max_position_embeddings=8192))),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer-dir", help="copy tokenizer.json (or unpack tokenizer.json.xz, as committed "
                    "in tests/data/tokenizers) and tokenizer_config.json from here")
    a = ap.parse_args()
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM, LlamaConfig, LlamaForCausalLM
    arch, fields = PRESETS[a.preset]
    cfg_cls, model_cls = (Qwen3Config, Qwen3ForCausalLM) if arch == "qwen3" else (LlamaConfig, LlamaForCausalLM)
    defaults = dict(rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=40960) if arch == "qwen3" else \
        dict(max_position_embeddings=131072)
    cfg = cfg_cls(**{**defaults, **fields})
    torch.manual_seed(a.seed)
    dtype = getattr(torch, a.dtype)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_default_dtype(dtype)
    with torch.device(dev):
        model = model_cls(cfg)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, 0.02)
    model.save_pretrained(a.out, safe_serialization=True, max_shard_size="4GB")
    if a.tokenizer_dir:
        for f in ("tokenizer.json", "tokenizer_config.json"):
            src = os.path.join(a.tokenizer_dir, f)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(a.out, f))
            elif os.path.exists(src + ".xz"):
                with lzma.open(src + ".xz") as fin, open(os.path.join(a.out, f), "wb") as fout:
                    shutil.copyfileobj(fin, fout)
    n = sum(p.numel() for p in model.parameters())
    print(f"{a.preset}: {n/1e9:.3f} B parameters, {a.dtype}, written to {a.out}")


if __name__ == "__main__":
    main()
