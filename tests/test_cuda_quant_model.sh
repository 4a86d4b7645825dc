#!/usr/bin/env bash
# Quantized GGUF models on the CUDA backend, end to end: a synthetic Llama model with rows of
# whole K-quant super-blocks (tests/quantize_check.py make-model; numpy only) is quantized with
# `ferrum quantize` to every type the CUDA kernels decode, and the same file exactly dequantized
# (`ferrum quantize Q.gguf DEQ.gguf F32`) serves as the reference: on CUDA both compute in f32
# with the same weight values, so every row of logits must agree within relative L2 error 1e-4,
# for a prefill (dequantize-and-cuBLASLt GEMMs, quantized embedding table) and token by token
# (the quantized decode GEMVs inside the session's recorded graph). The comparison is done by
# quantize_check.py's `logits` command (numpy).
#
# Those runs use --quant-act f32. With the default 8-bit activations (q8_0, q4_k and q6_k decode
# GEMVs on CUDA) the token-by-token logits of those types are compared again with FR_TEST_TOL_Q8
# (default 0.08, what the CPU backend's 8-bit activations need on this model).
#
# FR_TEST_BACKEND and FR_TEST_TOL override the backend and tolerance (to try the script itself
# on a machine without a GPU).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${FERRUM:?FERRUM must name the built ferrum binary (CTest sets it)}"
backend="${FR_TEST_BACKEND:-cuda}"
tol="${FR_TEST_TOL:-1e-4}"
tol_q8="${FR_TEST_TOL_Q8:-0.08}"
if ! python3 -c 'import numpy' 2>/dev/null; then
    echo "test_cuda_quant_model: python3 with numpy is required" >&2
    exit 1
fi
check="$here/quantize_check.py"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

synth="$tmp/synth"
python3 "$check" make-model "$synth" >/dev/null
text="the capital of france is paris. 12 months and 365 days, 24 hours"
ids=$("$FERRUM" tokenize -m "$synth" "$text" | tr -d '[] ')
n_ids=$(echo "$ids" | tr ',' '\n' | wc -l)
echo "test_cuda_quant_model: $n_ids tokens, backend $backend"

fail=0
args=()
for T in Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K; do
    q="$tmp/$T.gguf" d="$tmp/$T-deq.gguf"
    if ! "$FERRUM" quantize --quiet "$synth" "$q" "$T" ||
        ! "$FERRUM" quantize --quiet "$q" "$d" F32; then
        echo "FAIL: quantize $T" >&2
        fail=$((fail + 1))
        continue
    fi
    for mode in "" --incremental; do
        tag="$T${mode:+-inc}"
        if ! "$FERRUM" logits --backend "$backend" --quant-act f32 $mode -m "$q" --ids "$ids" \
            -o "$tmp/$tag.f32" ||
            ! "$FERRUM" logits --backend "$backend" $mode -m "$d" --ids "$ids" \
                -o "$tmp/$tag-deq.f32"; then
            echo "FAIL: logits $tag" >&2
            fail=$((fail + 1))
            continue
        fi
        args+=("$tmp/$tag.f32" "$tmp/$tag-deq.f32" "$tol")
    done
    case "$T" in
    Q8_0 | Q4_K | Q6_K)
        if ! "$FERRUM" logits --backend "$backend" --incremental -m "$q" --ids "$ids" \
            -o "$tmp/$T-q8.f32"; then
            echo "FAIL: logits $T with 8-bit activations" >&2
            fail=$((fail + 1))
        else
            args+=("$tmp/$T-q8.f32" "$tmp/$T-inc-deq.f32" "$tol_q8")
        fi
        ;;
    esac
    rm -f "$d"
done
vocab=512
if [ ${#args[@]} -gt 0 ] && ! python3 "$check" logits "$vocab" "${args[@]}"; then
    fail=$((fail + 1))
fi
echo "test_cuda_quant_model: $((${#args[@]} / 3)) comparisons, $fail failures"
[ "$fail" -eq 0 ]
