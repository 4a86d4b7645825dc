#!/usr/bin/env bash
# --kv-type on the command line (run, chat, bench): bad values are usage errors (exit 2); the
# greedy continuations of the fixture models with an f16 or f32 cache (either flag form) are
# Hugging Face's; bench counts the cache rows at 2 bytes with f16 (bytes_per_token of tg4 on
# qwen3-tiny: 2 layers x K,V x 2 kv heads x 32 = 256 elements a token, 1+2+3+4 visible tokens
# over 4 steps, so f16 reads 256 x 2 B x 2.5 = 1280 B a token less than f32).
set -euo pipefail
source "$(dirname "$0")/common/testlib.sh"
Q3="$FIX/models/qwen3-tiny"

for cmd in run chat bench; do
    for bad in q8_0 default ""; do
        rc=0
        "$FERRUM" "$cmd" -m "$Q3" --kv-type "$bad" </dev/null >"$tmp/out" 2>"$tmp/err" || rc=$?
        if [ "$rc" = 2 ] && grep -q -- "--kv-type" "$tmp/err"; then
            pass "$cmd --kv-type '$bad' refused"
        else
            fail "$cmd --kv-type '$bad': exit $rc, $(head -c 200 "$tmp/err")"
        fi
    done
done

for name in qwen3-tiny qwen3-tiny-bf16 llama3-tiny-f16 mistral-tiny-swa qwen2-tiny; do
    want="$(ref "$name" greedy_ids)"
    n=$(echo "$want" | tr ',' '\n' | wc -l)
    for flag in "--kv-type f16" "--kv-type=f32" "--kv-type=auto"; do
        # shellcheck disable=SC2086 # the flag splits into option and value on purpose
        got="$("$FERRUM" run -m "$FIX/models/$name" --ids "$(ref "$name" prompt_ids)" --temp 0 \
            -n "$n" --print-ids -q $flag)"
        if [ "$got" = "$want" ]; then pass "greedy $name $flag"; else
            fail "greedy $name $flag: got $got, want $want"
        fi
    done
done

bytes() { # KV -> bytes_per_token of tg4
    "$FERRUM" bench -m "$Q3" -p 0 -n 4 -r 1 --no-bandwidth --json --kv-type "$1" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][-1]["bytes_per_token"])'
}
b32=$(bytes f32)
b16=$(bytes f16)
bb16=$(bytes bf16)
if [ $((b32 - b16)) = 1280 ] && [ "$b16" = "$bb16" ]; then
    pass "bench bytes per token: f32 $b32, f16 $b16, bf16 $bb16"
else
    fail "bench bytes per token: f32 $b32, f16 $b16, bf16 $bb16 (want f32 - f16 = 1280, bf16 = f16)"
fi

finish test_kv16_cli
