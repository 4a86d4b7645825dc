#!/usr/bin/env bash
# Where the time goes: ncu over one decode token or one prefill of N tokens, summarised per
# kernel (name and grid): launches, mean and total time, share of the total, DRAM read GB/s.
# From the repository root on the GPU machine, after scripts/gpu-bench.sh has built ferrum and
# made the models:
#
#   bash scripts/gpu-profile.sh MODEL_PATH decode|prefill [N] [extra bench options]
#
# ncu runs each kernel alone with caches flushed (--cache-control all) at unlocked clocks, so
# small kernels look slower than inside a graph replay; use it for shares and per-kernel GB/s,
# and gpu-bench / gpu-ab for tok/s. Output: $OUT/profile-<model>-<mode>.txt (or build-gpu/).
set -uo pipefail

root="$(pwd)"
ferrum="${FR_GPU_BUILD:-$root/build-gpu}/ferrum"
logs="${OUT:-$root/build-gpu}"
[ $# -ge 2 ] || {
    echo "usage: gpu-profile.sh MODEL_PATH decode|prefill [N] [bench options]" >&2
    exit 2
}
model="$1"
mode="$2"
shift 2
n=2048
if [ "$mode" = prefill ] && [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
    n="$1"
    shift
fi
case "$mode" in
decode) args=(-p 0 -n 1) ;;
prefill) args=(-p "$n" -n 0) ;;
*)
    echo "mode must be decode or prefill" >&2
    exit 2
    ;;
esac
mkdir -p "$logs"
tag="$(basename "$model" | tr -c 'A-Za-z0-9_.\n-' _)-$mode"
csv="$logs/profile-$tag.csv"
# the bench runs a warm-up and one timed repeat: profile only the repeat's kernels
ncu --clock-control none --cache-control all \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv \
    "$ferrum" bench -m "$model" --backend cuda "${args[@]}" -r 1 --no-bandwidth "$@" \
    >"$csv" 2>"$logs/profile-$tag.err" || echo "ncu failed (see $logs/profile-$tag.err)"

python3 - "$csv" "$mode" <<'PY' | tee "$logs/profile-$tag.txt"
import collections, csv, sys
path, mode = sys.argv[1], sys.argv[2]
rows, hdr = [], None
for r in csv.reader(open(path, errors="replace")):
    if r and r[0] == "ID":
        hdr = r
    elif hdr and len(r) == len(hdr):
        rows.append(dict(zip(hdr, r)))
unit = {"ns": 1e-9, "nsecond": 1e-9, "us": 1e-6, "usecond": 1e-6, "ms": 1e-3, "msecond": 1e-3,
        "s": 1.0, "second": 1.0, "byte": 1.0, "B": 1.0, "Kbyte": 1e3, "KB": 1e3, "Mbyte": 1e6,
        "MB": 1e6, "Gbyte": 1e9, "GB": 1e9}
# launches in order; the bench runs the work twice (warm-up, repeat): keep the second half
launches = collections.OrderedDict()
for d in rows:
    v = float(d["Metric Value"].replace(",", "")) * unit.get(d.get("Metric Unit", ""), 1.0)
    e = launches.setdefault(d["ID"], {"name": d["Kernel Name"], "grid": d.get("Grid Size", ""),
                                      "t": 0.0, "b": 0.0})
    if d["Metric Name"] == "gpu__time_duration.sum":
        e["t"] = v
    elif d["Metric Name"] == "dram__bytes_read.sum":
        e["b"] = v
ls = list(launches.values())
ls = ls[len(ls) // 2:]
agg = collections.OrderedDict()
for e in ls:
    name = e["name"].split("(")[0].replace("void ", "")[:58]
    a = agg.setdefault((name, e["grid"]), [0, 0.0, 0.0])
    a[0] += 1
    a[1] += e["t"]
    a[2] += e["b"]
tot = sum(a[1] for a in agg.values()) or 1.0
print(f"{mode}: {len(ls)} kernel launches, {tot * 1e3:.3f} ms of kernel time (ncu, caches flushed)")
print("| kernel | grid | launches | mean us | total us | share | read GB/s |")
print("|---|---|---|---|---|---|---|")
for (name, grid), (c, t, b) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    if t / tot < 0.002:
        continue
    print(f"| {name} | {grid} | {c} | {t / c * 1e6:.1f} | {t * 1e6:.0f} | {100 * t / tot:.1f} % | "
          f"{b / t / 1e9 if t else 0:.0f} |")
PY
