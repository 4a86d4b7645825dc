#!/usr/bin/env bash
# Shared steps of the GPU-machine scripts (gpu-test.sh, gpu-bench.sh); source it, then call
#   fr_gpu_setup ROOT LOGDIR     build dependencies (see below)
#   fr_gpu_build ROOT BUILD LOGDIR [targets...]   Release build for sm_${CUDA_ARCH:-90}
#   fr_make_hf PRESET / fr_make_gguf PRESET TYPE  random-weight benchmark models, made once into
#     $models with make_random_model.py and `$ferrum quantize` (the caller sets models, ferrum,
#     budget in seconds; the make and quantize logs go to LOGDIR)
# and use fr_note to write a line to the terminal and LOGDIR/summary.txt.
#
# Build dependencies: when pkg-config cannot find libcjson, libpcre2-8 and libutf8proc (a bare GPU
# image), a prefix of copies made on a development machine is used, by default build-deps/root
# (FR_DEPS_DIR overrides): usr/{include,lib/x86_64-linux-gnu,bin/pkgconf}.
# Test data travels with the tree: the fixtures are in tests/data (the build unpacks the real
# tokenizers into BUILD/test-data), and the benchmark models are made with
# scripts/make_random_model.py around tests/data/tokenizers/qwen3.

fr_gpu_cmake_extra=()

# to stderr, so notes from inside $(...) do not end up in the captured value
fr_note() { echo "$fr_note_prefix: $*" | tee -a "$fr_gpu_logs/summary.txt" >&2; }

fr_gpu_setup() {
    local root="$1"
    fr_gpu_root="$1"
    fr_gpu_logs="$2"
    mkdir -p "$fr_gpu_logs"
    if ! pkg-config --exists libcjson libpcre2-8 libutf8proc 2>/dev/null; then
        local deps="${FR_DEPS_DIR:-$root/build-deps/root}"
        if [ -d "$deps" ]; then
            local pre=/tmp/fr-deps
            rm -rf "$pre" && mkdir -p "$pre" && cp -a "$deps/." "$pre/"
            local pc="$pre/usr/lib/x86_64-linux-gnu/pkgconfig"
            # the copies' .pc files name /usr; point them at the prefix
            sed -i -E "s#^(prefix|exec_prefix|libdir|includedir)=/usr#\1=$pre/usr#" "$pc"/*.pc
            export PKG_CONFIG_LIBDIR="$pc"
            export LD_LIBRARY_PATH="$pre/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            if ! command -v pkg-config >/dev/null; then
                fr_gpu_cmake_extra+=("-DPKG_CONFIG_EXECUTABLE=$pre/usr/bin/pkgconf")
                export PATH="$pre/usr/bin:$PATH"
            fi
            fr_note "using build dependencies from $deps"
        else
            fr_note "pkg-config cannot find libcjson/libpcre2-8/libutf8proc and $deps does not exist"
        fi
    fi
}

# Returns non-zero when configuring or building fails; the log is LOGDIR/build.log.
fr_gpu_build() {
    local root="$1" build="$2" logs="$3"
    shift 3
    local jobs
    jobs="$(nproc 2>/dev/null || echo 4)"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" "${fr_gpu_cmake_extra[@]}" \
        >>"$logs/build.log" 2>&1 || return 1
    if [[ " ${fr_gpu_cmake_extra[*]} " != *" -DFERRUM_CUDA=OFF "* ]]; then
        grep -q "ferrum: CUDA backend ON" "$logs/build.log" || fr_note "WARNING: CUDA backend not enabled"
    fi
    if [ $# -gt 0 ]; then
        cmake --build "$build" -j "$jobs" --target "$@" >>"$logs/build.log" 2>&1
    else
        cmake --build "$build" -j "$jobs" >>"$logs/build.log" 2>&1
    fi
}

# HF folder for a preset (real shapes, random weights, the Qwen3 tokenizer), made once.
fr_make_hf() {
    local preset="$1" dir="$models/$1"
    [ -f "$dir/config.json" ] && return 0
    [ "$SECONDS" -gt "$budget" ] && return 1
    fr_note "making $preset (${SECONDS}s)"
    PYTHONUNBUFFERED=1 python3 "$fr_gpu_root/scripts/make_random_model.py" --preset "$preset" \
        --out "$dir" --tokenizer-dir "$fr_gpu_root/tests/data/tokenizers/qwen3" \
        >>"$fr_gpu_logs/make.log" 2>&1 || { fr_note "make $preset FAILED"; return 1; }
}

# $models/PRESET-TYPE.gguf quantized from the HF folder, made once.
fr_make_gguf() {
    local preset="$1" type="$2" out="$models/$1-$2.gguf"
    [ -f "$out" ] && return 0
    fr_make_hf "$preset" || return 1
    [ "$SECONDS" -gt "$budget" ] && return 1
    fr_note "quantizing $preset to $type (${SECONDS}s)"
    "$ferrum" quantize "$models/$preset" "$out.tmp" "$type" >>"$fr_gpu_logs/quantize.log" 2>&1 &&
        mv "$out.tmp" "$out" || { fr_note "quantize $preset $type FAILED"; return 1; }
}
