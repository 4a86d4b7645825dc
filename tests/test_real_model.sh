#!/usr/bin/env bash
# The default model end to end: SmolLM2-135M-Instruct Q4_1 GGUF (scripts/get-default-model.sh,
# cached in models/) against tests/data/smollm2-ref.*, made by Hugging Face transformers loading
# that same GGUF (scripts/make-smollm2-ref.py: weights dequantized, float64 compute).
#
#  1. Tokenizer from the GGUF metadata: `ferrum tokenize` (with and without --add-special) gives
#     transformers' ids for every reference text.
#  2. Chat template from the GGUF: `ferrum template` renders the reference prompt byte for byte,
#     and tokenizing it gives the reference prompt ids.
#  3. Logits through a path that dequantizes: `ferrum quantize MODEL F32` (exact dequantization),
#     then `ferrum logits`: every position of the prompt within 1e-4 relative L2 of the reference.
#  4. Logits of the Q4_1 file itself with `--quant-act f32` (weight blocks dequantized in
#     registers, multiplied with f32 activations): every position within 1e-4 relative L2 and
#     the same argmax, with the best kernels of this CPU and with FR_CPU_ISA=scalar.
#  5. The greedy chat answer of the Q4_1 file with `--quant-act f32`: transformers' ids, and
#     `ferrum detokenize` gives its text. The same on the dequantized F32 model.
#  6. Logits of the Q4_1 file on the default path (`--quant-act q8`: activations quantized to 8
#     bits per block for integer dot products, as llama.cpp does): within 0.2 relative L2 and
#     the same argmax at every position. Why not 1e-4: the 8-bit rounding of the
#     activations itself moves these logits by percents (transformers with only its Linear
#     inputs rounded the same way moves them by 1-4% at 4 positions of this prompt, up to 25% at
#     some positions of the chat prompt); ferrum's q8 logits measure 1.3-13.8% over the 13
#     positions here (AVX2; 13.8% at position 1, 12.7% at 9, the rest below 8.1%).
#  The float paths measure 0.5-2.6e-6 at every position (dev VM, AVX2 and scalar).
# The greedy answer of the q8 path is not compared: the reference's first answer token wins by a
# logit gap of 0.082 only, and 8-bit activations flip it (so does transformers with 8-bit
# activations).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
: "${FERRUM:?FERRUM must name the built ferrum binary (CTest sets it)}"
helper="$(dirname "$FERRUM")/test_gguf_model"
[ -x "$helper" ] || { echo "test_real_model: $helper not built" >&2; exit 1; }
python3 -c 'import numpy' 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check numpy

model="$root/$("$root/scripts/get-default-model.sh")"
ref="$here/data/smollm2-ref.json"
reflog="$here/data/smollm2-ref.logits.f32"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }
# field EXPR: a Python expression over the reference `r`, written as UTF-8 without a newline
field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1], encoding='utf-8')); sys.stdout.buffer.write(str($1).encode())" "$ref"; }

# 1. tokenizer
n_cases=$(field "len(r['tokenizer_cases'])")
for ((i = 0; i < n_cases; i++)); do
    field "r['tokenizer_cases'][$i]['text']" >"$tmp/text"
    for mode in ids ids_special; do
        flag=()
        [ "$mode" = ids_special ] && flag=(--add-special)
        want=$(field "json.dumps(r['tokenizer_cases'][$i]['$mode'])")
        got=$("$FERRUM" tokenize -m "$model" "${flag[@]}" - <"$tmp/text")
        if [ "$got" = "$want" ]; then ok; else bad "tokenize case $i ($mode): $got != $want"; fi
    done
done

