#!/usr/bin/env python3
"""Writes the Mistral (Llama 2 style SentencePiece BPE) tokenizer test data, for NAME = mistral
(Mistral 7B v0.1's tokenizer.model.v1, 32000 pieces) and mistral-v3 (Mistral 7B Instruct v0.3's
mistral_instruct_tokenizer_240323.model.v3: 32768 pieces with 770 control and 20 user-defined
tokens), both shipped in the `mistral-common` PyPI package (Apache-2.0):

  tests/data/tokenizers/NAME/tokenizer.json.xz  Hugging Face tokenizer.json, converted here
  tests/data/tokenizers/NAME/tokenizer_config.json
  tests/data/tokenizers/NAME/tokenizer.gguf.xz  tokenizer-only GGUF ("llama" model: tokens,
                                                scores, token types), as llama.cpp's
                                                convert_hf_to_gguf writes a SentencePiece model
  tests/data/fixtures/tokenizer/NAME.jsonl      reference ids and decodes for each case
  tests/data/fixtures/tokenizer/mistral-chat.json  conversations rendered by the Mistral and a
                                                Llama 2 style [INST] template (jinja2 set up as
                                                transformers does) and their ids

The tokenizer.json is built the way transformers 4.x LlamaConverter built the Llama 2 / Mistral
files on the Hub (legacy form: normalizer Prepend("▁") + Replace(" ", "▁"), BPE with
byte_fallback and fuse_unk, merges ranked by the merged piece's score, decoder
Replace/ByteFallback/Fuse/Strip, post-processor "<s> $A", control pieces special added tokens,
user-defined pieces non-special added tokens).

Each reference line holds, for one text:
  ids              HF tokenizers, legacy form, no special tokens
  ids_with_special HF, with the post-processor's <s>
  ids_metaspace    HF, the newer form of the same tokenizer (no normalizer, a Metaspace
                   pre-tokenizer with prepend_scheme "first", split false)
  ids_metaspace_split  the same with prepend_scheme "always" and split true
  ids_metaspace_never  the same with prepend_scheme "never" and split true
  ids_spm          sentencepiece itself (text only; it never matches control tokens in text)
  decoded          HF decode(ids)
  decoded_special  HF decode(ids_with_special)
  decoded_skip     HF decode(ids_with_special, skip_special_tokens=True)
and decode-only lines (decode_ids, decoded, decoded_skip) for byte-fallback runs and stripping.
The script also reports where sentencepiece, with the added tokens split out of the text as
llama.cpp does, differs from HF (0 lines of either file when last run).

    pip install mistral-common sentencepiece tokenizers gguf jinja2
    python3 scripts/gen_spm_refs.py [--check]
"""
import argparse
import json
import lzma
import os
import random
import re
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHAT = os.path.join(ROOT, "tests/data/fixtures/tokenizer/mistral-chat.json")

# Mistral-7B-Instruct-v0.1's chat template.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and "
    "assistant roles are supported!') }}{% endif %}{% endfor %}")


# A Llama 2 chat style template ([INST], <<SYS>> folded into the first user turn, strip()),
# written here in the form the Llama-2-chat tokenizer_config.json files use.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation "
    "roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + "
    "system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}"
    "{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."},
     {"role": "user", "content": "And 3+3?"}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "  Hello there  "}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": " Rouge \n"}, {"role": "user", "content": "Un autre ? 🎨"}],
    [{"role": "user", "content": "Line one\nline two\n\n  indented <s> literal"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],  # not alternating
    [{"role": "assistant", "content": "first"}],                            # not alternating
]


