"""Writes a byte-level tokenizer (256 tokens, one per byte, no merges) and a plain chat template
into the model folder named by argv[1]: any prompt of the tiny fixture models (512 ids) encodes to
valid ids. Used by the CLI test scripts."""
import json
import sys

d = sys.argv[1]
# GPT-2's byte-level alphabet: printable bytes stand for themselves, the others map from U+0100 on
printable = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
chars, extra = {}, 0
for b in range(256):
    if b in printable:
        chars[b] = chr(b)
    else:
        chars[b] = chr(0x100 + extra)
        extra += 1
bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
tok = {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": bl,
       "post_processor": None, "decoder": bl,
       "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False,
                 "byte_fallback": False, "ignore_merges": False,
                 "vocab": {chars[b]: b for b in range(256)}, "merges": []}}
json.dump(tok, open(d + "/tokenizer.json", "w"))
tmpl = ("{% for m in messages %}<{{ m.role }}> {{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant> {% endif %}")
json.dump({"chat_template": tmpl}, open(d + "/tokenizer_config.json", "w"))
