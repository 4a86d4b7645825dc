#!/usr/bin/env python3
"""Writes tests/data/template_refs.json: conversations rendered by the real Qwen3 and Llama 3 chat
templates (from tests/data/tokenizers/*/tokenizer_config.json) with jinja2 configured as
transformers configures it (see gen_jinja_cases.make_env) and the variables transformers'
apply_chat_template passes: messages, tools, documents=None, add_generation_prompt, the special
tokens of tokenizer_config.json and extra keyword arguments. tests/test_template.c renders the
same through fr_chat_template_render and compares bytes.

    python3 scripts/gen_template_refs.py [--tokenizers tests/data/tokenizers] [--check]
"""
import copy
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_jinja_cases import make_env  # noqa: E402

SPECIAL = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city (°C)",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "days": {"type": "integer", "enum": [1, 3, 7]}}, "required": ["city"]}}}
CLOCK = {"type": "function", "function": {"name": "now", "description": "Current time",
                                          "parameters": {"type": "object", "properties": {}}}}

QWEN = [
    {"messages": [{"role": "user", "content": "Hi there"}], "add_generation_prompt": False},
    {"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": True, "extra": {}},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}],
     "tools": [WEATHER, CLOCK], "extra": {"enable_thinking": False}},
    {"messages": [{"role": "user", "content": "Weather in Zürich, 3 days?"},
                  {"role": "assistant", "content": "",
                   "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 3}}}]},
                  {"role": "tool", "content": "{\"temp\": 21.5, \"sky\": \"sunny\"}"},
                  {"role": "assistant", "content": "Sunny, 21.5 °C."},
                  {"role": "user", "content": "And the time?"}],
     "tools": [WEATHER, CLOCK]},
    {"messages": [{"role": "user", "content": "Two calls please"},
                  {"role": "assistant", "content": "Calling both.",
                   "tool_calls": [{"function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
                                  {"name": "now", "arguments": {}}]},
                  {"role": "tool", "content": "cold"},
                  {"role": "tool", "content": "12:00"}],
     "tools": [WEATHER, CLOCK], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "q1"},
                  {"role": "assistant", "content": "a1", "reasoning_content": "thought one"},
                  {"role": "user", "content": "q2"},
                  {"role": "assistant", "content": "<think>\nthought two\n</think>\n\na2"}],
     "add_generation_prompt": False},
    {"messages": [{"role": "user", "content": "<tool_response>\nx\n</tool_response>"},
                  {"role": "assistant", "content": "\n\nlead newlines", "reasoning_content": None}],
     "extra": {"enable_thinking": True}},
    {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "u"},
                  {"role": "system", "content": "late system"}, {"role": "user", "content": "emoji 😀 and 中文"}],
     "extra": {"enable_thinking": False}},
]

LLAMA = [
    {"messages": [{"role": "user", "content": "Hello"}]},
    {"messages": [{"role": "system", "content": "  You are helpful.\n"}, {"role": "user", "content": "\tWhat is 2+2?  "}]},
    {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                  {"role": "user", "content": "c — ünïcode"}], "add_generation_prompt": False},
    {"messages": [{"role": "user", "content": "with\nnewlines\n\n"}], "add_generation_prompt": True},
]


def special_tokens(cfg):
    # transformers' special_tokens_map: the set tokens as strings, and additional_special_tokens
    out = {}
    for name in SPECIAL:
        v = cfg.get(name)
        if isinstance(v, dict):
            v = v.get("content")
        if v is not None:
            out[name] = v
    add = cfg.get("additional_special_tokens")
    if add:
        out["additional_special_tokens"] = [a["content"] if isinstance(a, dict) else a for a in add]
    return out


def render(env, cfg, case):
    kwargs = special_tokens(cfg)
    kwargs.update(case.get("extra", {}))
    tpl = env.from_string(cfg["chat_template"])
    return tpl.render(messages=copy.deepcopy(case["messages"]), tools=copy.deepcopy(case.get("tools")),
                      documents=None, add_generation_prompt=case.get("add_generation_prompt", True), **kwargs)


def build(tokenizers):
    env = make_env()
    cases = []
    for model, convs in (("qwen3", QWEN), ("llama3", LLAMA)):
        with open(os.path.join(tokenizers, model, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        for c in convs:
            # JSON text exactly as a client would send it, so the C side parses the same numbers
            cases.append({"model": model, "messages_json": json.dumps(c["messages"], ensure_ascii=False),
                          "tools_json": json.dumps(c["tools"], ensure_ascii=False) if c.get("tools") else None,
                          "add_generation_prompt": c.get("add_generation_prompt", True),
                          "extra_json": json.dumps(c.get("extra", {})), "rendered": render(env, cfg, c)})
    return {"generator": "scripts/gen_template_refs.py", "cases": cases}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    tokenizers = os.path.join(here, "..", "tests", "data", "tokenizers")
    if "--tokenizers" in sys.argv:
        tokenizers = sys.argv[sys.argv.index("--tokenizers") + 1]
    path = os.path.join(here, "..", "tests", "data", "template_refs.json")
    data = build(tokenizers)
    if "--check" in sys.argv:
        with open(path, encoding="utf-8") as f:
            same = json.load(f)["cases"] == data["cases"]
        print("template_refs.json", "matches jinja2" if same else "DIFFERS from jinja2")
        sys.exit(0 if same else 1)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(data['cases'])} rendered conversations to {path}")


if __name__ == "__main__":
    main()
