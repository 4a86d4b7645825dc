#!/usr/bin/env bash
# The op test program (tests/test_ops.c) on the CUDA backend: every op against the same float64
# references as on CPU. Carries the `cuda` label by its name, so it runs only on the GPU machine.
set -euo pipefail
bin="$(dirname "$FERRUM")/test_ops"
if [[ ! -x "$bin" ]]; then
    echo "test_cuda_ops: $bin not built" >&2
    exit 1
fi
FR_TEST_BACKENDS=cuda exec "$bin"
