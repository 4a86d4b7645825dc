#!/usr/bin/env python3
"""Reference data for tests/test_real_model.sh, made by Hugging Face transformers loading the
default model GGUF (SmolLM2-135M-Instruct.Q4_1.gguf, see scripts/get-default-model.sh) itself:
transformers dequantizes the GGUF weights (through the `gguf` package) and undoes llama.cpp's
Q/K row permutation; everything is then computed in float64 with eager attention.

Writes into OUT_DIR (default tests/data):
  smollm2-ref.json         prompt ids and the positions kept, tokenizer cases (text -> ids, with
                           and without special tokens), the chat prompt the GGUF's chat template
                           renders, its ids, the greedy answer (ids and text) and the smallest
                           top-1/top-2 logit gap met on the way, library versions
  smollm2-ref.logits.f32   float32 little-endian logits [len(positions), vocab] of the prompt

Needs torch, transformers, accelerate and gguf (pip install torch transformers accelerate gguf).
On a machine without network, carry the wheels. Run from the repository root:
    python3 scripts/make-smollm2-ref.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import argparse
import json
import os
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--out", default="tests/data")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()

    import gguf
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(args.model))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # transformers >= 5.25 keeps GGUF weights packed and multiplies in float32 unless asked to
    # dequantize; the reference must be float64 throughout
    extra = {}
    if hasattr(transformers, "GgufConfig"):
        extra["quantization_config"] = transformers.GgufConfig(dequantize=True)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float64, attn_implementation="eager", **extra
    )
    model.eval()

    def logits_of(ids):
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0].numpy()

    # ---- logits of a plain prompt, every position kept (2.5 MB: an error at any one position,
    # e.g. a RoPE or mask mistake that only shows past some length, is caught)
    prompt = "The capital of France is Paris, and the capital of Germany is"
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    full = logits_of(prompt_ids)
    n = len(prompt_ids)
    positions = list(range(n))
    kept = full[positions].astype(np.float32)
    os.makedirs(args.out, exist_ok=True)
    kept.tofile(os.path.join(args.out, "smollm2-ref.logits.f32"))

    # ---- tokenizer cases
    texts = [
        "Hello world",
        "What is 12345 + 678?",
        "  leading spaces,\ttabs\n\nand newlines  ",
        "<|im_start|>user\nHi there<|im_end|>\n",
        "Ünïcödé — “quotes” 日本語 🙂",
        "don't you're I'll we've",
    ]
    cases = [
        {
            "text": t,
            "ids": tok(t, add_special_tokens=False)["input_ids"],
            "ids_special": tok(t, add_special_tokens=True)["input_ids"],
        }
        for t in texts
    ]

    # ---- greedy chat answer
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    chat_prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    chat_ids = tok(chat_prompt, add_special_tokens=False)["input_ids"]
    eos = model.config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    ids = list(chat_ids)
    answer, min_gap = [], float("inf")
    for _ in range(args.max_new_tokens):
        row = logits_of(ids)[-1]
        top2 = np.sort(row)[-2:]
        min_gap = min(min_gap, float(top2[1] - top2[0]))
        nxt = int(np.argmax(row))
        answer.append(nxt)
        ids.append(nxt)
        if nxt in eos:
            break

    ref = {
        "model": os.path.basename(args.model),
        "made_by": "scripts/make-smollm2-ref.py",
        "versions": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "gguf": getattr(gguf, "__version__", "?"),
        },
        "compute": "float64, eager attention, weights dequantized by transformers from the GGUF",
        "vocab": int(full.shape[1]),
        "prompt": prompt,
        "prompt_ids": prompt_ids,
        "positions": positions,
        "logits_file": "smollm2-ref.logits.f32",
        "tokenizer_cases": cases,
        "chat": {
            "messages": messages,
            "prompt": chat_prompt,
            "prompt_ids": chat_ids,
            "answer_ids": answer,
            "answer_text": tok.decode(answer, skip_special_tokens=True),
            "stopped_at_eos": bool(answer and answer[-1] in eos),
            "min_top2_gap": min_gap,
        },
    }
    with open(os.path.join(args.out, "smollm2-ref.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(json.dumps(ref["chat"], ensure_ascii=False), file=sys.stderr)


if __name__ == "__main__":
    main()
