#!/usr/bin/env python3
"""Writes tokenizer_features.json: small tokenizers built and run by Hugging Face `tokenizers`,
covering the pipeline parts the real Qwen3/Llama 3 files do not use (added-token lstrip/rstrip/
single_word/normalized, Split behaviors and invert, Digits, ByteLevel prefix space and regex,
normalizers, byte fallback, unk, ignore_merges, post-processors). tests/test_tokenizer.c checks
ferrum against it.
    pip install tokenizers && python3 tests/data/gen_tokenizer_features.py
"""
import json
import os

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

CORPUS = ["The quick brown fox jumps over the lazy dog. " * 3,
          "Hello world! hello WORLD 12345 678, 3.14 and 2024-01-02",
          "café naïve résumé coöperate Ångström", "你好世界 こんにちは 안녕하세요",
          "def f(x): return x**2  # comment\n\tindent", "emoji 👋🏽 🤖 ok"] * 20

TEXTS = ["hello [LS] world", "a   [LS]b", "x[RS]   y", "[SW] a[SW]b [SW]", "é[SW]", "_[SW]_",
         "x [BOTH]  y", "NORMTOK normtok Normtok", "[SW]x [SW]xx", "<s>hi</s> <s> </s>",
         "12,345.67 and 8.9", "abc123def4", "  leading and trailing  ", "tabs\tand\nnewlines\n\n",
         "ﬁ ligature ＡＢＣ ½ é (e + U+0301) e\u0301", "Quick brown FOX, lazy dog!", "",
         " ", "你好 世界", "👋🏽🤖", "x [LS][RS] y", "[BOTH][BOTH]", "unseen ⊕ ∂ chars ☃",
         "The quick brown fox jumps over the lazy dog.", "``quoted``  double  spaces"]


def base(pre, decoder=None, vocab=400):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre
    tok.decoder = decoder or decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                             show_progress=False)
    tok.train_from_iterator(CORPUS, tr)
    return tok


def bytelevel(prefix=False, regex=False):
    return pre_tokenizers.ByteLevel(add_prefix_space=prefix, use_regex=regex)


def run(name, tok, texts=TEXTS):
    cases = []
    for t in texts:
        a = tok.encode(t, add_special_tokens=False).ids
        b = tok.encode(t, add_special_tokens=True).ids
        cases.append({"text": t, "ids": a, "ids_with_special": b,
                      "decoded": tok.decode(a, skip_special_tokens=False),
                      "decoded_skip": tok.decode(b, skip_special_tokens=True)})
    return {"name": name, "tokenizer": json.loads(tok.to_str()), "cases": cases}


def added(tok):
    tok.add_special_tokens([AddedToken("<s>", special=True, normalized=False),
                            AddedToken("</s>", special=True, normalized=False)])
    tok.add_tokens([AddedToken("[LS]", lstrip=True, normalized=False),
                    AddedToken("[RS]", rstrip=True, normalized=False),
                    AddedToken("[SW]", single_word=True, normalized=False),
                    AddedToken("[BOTH]", lstrip=True, rstrip=True, normalized=False),
                    AddedToken("normtok", normalized=True),
                    AddedToken("[SW]x", normalized=False)])
    return tok


def main():
    out = []
    # Added-token flags, ByteLevel with prefix space and regex, a template post-processor.
    tok = added(base(bytelevel(True, True)))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("``", '"')])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.token_to_id("<s>")),
                                             ("</s>", tok.token_to_id("</s>"))])
    out.append(run("added_tokens+nfkc+template", tok))
    # Lowercasing-free normalizer variants.
    for nname, norm in [("nfd", normalizers.NFD()), ("nfkd", normalizers.NFKD()),
                        ("strip", normalizers.Strip(left=True, right=False)),
                        ("prepend", normalizers.Prepend("@")),
                        ("replace_regex", normalizers.Replace(Regex(r"\s+"), " "))]:
        tok = added(base(bytelevel(False, True)))
        tok.normalizer = norm
        out.append(run("normalizer_" + nname, tok))
    # Split behaviors, inverted or not, regex and literal patterns.
    for beh in ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]:
        for inv in [False, True]:
            pre = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(r"\d+|[,.!]"), behavior=beh, invert=inv),
                bytelevel(False, False)])
            out.append(run("split_%s%s" % (beh, "_inverted" if inv else ""), base(pre)))
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(" ", behavior="merged_with_next"),
                                   bytelevel(False, False)])
    out.append(run("split_literal", base(pre)))
    for ind in [True, False]:
        pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=ind),
                                       bytelevel(False, True)])
        out.append(run("digits_%s" % ("individual" if ind else "grouped"), base(pre)))
    # ignore_merges and a Roberta post-processor.
    tok = added(base(bytelevel(False, True)))
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    tok = Tokenizer.from_str(json.dumps(j))
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")))
    out.append(run("ignore_merges+roberta", tok))
    # Character-level BPE (no byte level): byte fallback, unk, fused unk; no decoder.
    for kind in ["byte_fallback", "unk", "fuse_unk"]:
        tok = Tokenizer(models.BPE(unk_token="<unk>" if kind != "byte_fallback" else None,
                                   byte_fallback=kind == "byte_fallback",
                                   fuse_unk=kind == "fuse_unk"))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s+"), behavior="removed")
        tr = trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                 special_tokens=["<unk>"] + ["<0x%02X>" % b for b in range(256)])
        tok.train_from_iterator(CORPUS[:5], tr)
        out.append(run("charlevel_" + kind, tok))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer_features.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("wrote", path, sum(len(c["cases"]) for c in out), "cases in", len(out), "tokenizers")


if __name__ == "__main__":
    main()
