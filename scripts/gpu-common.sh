#!/usr/bin/env bash
# Shared steps of the GPU-machine scripts (gpu-test.sh, gpu-bench.sh); source it, then call
#   fr_gpu_setup ROOT LOGDIR     build dependencies + ../shared (see below)
#   fr_gpu_build ROOT BUILD LOGDIR [targets...]   Release build for sm_${CUDA_ARCH:-90}
# and use fr_note to write a line to the terminal and LOGDIR/summary.txt.
#
# Build dependencies: when pkg-config cannot find libcjson, libpcre2-8 and libutf8proc (a bare GPU
# image), a prefix of copies made on a development machine is used, by default build-deps/root
# (FR_DEPS_DIR overrides): usr/{include,lib/x86_64-linux-gnu,bin/pkgconf}.
# ../shared: CTest and the bench look for ../shared beside the checkout; if it is missing it is
# linked to the checkout's shared/ or, failing that, to build-deps/shared (the device call carries
# build-deps: copy ../shared/{fixtures,tokenizers/qwen3,tools} there before the call, since the
# ../shared beside a checkout does not travel).

fr_gpu_cmake_extra=()

# to stderr, so notes from inside $(...) do not end up in the captured value
fr_note() { echo "$fr_note_prefix: $*" | tee -a "$fr_gpu_logs/summary.txt" >&2; }

fr_gpu_setup() {
    local root="$1"
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
    if [ ! -e "$root/../shared" ]; then
        local cand
        for cand in "$root/shared" "$root/build-deps/shared"; do
            if [ -d "$cand" ]; then
                ln -s "$cand" "$root/../shared" && fr_note "linked ../shared -> $cand"
                break
            fi
        done
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
    grep -q "ferrum: CUDA backend ON" "$logs/build.log" || fr_note "WARNING: CUDA backend not enabled"
    if [ $# -gt 0 ]; then
        cmake --build "$build" -j "$jobs" --target "$@" >>"$logs/build.log" 2>&1
    else
        cmake --build "$build" -j "$jobs" >>"$logs/build.log" 2>&1
    fi
}