def chat_cases(legacy):
    """Both templates over the conversations, rendered by jinja2 set up as transformers does
    (scripts/gen_jinja_cases.make_env); the rendered text's ids (no special tokens added)."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import jinja2
    from gen_jinja_cases import make_env
    env, out = make_env(), []
    for name, src in (("mistral", CHAT_TEMPLATE), ("llama2", LLAMA2_TEMPLATE)):
        for conv in CONVERSATIONS:
            rec = {"template": name, "messages_json": json.dumps(conv, ensure_ascii=False)}
            try:
                text = env.from_string(src).render(messages=conv, bos_token="<s>", eos_token="</s>",
                                                   unk_token="<unk>", add_generation_prompt=False)
                rec.update({"rendered": text, "ids": legacy.encode(text, add_special_tokens=False).ids})
            except jinja2.exceptions.TemplateError as e:
                rec["error"] = str(e)
            out.append(rec)
    return out


def load_proto(path):
    from sentencepiece import sentencepiece_model_pb2 as pb
    m = pb.ModelProto()
    with open(path, "rb") as f:
        m.ParseFromString(f.read())
    return m


def merges_by_score(pieces):
    """transformers 4.x SentencePieceExtractor.extract(vocab_scores): every split of a piece into
    two pieces is a merge; merges sorted by the merged piece's score (stable: ties keep vocabulary
    order, and within a piece the order of (left id, right id))."""
    vocab = {p: i for i, (p, _) in enumerate(pieces)}
    merges = []
    for piece, score in pieces:
        local = [(piece[:k], piece[k:], score) for k in range(1, len(piece))
                 if piece[:k] in vocab and piece[k:] in vocab]
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda x: x[2], reverse=True)
    return vocab, [(a, b) for a, b, _ in merges]


def build_hf(proto, metaspace, scheme="first", split=False):
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE
    pieces = [(p.piece, p.score) for p in proto.pieces]
    vocab, merges = merges_by_score(pieces)
    tok = Tokenizer(BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True, dropout=None))
    # as transformers' SpmConverter: control (and unknown) pieces are special added tokens,
    # user-defined ones non-special added tokens
    tok.add_special_tokens([AddedToken(p.piece, normalized=False, special=True)
                            for p in proto.pieces if p.type in (2, 3)])
    tok.add_tokens([AddedToken(p.piece, normalized=False, special=False)
                    for p in proto.pieces if p.type == 4])
    if metaspace:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=split)
    else:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    return tok


def write_gguf(proto, path, chat_template):
    """What convert_hf_to_gguf.py's _set_vocab_sentencepiece writes (tokenizer keys only)."""
    import gguf
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    toks, scores, types = [], [], []
    for p in proto.pieces:
        toks.append(p.piece.encode("utf-8"))
        scores.append(p.score)
        types.append({1: gguf.TokenType.NORMAL, 2: gguf.TokenType.UNKNOWN, 3: gguf.TokenType.CONTROL,
                      4: gguf.TokenType.USER_DEFINED, 5: gguf.TokenType.UNUSED, 6: gguf.TokenType.BYTE}[p.type])
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(proto.trainer_spec.bos_id)
    w.add_eos_token_id(proto.trainer_spec.eos_id)
    w.add_unk_token_id(proto.trainer_spec.unk_id)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(proto.normalizer_spec.add_dummy_prefix)
    if chat_template:
        w.add_chat_template(chat_template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def cases():
    t = [
        "", " ", "  ", "   ", "\n", "\n\n", "\t", " \n ", "a", "A", ".", "Hello", "Hello, world!",
        " Hello", "  Hello", "Hello ", "Hello  ", "Hello world", "Hello  world", "Hello   world",
        "Hello    world", "Hello     world", "  leading and trailing  ", "trailing space ",
        "tabs\tand\t\ttabs", "line one\nline two\n", "windows\r\nline\r\nends", "\r", "a\rb",
        "The quick brown fox jumps over the lazy dog.",
        "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!",
        "I'm sure you're right; they'll say it's fine, won't they?",
        "e-mail: someone@example.com, url: https://example.org/path?q=1&r=2#frag",
        "def f(x):\n    return x ** 2  # square\n\nprint(f(3))\n",
        "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}",
        "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
        "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
        "SELECT name, COUNT(*) FROM users WHERE age > 30 GROUP BY name;",
        "$ ls -la /tmp | grep -v '^d' > out.txt 2>&1",
        "0", "7", "42", "123", "1234567890", "3.14159", "-2.5e-10", "1,000,000", "2024-01-02T03:04:05Z",
        "Phone: +1 (555) 123-4567", "v1.2.3-rc4", "0x1F 0b1010 0o17", "١٢٣ ४५६ 七八九",
        "café naïve résumé coöperate Ångström", "cafe\u0301 (decomposed e + U+0301)",
        "Straße, Œuvre, Ærø, Ĳssel, ǅ", "Привет, мир! Как дела?", "Γειά σου Κόσμε",
        "שלום עולם", "مرحبا بالعالم", "नमस्ते दुनिया", "สวัสดีชาวโลก", "ሰላም ልዑል",
        "你好，世界！", "这是一个测试句子，用来检查中文分词。", "こんにちは、世界。カタカナとひらがな",
        "안녕하세요 세계", "漢字かな交じり文", "繁體中文測試", "𠀀𠀁𠀂 (CJK Extension B)",
        "emoji 👋🏽 🤖 ok", "👨‍👩‍👧‍👦 family", "🇫🇷🇩🇪🇯🇵 flags", "❤️ ✔️ ☃ ★ ☂",
        "😀😃😄😁😆😅😂🤣", "🦀🐍🦫", "a\u200bb zero\u200dwidth\u200cjoiner", "\u00a0nbsp\u00a0",
        "\u3000ideographic space\u3000", "soft\u00adhyphen", "\ufeffBOM at start", "\u2028line sep\u2029",
        "private \ue000\uf8ff use", "\U0010fffd plane 16", "math 𝔸𝔹ℂ ∑∫∂√∞ ≤ ≥ ≠", "arrows ← → ↑ ↓ ⇒",
        "box ┌─┐│└┘ ░▒▓█", "music 𝄞 ♩ ♪ ♫", "ancient 𐌰𐌱𐌲 𓀀𓀁", "\x01\x02\x03 control \x1f\x7f",
        "bell\x07 escape\x1b[31m red\x1b[0m", "▁", "▁▁", "a▁b", "▁leading metaspace", "space ▁ and ▁▁ bars",
        "<s>", "</s>", "<unk>", "<s>Hello</s>", "Hello <s> world", "<s> leading space after", "a</s>b",
        "<s><s></s></s>", "<unk>x<unk>", " <s>", "<s> ", "text <s>", "<S> </S> <s > <unk", "< s>",
        "[INST] What is 2+2? [/INST]", "[INST] Hi [/INST] Hello!</s>[INST] Bye [/INST]",
        "<0x41> literal byte token text", "<0xFF><0x00>",
        "supercalifragilisticexpialidocious", "antidisestablishmentarianism",
        "pneumonoultramicroscopicsilicovolcanoconiosis", "Donaudampfschifffahrtsgesellschaftskapitän",
        "a" * 300, "ab" * 150, "ha" * 64 + "!", "x" * 17 + " " + "y" * 33, "." * 50, "-" * 80, "=" * 64,
        "!" * 10 + "?" * 10, "\n" * 20, "\t" * 12, " " * 40, " " * 15 + "x", "x" + " " * 15,
        "a" + " " * 16 + "b", "a" + " " * 17 + "b", "a" + " " * 31 + "b", "a" + " " * 33 + "b",
        "    indented four", "        indented eight", "\t\tindented tabs", "x \n y \n\n z",
        " \t \n \r\n mixed whitespace", "end with newline\n", "\nstart with newline",
        "Mixed CASE and camelCase and snake_case and kebab-case",
        "URLs: http://a.b/c_d-e~f?g=h+i%20j", "Quotes: \"double\" 'single' «guillemets» „low“ ‘curly’",
        "Ellipsis… em—dash en–dash", "fractions ½ ¼ ¾ and ℃ ℉ №", "ﬁ ligature ＡＢＣ fullwidth",
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt "
        "ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco "
        "laboris nisi ut aliquip ex ea commodo consequat.",
        "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age "
        "of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season "
        "of Light, it was the season of Darkness.\n\nChapter 2\n\nThere were a king with a large jaw.",
    ]
    # Runs of spaces: the whitespace pieces (2 to 16 spaces) share one score, so the order of
    # equal-score merges decides how a run is cut.
    for k in list(range(2, 21)) + [23, 29, 31, 32, 33, 40, 47]:
        t += ["x" + " " * k + "y", "\n" + " " * k + "def", " " * k + "."]
    rng = random.Random(1234)
    alphabet = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") +
                list(" " * 12) + list("\n\t.,;:!?'\"()[]{}<>/\\-_=+*&^%$#@~`|") +
                list("éèüßøåñçàÆ") + list("你好世界中文字") + list("ひらカタ") + list("한국어") +
                list("Жщыё") + ["▁", "🤖", "👋", "🏽", "\u200d", "\u0301", "\U0001F600", "\ue000", "𐌰"] +
                ["<s>", "</s>", "<unk>", "  ", "   ", "[INST]"])
    for n in list(range(1, 41)) + [60, 80, 120, 200]:
        t.append("".join(rng.choice(alphabet) for _ in range(n)))
    words = ["the", "of", "and", "tokenizer", "Mistral", "Llama", "byte", "fallback", "merge", "score",
             "piece", "space", "newline", "42", "3.14", "你好", "über", "naïve", "🤖", "<s>", "x"]
    for n in range(30):
        seps = [" ", " ", " ", "  ", "\n", "\t", "", ", "]
        t.append("".join(rng.choice(words) + rng.choice(seps) for _ in range(rng.randint(2, 25))))
    return t