# 2. chat template
field "json.dumps(r['chat']['messages'])" >"$tmp/messages.json"
field "r['chat']['prompt']" >"$tmp/want_prompt"
"$FERRUM" template -m "$model" --messages "$tmp/messages.json" >"$tmp/prompt"
if cmp -s "$tmp/prompt" "$tmp/want_prompt"; then ok; else bad "chat template render differs"; fi
want=$(field "json.dumps(r['chat']['prompt_ids'])")
got=$("$FERRUM" tokenize -m "$model" - <"$tmp/prompt")
if [ "$got" = "$want" ]; then ok; else bad "chat prompt ids: $got != $want"; fi

# 3. logits through exact dequantization
"$FERRUM" quantize --quiet "$model" "$tmp/f32.gguf" F32
ids=$(field "','.join(map(str, r['prompt_ids']))")
"$FERRUM" logits -m "$tmp/f32.gguf" --ids "$ids" -o "$tmp/deq.f32"
"$FERRUM" logits -m "$model" --ids "$ids" -o "$tmp/q41.f32"
"$FERRUM" logits -m "$model" --ids "$ids" --quant-act f32 -o "$tmp/q41f.f32"
FR_CPU_ISA=scalar "$FERRUM" logits -m "$model" --ids "$ids" --quant-act f32 -o "$tmp/q41fs.f32"
if python3 - "$ref" "$reflog" "$tmp/deq.f32" "$tmp/q41.f32" "$tmp/q41f.f32" "$tmp/q41fs.f32" \
    <<'PY'; then ok; else bad "logits"; fi
import json, sys
import numpy as np
ref_json, ref_logits, deq, q41, q41f, q41fs = sys.argv[1:7]
r = json.load(open(ref_json))
V, pos = r["vocab"], r["positions"]
want = np.fromfile(ref_logits, dtype=np.float32).reshape(len(pos), V).astype(np.float64)
ok = True
if pos != list(range(len(r["prompt_ids"]))):
    print(f"FAIL: the reference keeps positions {pos}, not every prompt position", file=sys.stderr)
    sys.exit(1)
cases = (("dequantized F32", deq, 1e-4), ("Q4_1 --quant-act f32", q41f, 1e-4),
         ("Q4_1 --quant-act f32, scalar kernels", q41fs, 1e-4),
         ("Q4_1 --quant-act q8 (default)", q41, 0.2))
for name, path, tol in cases:
    got = np.fromfile(path, dtype=np.float32).reshape(-1, V)
    if got.shape[0] != len(r["prompt_ids"]):
        print(f"FAIL: {name}: {got.shape[0]} rows", file=sys.stderr)
        ok = False
        continue
    got = got[pos].astype(np.float64)
    rel = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
    same = got.argmax(1) == want.argmax(1)
    print(f"{name}: relative L2 error per position {np.array2string(rel, precision=3)}"
          f" (tolerance {tol}), argmax equal {same.tolist()}")
    if not (rel < tol).all() or not same.all():
        print(f"FAIL: {name} logits", file=sys.stderr)
        ok = False
sys.exit(0 if ok else 1)
PY

# 5. greedy chat answer: the Q4_1 file on float activations, and the dequantized model
cids=$(field "','.join(map(str, r['chat']['prompt_ids']))")
n_ans=$(field "len(r['chat']['answer_ids'])")
want=$(field "json.dumps(r['chat']['answer_ids'])")
field "r['chat']['answer_text']" >"$tmp/want_text"
for run in "Q4_1 --quant-act f32:$model:f32" "dequantized F32:$tmp/f32.gguf:q8"; do
    IFS=: read -r name file qa <<<"$run"
    got=$("$helper" greedy "$file" "$n_ans" "$cids" "$qa")
    if [ "$got" = "$want" ]; then ok; else bad "$name: greedy answer ids: $got != $want"; fi
    "$FERRUM" detokenize -m "$model" --skip-special "$got" >"$tmp/text_out"
    if cmp -s "$tmp/text_out" "$tmp/want_text"; then ok; else
        bad "$name: greedy answer text: '$(cat "$tmp/text_out")' != '$(cat "$tmp/want_text")'"
    fi
    echo "$name answer: $(cat "$tmp/text_out")"
done

echo "test_real_model: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
