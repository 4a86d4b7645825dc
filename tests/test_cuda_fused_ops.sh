#!/usr/bin/env bash
# The fused-op test program (tests/test_fused_ops.c) on the CUDA backend: matmul_multi and
# matmul_glu against the unfused ops on the GPU. Carries the `cuda` label by its name.
set -euo pipefail
bin="$(dirname "$FERRUM")/test_fused_ops"
if [[ ! -x "$bin" ]]; then
    echo "test_cuda_fused_ops: $bin not built" >&2
    exit 1
fi
FR_TEST_BACKENDS=cuda exec "$bin"