def build_name(name, model, sp_cls, extra_cases):
    """Every output file of one tokenizer: {path: bytes}, and the texts on which sentencepiece
    (added tokens split out, as llama.cpp does) differs from HF."""
    proto = load_proto(model)
    sp = sp_cls(model_file=model)
    legacy, meta = build_hf(proto, False), build_hf(proto, True)
    meta_split = build_hf(proto, True, "always", True)
    meta_never = build_hf(proto, True, "never", True)
    added = sorted((p.piece for p in proto.pieces if p.type in (2, 3, 4)), key=len, reverse=True)
    added_re = "(" + "|".join(re.escape(a) for a in added) + ")"

    lines, differ = [], []
    for text in cases() + extra_cases:
        e = legacy.encode(text, add_special_tokens=False).ids
        s = legacy.encode(text, add_special_tokens=True).ids
        rec = {"text": text, "ids": e, "ids_with_special": s,
               "ids_metaspace": meta.encode(text, add_special_tokens=False).ids,
               "ids_metaspace_split": meta_split.encode(text, add_special_tokens=False).ids,
               "ids_metaspace_never": meta_never.encode(text, add_special_tokens=False).ids,
               "ids_spm": sp.encode(text),
               "decoded": legacy.decode(e, skip_special_tokens=False),
               "decoded_special": legacy.decode(s, skip_special_tokens=False),
               "decoded_skip": legacy.decode(s, skip_special_tokens=True)}
        # sentencepiece never matches control tokens in text; split them out as llama.cpp does
        split = []
        for part in re.split(added_re, text):
            split += [legacy.token_to_id(part)] if part in added else sp.encode(part) if part else []
        if split != e:
            differ.append(text)
        lines.append(json.dumps(rec, ensure_ascii=False))
    # Decoding alone: byte-fallback runs cut short, interrupted or invalid, leading spaces.
    b = legacy.token_to_id("<0x00>")
    b = (lambda x, b0=b: b0 + x)
    hello, sp1, sp2 = legacy.token_to_id("▁Hello"), legacy.token_to_id("▁"), legacy.token_to_id("▁▁")
    for ids in ([b(0xE4), b(0xBD)], [b(0xE4), b(0xBD), b(0xA0)], [b(0xE4), hello, b(0xA0)],
                [b(0x20), hello], [1, sp1, sp1, hello], [sp1], [sp2, hello], [sp1, 1, hello],
                [b(0xF0), b(0x9F), 1, b(0xA4), b(0x96)], [0], [0, hello], [b(0xFF)], [b(0x41), b(0x42)],
                [b(0xC3), b(0xA9), b(0xC3)], [2, b(0x20), b(0x20)], [1, 2, 0], []):
        lines.append(json.dumps({"decode_ids": ids, "decoded": legacy.decode(ids, skip_special_tokens=False),
                                 "decoded_skip": legacy.decode(ids, skip_special_tokens=True)},
                                ensure_ascii=False))
    cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
           "unk_token": "<unk>", "pad_token": None, "legacy": True, "clean_up_tokenization_spaces": False,
           "model_max_length": 1000000000000000019884624838656, "tokenizer_class": "LlamaTokenizer"}
    if name == "mistral":
        cfg["chat_template"] = CHAT_TEMPLATE
    tokdir = os.path.join(ROOT, "tests/data/tokenizers", name)
    with tempfile.TemporaryDirectory() as d:
        gpath = os.path.join(d, "tokenizer.gguf")
        write_gguf(proto, gpath, cfg.get("chat_template"))
        gguf_bytes = open(gpath, "rb").read()
    out = {os.path.join(ROOT, "tests/data/fixtures/tokenizer", name + ".jsonl"): ("\n".join(lines) + "\n").encode(),
           os.path.join(tokdir, "tokenizer_config.json"): (json.dumps(cfg, indent=2, ensure_ascii=False) + "\n").encode(),
           os.path.join(tokdir, "tokenizer.json.xz"): legacy.to_str(pretty=True).encode(),
           os.path.join(tokdir, "tokenizer.gguf.xz"): gguf_bytes}
    if name == "mistral":
        out[CHAT] = ('{"generator": "scripts/gen_spm_refs.py",\n "llama2_template": ' +
                     json.dumps(LLAMA2_TEMPLATE, ensure_ascii=False) + ',\n "cases": [\n  ' +
                     ",\n  ".join(json.dumps(c, ensure_ascii=False) for c in chat_cases(legacy)) +
                     "\n ]}\n").encode()
    return out, len(lines), differ


