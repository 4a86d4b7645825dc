#!/usr/bin/env bash
# GGUF interoperability, judged by the `gguf` PyPI package (tests/gguf_check.py):
#  (a) ferrum writes metadata of every type and random blocks of every quant type (extreme scales
#      included) plus its own dequantization and quantizer output; gguf reads the file, and its
#      dequantizers must agree with ferrum's, its quantizers byte for byte with ferrum's;
#  (b) gguf writes files (default alignment and 64) with every value type, nested arrays and
#      tensors of every type; ferrum's reader must see the same metadata, tensor infos and
#      offsets, and ferrum's dequantization must equal gguf's.
# The C side is test_quant's helper mode, found next to the ferrum binary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${FERRUM:?FERRUM must name the built ferrum binary (CTest sets it)}"
helper="$(dirname "$FERRUM")/test_quant"
[ -x "$helper" ] || { echo "test_gguf: $helper not built" >&2; exit 1; }

if ! python3 -c 'import gguf, numpy' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check gguf numpy
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$helper" gen "$tmp/ours.gguf" "$tmp/ours.json"
python3 "$here/gguf_check.py" check-ours "$tmp/ours.gguf" "$tmp/ours.json"

python3 "$here/gguf_check.py" write-theirs "$tmp"
for f in theirs theirs64; do
    mkdir "$tmp/$f"
    "$helper" dump "$tmp/$f.gguf" "$tmp/$f"
    python3 "$here/gguf_check.py" check-theirs "$tmp/$f.gguf" "$tmp/$f"
done
echo "test_gguf: all checks passed"
