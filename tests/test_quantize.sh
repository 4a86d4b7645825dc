#!/usr/bin/env bash
# `ferrum quantize`, judged by the `gguf` PyPI package and numpy (tests/quantize_check.py):
#  1. A synthetic Llama folder (tests/quantize_check.py make-model: rows of whole K-quant
#     super-blocks, tied embeddings, a 512-token byte-level BPE tokenizer with a chat template)
#     to every TYPE: gguf reads the file; architecture and tokenizer metadata, the chat template,
#     every tensor's name, shape and type (llama.cpp's rules) and its values after gguf's
#     dequantization (q/k permuted as llama.cpp's converter does) within the type's error.
#  2. ferrum's logits on each GGUF against ferrum's logits on the f32 folder, within a bound per
#     type (weight quantization noise grows through the layers of a random model), and against
#     the same GGUF exactly dequantized (`quantize OUT F32`): what is left there is the integer
#     kernels' 8-bit activations (measured 2.6-4.3 %), bound 0.08; F16/BF16 must agree to 1e-6.
#  3. The tokenizer and chat template of the GGUF behave as the folder's: same ids for several
#     texts with and without special tokens, same rendered chat.
#  4. A GGUF input (the F16 file) requantized to Q4_K_M passes the same checks.
#  5. The fixture models (64-wide rows: K types fall back to Q5_0 / Q8_0 as in llama.cpp;
#     llama3 RoPE scaling as rope_freqs.weight; qwen2 biases; qwen3 q/k norms) to Q4_K_M.
#  6. The real Llama 3 and Qwen3 tokenizers converted to GGUF give Hugging Face's ids.
#  7. Bad requests: unknown TYPE (exit 2), missing input (exit 1), overwriting the input (exit 1),
#     and no output file left behind by a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${FERRUM:?FERRUM must name the built ferrum binary (CTest sets it)}"
: "${FR_TEST_DATA:=$here/data}"
: "${FR_TEST_TOKENIZERS:?FR_TEST_TOKENIZERS must name the unpacked test tokenizers (CTest sets it)}"
if ! python3 -c 'import gguf, numpy' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check gguf numpy
fi
check="$here/quantize_check.py"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
run() {
    if "$@"; then pass=$((pass + 1)); else
        echo "FAIL: $*" >&2
        fail=$((fail + 1))
    fi
}

synth="$tmp/synth"
python3 "$check" make-model "$synth"
text="the capital of france is paris. 12 months and 365 days"
ids=$("$FERRUM" tokenize -m "$synth" "$text" | tr -d '[] ')
"$FERRUM" logits -m "$synth" --ids "$ids" -o "$tmp/ref.f32"

declare -A TOL=([F32]=1e-6 [F16]=5e-3 [BF16]=3e-2 [Q8_0]=0.1 [Q6_K]=0.25 [Q5_0]=0.45
    [Q5_1]=0.45 [Q5_K]=0.45 [Q5_K_M]=0.45 [Q4_0]=0.7 [Q4_1]=0.7 [Q4_K]=0.7 [Q4_K_M]=0.7)
checks=()
logit_checks=()
for T in F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K Q4_K_M Q5_K_M; do
    out="$tmp/synth-$T.gguf"
    run "$FERRUM" quantize --quiet "$synth" "$out" "$T"
    [ -f "$out" ] || continue
    checks+=("$out" "$T")
    "$FERRUM" logits -m "$out" --ids "$ids" -o "$tmp/$T.f32"
    logit_checks+=("$tmp/$T.f32" "$tmp/ref.f32" "${TOL[$T]}")
    if [ "$T" != F32 ]; then
        "$FERRUM" quantize --quiet "$out" "$tmp/deq.gguf" F32 2>/dev/null
        "$FERRUM" logits -m "$tmp/deq.gguf" --ids "$ids" -o "$tmp/$T-deq.f32"
        case $T in F16 | BF16) t=1e-6 ;; *) t=0.08 ;; esac
        logit_checks+=("$tmp/$T.f32" "$tmp/$T-deq.f32" "$t")
        rm -f "$tmp/deq.gguf"
    fi
done
run python3 "$check" check "$synth" "${checks[@]}"
run python3 "$check" logits 512 "${logit_checks[@]}"

# 3. tokenizer and template from the GGUF = from the folder
printf '[{"role": "user", "content": "hi 12"}, {"role": "assistant", "content": "ok"}]' \
    >"$tmp/msgs.json"
