#!/usr/bin/env bash
# ferrum against llama.cpp on this CPU, side by side: the same GGUF files, the same thread count,
# the two benches alternated round by round (this VM's speed drifts by 20-30 % over minutes, so
# only numbers taken next to each other compare). From the repository root:
#
#   bash scripts/cpu-vs-llama.sh [-t THREADS] [-p N] [-n N] [-r ROUNDS] MODEL.gguf [MODEL.gguf ...]
#
# llama.cpp comes from the llama-cpp-python source package on PyPI (the only place this machine
# can fetch it from; its vendor/ folder holds llama.cpp itself); llama-bench is built once, with
# -march=native, into build-llama/ (git-ignored). ferrum is build/ferrum. Prints every run and a
# table of medians over the rounds with ferrum / llama.cpp ratios.
set -euo pipefail

threads=2 pp=128 tg=32 rounds=3
while getopts "t:p:n:r:" o; do
    case "$o" in
    t) threads="$OPTARG" ;;
    p) pp="$OPTARG" ;;
    n) tg="$OPTARG" ;;
    r) rounds="$OPTARG" ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || {
    echo "usage: cpu-vs-llama.sh [-t THREADS] [-p N] [-n N] [-r ROUNDS] MODEL.gguf ..." >&2
    exit 2
}

root="$(pwd)"
ferrum="$root/build/ferrum"
work="$root/build-llama"
lb="$work/src/build/bin/llama-bench"
[ -x "$ferrum" ] || {
    echo "cpu-vs-llama: build ferrum first (make)" >&2
    exit 1
}
if [ ! -x "$lb" ]; then
    mkdir -p "$work"
    pip download --no-deps --no-binary :all: -d "$work" llama-cpp-python >"$work/pip.log" 2>&1
    tarball="$(ls "$work"/llama_cpp_python-*.tar.gz | head -1)"
    rm -rf "$work/sdist" "$work/src"
    mkdir -p "$work/sdist"
    tar -xzf "$tarball" -C "$work/sdist"
    mv "$work"/sdist/*/vendor/llama.cpp "$work/src"
    cmake -S "$work/src" -B "$work/src/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
        -DLLAMA_CURL=OFF -DGGML_CUDA=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF >"$work/cmake.log" 2>&1
    cmake --build "$work/src/build" --target llama-bench -j "$(nproc)" >"$work/build.log" 2>&1
    echo "llama.cpp: $(basename "$tarball" .tar.gz), built into $lb"
fi

results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for ((r = 1; r <= rounds; r++)); do
    for model in "$@"; do
        name="$(basename "$model" .gguf)"
        # llama-bench: "| ... | pp128 | 123.45 ± 6.78 |"
        "$lb" -m "$model" -t "$threads" -p "$pp" -n "$tg" -r 3 2>/dev/null |
            awk -F'|' -v n="$name" -v r="$r" 'NF > 4 && $(NF-2) ~ /(pp|tg)[0-9]/ {
                gsub(/ /, "", $(NF-2)); split($(NF-1), v, "±"); gsub(/ /, "", v[1]);
                print "llama", n, $(NF-2), v[1], r }' | tee -a "$results"
        # ferrum bench: "| ... | pp128 | 123.45 | ... |" (test in column 7, tok/s in column 8)
        "$ferrum" bench -m "$model" -t "$threads" -p "$pp" -n "$tg" -r 3 2>/dev/null |
            awk -F'|' -v n="$name" -v r="$r" 'NF > 8 && $7 ~ /(pp|tg)[0-9]/ {
                gsub(/ /, "", $7); gsub(/ /, "", $8); print "ferrum", n, $7, $8, r }' |
            tee -a "$results"
    done
done

echo
echo "medians over $rounds alternated rounds, $threads threads (tok/s)"
echo "| model | test | llama.cpp | ferrum | ferrum / llama.cpp |"
echo "|---|---|---|---|---|"
python3 - "$results" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    who, model, test, tps, _ = line.split()
    runs.setdefault((model, test), {}).setdefault(who, []).append(float(tps))
for (model, test), v in runs.items():
    l, f = statistics.median(v.get("llama", [0])), statistics.median(v.get("ferrum", [0]))
    ratio = f"{f / l:.2f}x" if l else "-"
    print(f"| {model} | {test} | {l:.1f} | {f:.1f} | {ratio} |")
EOF
