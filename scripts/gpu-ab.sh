#!/usr/bin/env bash
# A/B of ferrum bench variants on one model, alternated run by run in one call (so a baseline is
# always measured next to the change, on the same card and clocks). From the repository root,
# after scripts/gpu-bench.sh has built build-gpu and made the models:
#
#   FR_AB_ROUNDS=5 bash scripts/gpu-ab.sh MODEL_PATH "BENCH ARGS" "VARIANT" ["VARIANT" ...]
#
# A VARIANT is environment assignments and/or extra bench options, e.g. "FR_CUDA_Q80_U=0" or
# "-b 512"; "" is the plain run; "bin=PATH" runs another ferrum binary (e.g. a baseline commit's
# build). Each round runs every variant once (`ferrum bench --json -r 1`
# after the bench's own warm-up); the table gives each test's median tok/s over the rounds and
# its median ratio to the first variant. Logs and JSON go to $OUT/ab (or build-gpu/ab).
# FR_AB_BACKEND=cpu (with FR_GPU_BUILD naming a CPU build) runs the same A/B on the CPU backend.
set -uo pipefail

root="$(pwd)"
ferrum="${FR_GPU_BUILD:-$root/build-gpu}/ferrum"
logs="${OUT:-$root/build-gpu}/ab"
rounds="${FR_AB_ROUNDS:-5}"
[ $# -ge 3 ] || {
    echo "usage: gpu-ab.sh MODEL_PATH \"BENCH ARGS\" VARIANT [VARIANT ...]" >&2
    exit 2
}
model="$1"
args="$2"
shift 2
mkdir -p "$logs"
tag="$(basename "$model" | tr -c 'A-Za-z0-9_.\n-' _)"
for ((r = 0; r < rounds; r++)); do
    for ((v = 1; v <= $#; v++)); do
        variant="${!v}"
        envs=()
        opts=()
        bin="$ferrum"
        for word in $variant; do
            if [[ "$word" == bin=* ]]; then
                bin="${word#bin=}"
            elif [[ "$word" == *=* && "$word" != -* ]]; then
                envs+=("$word")
            else
                opts+=("$word")
            fi
        done
        # shellcheck disable=SC2086
        env "${envs[@]}" "$bin" bench -m "$model" --backend "${FR_AB_BACKEND:-cuda}" $args "${opts[@]}" -r 1 \
            --no-bandwidth --json >"$logs/$tag.v$v.r$r.json" 2>>"$logs/$tag.log" ||
            echo "variant $v round $r FAILED (see $logs/$tag.log)"
    done
done

python3 - "$logs" "$tag" "$rounds" "$@" <<'PY'
import json, statistics, sys
logs, tag, rounds, variants = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
runs = {}  # (variant, test) -> [tok/s per round]
for v in range(1, len(variants) + 1):
    for r in range(rounds):
        try:
            j = json.load(open(f"{logs}/{tag}.v{v}.r{r}.json"))
        except (OSError, ValueError):
            continue
        for x in j["results"]:
            runs.setdefault((v, x["test"]), {})[r] = x["tok_s"]
tests = sorted({t for _, t in runs}, key=lambda t: (t[:2], int(t[2:]) if t[2:].isdigit() else 0))
print(f"{tag}: median tok/s over {rounds} alternated rounds (ratio: median of per-round ratios to variant 1)")
print("| variant | " + " | ".join(tests) + " |")
print("|---|" + "---|" * len(tests))
for v, name in enumerate(variants, 1):
    cells = []
    for t in tests:
        got = runs.get((v, t), {})
        base = runs.get((1, t), {})
        if not got:
            cells.append("-")
            continue
        ratios = [got[r] / base[r] for r in got if r in base and base[r] > 0]
        cell = f"{statistics.median(got.values()):.1f}"
        if v > 1 and ratios:
            cell += f" ({statistics.median(ratios):.3f}x)"
        cells.append(cell)
    print(f"| {name or '(plain)'} | " + " | ".join(cells) + " |")
PY