for T in Q8_0 Q4_K_M; do
    g="$tmp/synth-$T.gguf"
    for t in "$text" "Héllo 12345 wörld <|im_end|> x" $'  two  spaces\n\tand tabs'; do
        for flag in "" --add-special; do
            a=$("$FERRUM" tokenize -m "$synth" $flag -- "$t")
            b=$("$FERRUM" tokenize -m "$g" $flag -- "$t")
            run test "$a" = "$b"
        done
    done
    "$FERRUM" template -m "$synth" --messages "$tmp/msgs.json" >"$tmp/t1"
    "$FERRUM" template -m "$g" --messages "$tmp/msgs.json" >"$tmp/t2"
    run cmp -s "$tmp/t1" "$tmp/t2"
done

# 4. GGUF input
run "$FERRUM" quantize --quiet "$tmp/synth-F16.gguf" "$tmp/from-gguf.gguf" Q4_K_M
[ -f "$tmp/from-gguf.gguf" ] && run python3 "$check" check "$synth" "$tmp/from-gguf.gguf" Q4_K_M

# 5. fixture models
for fx in llama3-tiny-f16 qwen3-tiny qwen2-tiny mistral-tiny-swa qwen3-tiny-bf16; do
    out="$tmp/$fx.gguf"
    run "$FERRUM" quantize --quiet "$FR_TEST_DATA/fixtures/models/$fx" "$out" Q4_K_M 2>/dev/null
    [ -f "$out" ] && run python3 "$check" check "$FR_TEST_DATA/fixtures/models/$fx" "$out" Q4_K_M
    rm -f "$out"
done

# 6. real tokenizers (tests/data/tokenizers, unpacked by the build) converted to GGUF give
#    Hugging Face's ids for every case of tests/data/fixtures/tokenizer/*.jsonl (Qwen3: the cases
#    NFC leaves alone, since GGUF has no normalizer, as in llama.cpp)
helper="$(dirname "$FERRUM")/test_gguf_model"
for spec in "llama3 128256 LlamaForCausalLM" "qwen3 151936 Qwen3ForCausalLM"; do
    set -- $spec
    python3 "$check" make-tok-model "$tmp/tok-$1" "$FR_TEST_TOKENIZERS/$1" "$2" "$3"
    run "$FERRUM" quantize --quiet "$tmp/tok-$1" "$tmp/tok-$1.gguf" Q8_0 2>/dev/null
    if [ "$1" = qwen3 ]; then
        python3 "$check" nfc-cases "$FR_TEST_DATA/fixtures/tokenizer/$1.jsonl" "$tmp/$1.jsonl"
    else
        cp "$FR_TEST_DATA/fixtures/tokenizer/$1.jsonl" "$tmp/$1.jsonl"
    fi
    run "$helper" tokcases "$tmp/tok-$1.gguf" "$tmp/$1.jsonl"
    rm -rf "$tmp/tok-$1" "$tmp/tok-$1.gguf"
done

# 7. bad requests
expect_rc() {
    local want=$1
    shift
    local rc=0
    "$@" 2>"$tmp/err" >/dev/null || rc=$?
    if [ "$rc" -eq "$want" ] && [ -s "$tmp/err" ]; then pass=$((pass + 1)); else
        echo "FAIL: exit $rc (want $want) for: $*" >&2
        fail=$((fail + 1))
    fi
}
expect_rc 2 "$FERRUM" quantize "$synth" "$tmp/x.gguf" Q3_K
expect_rc 2 "$FERRUM" quantize "$synth" "$tmp/x.gguf"
expect_rc 1 "$FERRUM" quantize "$tmp/no-such-model" "$tmp/x.gguf" Q8_0
expect_rc 1 "$FERRUM" quantize "$tmp/synth-F16.gguf" "$tmp/synth-F16.gguf" Q8_0
mkdir "$tmp/broken"
cp "$synth/config.json" "$tmp/broken/"
head -c 1000 "$synth/model.safetensors" >"$tmp/broken/model.safetensors"
expect_rc 1 "$FERRUM" quantize "$tmp/broken" "$tmp/x.gguf" Q8_0
run test ! -e "$tmp/x.gguf"
run test -s "$tmp/synth-F16.gguf"
left=$(find "$tmp" -name '*.tmp*' | wc -l)
run test "$left" -eq 0

echo "test_quantize: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