# Mistral 7B Instruct v0.3's tokenizer: 770 control tokens ([INST], [TOOL_CALLS], ...) and 20
# user-defined ones ([REFERENCE_DOC_n]) that text may contain.
V3_CASES = ["[INST] Hi [/INST]", "[INST]Hi[/INST]", " [INST] x", "[TOOL_CALLS][{\"name\": \"f\"}]",
            "[AVAILABLE_TOOLS] [] [/AVAILABLE_TOOLS]", "[REFERENCE_DOC_1] cited", "see [REFERENCE_DOC_12]!",
            "[REFERENCE_DOC_1][REFERENCE_DOC_10]", "[control_12] [control_749]", "[INST ] [/ INST]",
            "<s>[INST] a [/INST] b</s>[INST] c [/INST]", "[IMG][PREFIX]x[MIDDLE]y[SUFFIX]z"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="compare with the committed files")
    args = ap.parse_args()
    import sentencepiece as spm
    import mistral_common
    data = os.path.join(os.path.dirname(mistral_common.__file__), "data")
    bad = 0
    for name, model, extra in (("mistral", "tokenizer.model.v1", []),
                               ("mistral-v3", "mistral_instruct_tokenizer_240323.model.v3", V3_CASES)):
        outputs, n, differ = build_name(name, os.path.join(data, model), spm.SentencePieceProcessor, extra)
        for path, blob in outputs.items():
            if args.check:
                with open(path, "rb") as f:
                    have = f.read()
                if path.endswith(".xz"):
                    have = lzma.decompress(have)
                if have != blob:
                    print(f"differs: {path}", file=sys.stderr)
                    bad += 1
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if path.endswith(".xz"):
                blob = lzma.compress(blob, preset=9 | lzma.PRESET_EXTREME)
            with open(path, "wb") as f:
                f.write(blob)
        print(f"{name}: {n} lines; sentencepiece (added tokens split out) differs from HF on {len(differ)}"
              f"{':' if differ else ''}", file=sys.stderr)
        for text in differ:
            print(f"  {text[:70]!r}", file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
